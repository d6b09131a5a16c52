"""Tracked reference results: provenance, publishing a run, and comparing a fresh run with it.

The workflow writes only under its ``workdir`` (``results/`` by default, ignored by git). A
run becomes a tracked reference by an explicit step that no rule performs, so a fresh clone
never finds the study "already done":

    python -m vqdna.analysis.reference publish results results/reference/cpu-default [--time-log run.time]
    python -m vqdna.analysis.reference compare results results/reference/cpu-default

``publish`` copies every metrics JSON, the summary tables, figures and rendered summary pages
and the run's ``provenance.json`` (commit, config hash, library versions, machine; written by
the workflow's ``provenance`` rule), adding the wall time and peak memory of the run when given
the ``/usr/bin/time -v`` log. ``compare`` reports, metric by metric, whether a fresh run matches
the reference (timing fields, :data:`TIMING_KEYS`, are skipped) and judges the whole: identical,
within noise (every differing field inside its own uncertainty and the summary's cell means,
verdicts and pretext decisions unchanged; :func:`judge`), or differs beyond noise (exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vqdna.analysis.compare import BEYOND_NOISE, compare, compare_markdown, judge
from vqdna.analysis.pages import glance, reference_index
from vqdna.analysis.provenance import provenance
from vqdna.analysis.publish import publish, summarize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("publish", help="copy a finished run into a tracked reference folder")
    p.add_argument("workdir")
    p.add_argument("dest")
    p.add_argument("--time-log", help="/usr/bin/time -v output of the run (wall time, peak memory)")
    c = sub.add_parser(
        "compare",
        help="compare a run's metrics with a reference: identical, within noise, or differs beyond "
        "noise (exit 1 only then)",
    )
    c.add_argument("workdir")
    c.add_argument("reference")
    c.add_argument("--markdown", help="write the report here and exit 0 (the workflow's compare rule)")
    c.add_argument("--ran-only", action="store_true", help="only the files the run wrote (a partial rerun)")
    m = sub.add_parser("summarize", help="rerun the summary notebook on a reference's own records")
    m.add_argument("reference")
    m.add_argument("--pretext-baselines-from", help="another reference whose pre-training records have them")
    x = sub.add_parser("index", help="print results/reference/index.md for the tracked references")
    x.add_argument("root", nargs="?", default="results/reference")
    g = sub.add_parser("glance", help="print the README's at-a-glance table from a reference's CSVs")
    g.add_argument("reference")
    v = sub.add_parser("provenance", help="write provenance.json for a run (the workflow's provenance rule)")
    v.add_argument("out")
    v.add_argument("--config", required=True, help="the run's config as JSON")
    args = parser.parse_args(argv)
    try:
        return _main(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _main(args) -> int:
    if args.command == "publish":
        files = publish(args.workdir, args.dest, args.time_log)
        print(f"published {len(files)} files to {args.dest}")
        return 0
    if args.command == "index":
        print(reference_index(args.root), end="")
        return 0
    if args.command == "glance":
        print(glance(args.reference), end="")
        return 0
    if args.command == "summarize":
        print(f"summary written to {summarize(args.reference, args.pretext_baselines_from)}")
        return 0
    if args.command == "provenance":
        Path(args.out).write_text(json.dumps(provenance(json.loads(args.config)), indent=2) + "\n")
        return 0
    rows = compare(args.workdir, args.reference, args.ran_only)
    verdict, problems = judge(rows, args.workdir, args.reference)
    report = compare_markdown(rows, args.reference, verdict, problems)
    if args.markdown:
        Path(args.markdown).write_text(report)
        return 0
    print(report)
    return 1 if verdict == BEYOND_NOISE else 0


if __name__ == "__main__":
    sys.exit(main())
