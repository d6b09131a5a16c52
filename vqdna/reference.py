"""Tracked reference results: provenance, publishing a run, and comparing a fresh run with it.

The workflow writes only under its ``workdir`` (``results/`` by default, ignored by git). A
run becomes a tracked reference by an explicit step that no rule performs, so a fresh clone
never finds the study "already done":

    python -m vqdna.reference publish results results/reference/cpu-default [--time-log run.time]
    python -m vqdna.reference compare results results/reference/cpu-default

``publish`` copies every metrics JSON, the summary tables, figures and rendered summary pages
and the run's ``provenance.json`` (commit, config hash, library versions, machine; written by
the workflow's ``provenance`` rule), adding the wall time and peak memory of the run when given
the ``/usr/bin/time -v`` log. ``compare`` reports, metric by metric, whether a fresh run matches
the reference; timing fields (:data:`TIMING_KEYS`) are skipped, everything else must be equal.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from vqdna import numerics

#: fields that measure speed, not results: never compared
TIMING_KEYS = ("steps_per_s", "train_time_s", "wall_time_s", "seconds", "items_per_s")
#: what a published reference holds, relative to the run's workdir
PUBLISHED = (
    "**/metrics.json",
    "summary/*.md",
    "summary/*.csv",
    "summary/figures/*.png",
    "summary/*.html",
    "sarscov2/*.md",
    "sarscov2/*.csv",
    "sarscov2/*.png",
    "sarscov2/*.html",
    "index.md",
    "provenance.json",
)
LIBRARIES = (
    "torch",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "tokenizers",
    "snakemake",
    "papermill",
    "nbconvert",
    "umap-learn",
)


def config_hash(config: dict) -> str:
    """sha256 of the config as canonical JSON (key order and formatting do not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def _git(*args: str, cwd: Path) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(config: dict, repo: str | Path = ".") -> dict:
    """Who made a run: commit (and whether tracked files differed from it), config hash,
    library versions, machine and thread settings."""
    repo = Path(repo)
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    memory = None
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory = round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1)
    return {
        "commit": _git("rev-parse", "HEAD", cwd=repo) or None,
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", cwd=repo)),
        "profile": config.get("profile"),
        "config_sha256": config_hash(config),
        "config": config,
        "python": platform.python_version(),
        "libraries": versions,
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "memory_gib": memory,
            "platform": platform.platform(),
            "threads_per_job": config.get("threads_per_job"),
        },
        "numerics": numerics.describe(config.get("numerics")),
    }


def read_time_log(path: str | Path) -> dict:
    """Wall time (s) and peak resident memory (MiB) from a ``/usr/bin/time -v`` log."""
    text = Path(path).read_text()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if not wall or not rss:
        raise ValueError(f"{path}: not a /usr/bin/time -v log (no wall time or maximum resident set size)")
    seconds = 0.0
    for part in wall.group(1).split(":"):
        seconds = seconds * 60 + float(part)
    return {
        "wall_time_s": seconds,
        "peak_rss_mib": int(rss.group(1)) / 1024,
        "command": (re.search(r'Command being timed: "(.*)"', text) or [None, None])[1],
    }


def publish(workdir: str | Path, dest: str | Path, time_log: str | Path | None = None) -> list[Path]:
    """Copy a finished run's results (:data:`PUBLISHED`) from ``workdir`` into ``dest``, replacing
    what was there (written to a temporary folder first, so a failure leaves the old reference)."""
    workdir, dest = Path(workdir), Path(dest)
    if not (workdir / "provenance.json").exists():
        raise FileNotFoundError(
            f"{workdir}/provenance.json: not a finished run (run `snakemake --cores all` first)"
        )
    files = sorted(
        {
            p
            for pattern in PUBLISHED
            for p in workdir.glob(pattern)
            if p.is_file() and "reference" not in p.relative_to(workdir).parts
        }
    )  # not the tracked one
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for path in files:
        target = tmp / path.relative_to(workdir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    if time_log is not None:
        record = json.loads((tmp / "provenance.json").read_text())
        record["run"] = read_time_log(time_log)
        (tmp / "provenance.json").write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.replace(dest)
    return [dest / p.relative_to(workdir) for p in files]


def _differences(reference, fresh, prefix: str = "") -> list[tuple[str, object, object]]:
    """(key path, reference value, fresh value) for every non-timing leaf that differs."""
    if isinstance(reference, dict) and isinstance(fresh, dict):
        out = []
        for key in sorted(set(reference) | set(fresh)):
            if any(t in key for t in TIMING_KEYS):
                continue
            out += _differences(reference.get(key), fresh.get(key), f"{prefix}{key}.")
        return out
    if isinstance(reference, list) and isinstance(fresh, list) and len(reference) == len(fresh):
        return [
            d for i, (a, b) in enumerate(zip(reference, fresh)) for d in _differences(a, b, f"{prefix}{i}.")
        ]
    return [] if reference == fresh else [(prefix.rstrip("."), reference, fresh)]


def compare(workdir: str | Path, reference: str | Path, ran_only: bool = False) -> list[dict]:
    """Every metrics JSON of ``reference`` against the same file of the run in ``workdir``:
    one row per file with status ``identical``, ``differs`` (and each differing key with both
    values) or ``missing``; files only the fresh run has are ``extra``. ``ran_only``: compare
    only the files the run wrote (a rerun of part of the study, e.g. one task from scratch)."""
    workdir, reference = Path(workdir), Path(reference)
    ref_files = {p.relative_to(reference) for p in reference.glob("**/metrics.json")}
    new_files = {p.relative_to(workdir) for p in workdir.glob("**/metrics.json")}
    new_files = {p for p in new_files if "reference" not in p.parts}  # results/reference/ is not the run
    if ran_only:
        ref_files &= new_files
    rows = []
    for rel in sorted(ref_files | new_files):
        if rel not in new_files:
            rows.append({"file": str(rel), "status": "missing", "differences": []})
        elif rel not in ref_files:
            rows.append({"file": str(rel), "status": "extra", "differences": []})
        else:
            diffs = _differences(
                json.loads((reference / rel).read_text()), json.loads((workdir / rel).read_text())
            )
            rows.append(
                {
                    "file": str(rel),
                    "status": "differs" if diffs else "identical",
                    "differences": [{"key": k, "reference": a, "fresh": b} for k, a, b in diffs],
                }
            )
    return rows


def compare_markdown(rows: list[dict], reference: str | Path) -> str:
    """The comparison as a Markdown page: counts per status, then every difference."""
    counts = {s: sum(r["status"] == s for r in rows) for s in ("identical", "differs", "missing", "extra")}
    lines = [
        f"# Fresh run vs tracked reference `{reference}`",
        "",
        "Every metrics JSON, every field except timings. "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + ".",
        "",
    ]
    if not rows:
        lines.append("No reference metrics found: nothing compared.")
    for row in rows:
        if row["status"] == "identical":
            continue
        lines.append(f"- `{row['file']}`: **{row['status']}**")
        for d in row["differences"][:20]:
            lines.append(f"  - `{d['key']}`: reference {d['reference']!r}, fresh {d['fresh']!r}")
    return "\n".join(lines) + "\n"


def write_index(workdir, out_path, profile: str) -> None:
    """A Markdown page linking the gathered results and every rendered notebook of the run
    (per-job notebooks are local files: git tracks only the summary ones)."""
    workdir, out_path = Path(workdir), Path(out_path)
    lines = [
        f"# vqdna results — profile `{profile}`",
        "",
        "- [Results tables (Markdown)](summary/results.md) · [CSV](summary/results.csv)",
        "- [Claim verdicts](summary/claims.md) · [Pretext learned](summary/pretext.md) · "
        "[Variance: replicates vs fine-tuning](summary/variance.md)",
        "- [Summary notebook](summary/summary.html) · [Efficiency](summary/efficiency.html)",
        "- [Provenance of this run](provenance.json) (commit, config hash, libraries, machine)",
    ]
    if (workdir / "sarscov2" / "sarscov2.html").exists():
        lines.append("- [SARS-CoV-2 analysis (paper Fig. 5)](sarscov2/sarscov2.html)")
    lines += ["", "## Rendered job notebooks (present after a local run)", ""]
    for stage in ("tokenizers", "models", "finetune", "linear_probe"):
        pages = sorted(workdir.glob(f"{stage}/**/*.html"))
        if pages:
            lines.append(f"### {stage} ({len(pages)})\n")
            lines += [
                f"- [{page.parent.relative_to(workdir / stage)}]({page.relative_to(workdir)})"
                for page in pages
            ]
            lines.append("")
    out_path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("publish", help="copy a finished run into a tracked reference folder")
    p.add_argument("workdir")
    p.add_argument("dest")
    p.add_argument("--time-log", help="/usr/bin/time -v output of the run (wall time, peak memory)")
    c = sub.add_parser("compare", help="compare a run's metrics with a reference; exit 1 if any differ")
    c.add_argument("workdir")
    c.add_argument("reference")
    c.add_argument("--markdown", help="write the report here and exit 0 (the workflow's compare rule)")
    c.add_argument("--ran-only", action="store_true", help="only the files the run wrote (a partial rerun)")
    v = sub.add_parser("provenance", help="write provenance.json for a run (the workflow's provenance rule)")
    v.add_argument("out")
    v.add_argument("--config", required=True, help="the run's config as JSON")
    args = parser.parse_args(argv)
    if args.command == "publish":
        files = publish(args.workdir, args.dest, args.time_log)
        print(f"published {len(files)} files to {args.dest}")
        return 0
    if args.command == "provenance":
        Path(args.out).write_text(json.dumps(provenance(json.loads(args.config)), indent=2) + "\n")
        return 0
    rows = compare(args.workdir, args.reference, args.ran_only)
    report = compare_markdown(rows, args.reference)
    if args.markdown:
        Path(args.markdown).write_text(report)
        return 0
    print(report)
    return 0 if rows and all(r["status"] == "identical" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
