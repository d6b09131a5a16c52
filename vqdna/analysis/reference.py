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

from vqdna.core import numerics
from vqdna.workflow import study

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
    try:
        for path in files:
            target = tmp / path.relative_to(workdir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        if time_log is not None:
            record = json.loads((tmp / "provenance.json").read_text())
            record["run"] = read_time_log(time_log)
            (tmp / "provenance.json").write_text(json.dumps(record, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed publish leaves nothing behind
        raise
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
    for folder in (workdir, reference):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder to compare")
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
            diffs = _differences(_read(reference / rel), _read(workdir / rel))
            rows.append(
                {
                    "file": str(rel),
                    "status": "differs" if diffs else "identical",
                    "differences": [{"key": k, "reference": a, "fresh": b} for k, a, b in diffs],
                }
            )
    return rows


IDENTICAL, WITHIN_NOISE, BEYOND_NOISE = "identical", "within noise", "differs beyond noise"
#: score fields judged against the record's own test-set interval
SCORES = ("mcc", "macro_f1", "accuracy")
#: fields that follow from the predictions or the training path: reported, judged through the scores
DERIVED = ("test_interval", "confusion_matrix", "test_predictions", "best_step", "best_epoch", "history")


def _field_noise(reference: Path) -> dict:
    """(stage, base tokenizer, field) -> 2 x sd over the reference's replicates of every numeric
    field of its pre-training and tokenizer records: how far a field may move within noise."""
    import numpy as np

    values: dict = {}
    for path in reference.glob("**/metrics.json"):
        record = _read(path)
        if record.get("stage") not in ("pretrain", "tokenizer") or record.get("ablation"):
            continue
        for key, value in record.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values.setdefault((record["stage"], record["tokenizer"], key), []).append(value)
            elif isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
                for i, v in enumerate(value):
                    values.setdefault((record["stage"], record["tokenizer"], f"{key}.{i}"), []).append(v)
    return {k: 2 * float(np.std(v, ddof=1)) for k, v in values.items() if len(v) > 1}


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable metrics JSON ({error})") from error


def _sarscov2_noise(key: str, before, after, record: dict) -> tuple[float, float]:
    """(how far, how far within noise) for a field of the SARS-CoV-2 record: a share (k-NN
    accuracy, share of codes changed) within 2 binomial standard errors over its genomes, a
    silhouette within 0.01, the statement's wording (numbers aside) equal."""
    if isinstance(before, str) and isinstance(after, str):
        equal = re.sub(r"[\d.]+", "#", before) == re.sub(r"[\d.]+", "#", after)
        return (0.0 if equal else 1.0), 0.5
    if not all(isinstance(v, (int, float)) for v in (before, after)):
        return 1.0, 0.0
    if "silhouette" in key:
        return abs(after - before), 0.01
    n = max(1, int(record.get("n_genomes", 1)))
    p = min(max(float(before), 0.0), 1.0)
    return abs(after - before), 2 * max((p * (1 - p) / n) ** 0.5, 1 / n)


def judge_file(row: dict, reference_record: dict, noise: dict) -> tuple[str, list[str]]:
    """One differing file -> (verdict, why): every differing field set against its own noise.
    Scores move within their test-set interval's half width; pre-training and tokenizer numbers
    within 2 sd of the reference's replicates; predictions, confusion matrices and intervals
    follow from the scores; anything else (labels, settings, counts) must be equal."""
    stage, tokenizer = reference_record.get("stage"), reference_record.get("tokenizer")
    why, beyond = [], False
    for d in row["differences"]:
        key, before, after = d["key"], d["reference"], d["fresh"]
        top = key.split(".")[0]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (before, after))
        if top in DERIVED:
            continue
        if before is None and after is not None:
            why.append(f"{key}: a field the reference's version did not record")
            continue
        if stage == "sarscov2":
            moved, scale = _sarscov2_noise(key, before, after, reference_record)
            beyond |= moved > scale
            why.append(f"{key} moved {moved:.4g} (noise {scale:.4g})")
            continue
        if top in SCORES and numeric and top in (reference_record.get("test_interval") or {}):
            low, high = reference_record["test_interval"][top]
            scale = (high - low) / 2
            moved = abs(after - before)
            beyond |= moved > scale
            why.append(f"{key} moved {moved:.4f}, {moved / scale:.2f} x its test-set half width {scale:.4f}")
        elif numeric and (stage, tokenizer, key) in noise:
            scale, moved = noise[(stage, tokenizer, key)], abs(after - before)
            beyond |= moved > scale
            ratio = moved / scale if scale > 0 else float("inf")
            why.append(f"{key} moved {moved:.4g}, {ratio:.2f} x 2 sd over replicates ({scale:.4g})")
        else:
            beyond = True
            why.append(f"{key} must be equal: reference {before!r}, fresh {after!r}")
    return (BEYOND_NOISE if beyond else WITHIN_NOISE), why


def _summary_checks(workdir: Path, reference: Path) -> list[str]:
    """Summary-level failures: a fresh cell mean outside the reference cell's 95% interval, a
    verdict that changed, a pretext decision that changed. Empty when everything holds."""
    from vqdna.analysis import baselines, effects, tables
    from vqdna.workflow.records import collect_metrics

    def records(root: Path):
        return collect_metrics(
            sorted(
                p
                for p in root.glob("**/metrics.json")
                if not {"reference", "sarscov2"} & set(p.relative_to(root).parts)
            )
        )

    old, new = records(reference), records(workdir)
    problems = []
    keys = ["suite", "task", "tokenizer", "protocol", "coverage"]
    for stage in ("finetune", "linear_probe"):
        if not (old["stage"] == stage).any():
            continue
        a = tables.summary_table(old, stage).set_index(keys)
        b = tables.summary_table(new, stage).set_index(keys) if (new["stage"] == stage).any() else a.iloc[:0]
        for key, row in a.iterrows():
            if key not in b.index:
                problems.append(f"{stage} {'/'.join(map(str, key[:3]))}: no fresh cell")
                continue
            mean = b.loc[key, "mean"]
            if not row["ci_low"] <= mean <= row["ci_high"]:
                problems.append(
                    f"{stage} {'/'.join(map(str, key[:3]))}: fresh mean {mean:.1f} outside the reference's "
                    f"95% interval [{row['ci_low']:.1f}, {row['ci_high']:.1f}]"
                )
    verdicts = [
        effects.study_effects(df, reference=baselines.BASELINE_NAME)[0].set_index(
            ["stage", "protocol", "comparison"]
        )["verdict"]
        for df in (old, new)
    ]
    for key, verdict in verdicts[0].items():
        fresh = verdicts[1].get(key)
        # the decision, not its description ("no across-task test possible (A ahead on 1 of 2...)")
        if str(fresh).split(" (")[0] != str(verdict).split(" (")[0]:
            problems.append(f"verdict {' / '.join(key)}: reference {verdict!r}, fresh {fresh!r}")
    learned = [dict(zip(t["tokenizer"], t["learned"])) for t in map(tables.pretext_table, (old, new))]
    for tokenizer, decision in learned[0].items():
        if decision.startswith("not shown"):  # the reference's records predate the baselines
            continue
        if learned[1].get(tokenizer) != decision:
            problems.append(
                f"pretext learned {tokenizer}: reference {decision}, fresh {learned[1].get(tokenizer)}"
            )
    return problems


def judge(rows: list[dict], workdir: str | Path, reference: str | Path) -> tuple[str, list[str]]:
    """The comparison's verdict: :data:`IDENTICAL` (every file equal, none missing),
    :data:`WITHIN_NOISE` (every differing field within its noise, :func:`judge_file`, and the
    summary checks hold: cell means inside the reference's intervals, the same verdicts and
    pretext decisions) or :data:`BEYOND_NOISE`. Each row gets its own ``verdict`` and ``why``;
    the second value lists the summary-level problems."""
    workdir, reference = Path(workdir), Path(reference)
    if not rows:
        return BEYOND_NOISE, ["no reference metrics found: nothing compared"]
    noise = _field_noise(reference)
    for row in rows:
        if row["status"] == "identical":
            row["verdict"], row["why"] = IDENTICAL, []
        elif row["status"] == "differs":
            row["verdict"], row["why"] = judge_file(row, _read(reference / row["file"]), noise)
        elif row["status"] == "extra":
            row["verdict"], row["why"] = "not in the reference", []
        else:
            row["verdict"], row["why"] = (
                BEYOND_NOISE,
                ["missing file: the reference has it, the run does not"],
            )
    if all(r["verdict"] in (IDENTICAL, "not in the reference") for r in rows):
        return IDENTICAL, []
    if any(r["verdict"] == BEYOND_NOISE for r in rows):
        return BEYOND_NOISE, []
    problems = _summary_checks(workdir, reference)
    return (BEYOND_NOISE, problems) if problems else (WITHIN_NOISE, [])


def compare_markdown(rows: list[dict], reference: str | Path, verdict: str = "", problems=()) -> str:
    """The comparison as a Markdown page: the verdict, counts per status, then every difference
    with how far it moved against its noise."""
    counts = {s: sum(r["status"] == s for r in rows) for s in ("identical", "differs", "missing", "extra")}
    lines = [
        f"# Fresh run vs tracked reference `{reference}`",
        "",
        *([f"**Verdict: {verdict}.**", ""] if verdict else []),
        "Every metrics JSON, every field except timings. "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + ".",
        "",
    ]
    if not rows:
        lines.append("No reference metrics found: nothing compared.")
    if problems:
        lines += ["Summary-level checks that failed:", "", *[f"- {p}" for p in problems], ""]
    for row in rows:
        if row["status"] == "identical":
            continue
        judged = f" ({row['verdict']})" if row.get("verdict") else ""
        lines.append(f"- `{row['file']}`: **{row['status']}**{judged}")
        for why in row.get("why", [])[:20]:
            lines.append(f"  - {why}")
        if not row.get("why"):
            for d in row["differences"][:20]:
                lines.append(f"  - `{d['key']}`: reference {d['reference']!r}, fresh {d['fresh']!r}")
    return "\n".join(lines) + "\n"


def pretext_baselines(source: str | Path):
    """The position and neighbour baselines of every pre-training record of the reference
    ``source`` -> DataFrame (tokenizer, replicate, position_loss, neighbour_loss, source): for a reference
    whose records predate them and whose pre-training used the same settings and seeds."""
    import pandas as pd

    source = Path(source)
    machine = _read(source / "provenance.json").get("machine", {}).get("cpu", "?")
    rows = [
        {
            "tokenizer": r["tokenizer"],
            "replicate": r.get("replicate", 0),
            "position_loss": r["position_loss"],
            "neighbour_loss": r["neighbour_loss"],
            "source": f"{source.name} (same settings and seeds; {machine})",
        }
        for r in map(_read, sorted(source.glob("models/**/metrics.json")))
        if r.get("stage") == "pretrain" and r.get("position_loss") is not None
    ]
    return pd.DataFrame(rows, columns=["tokenizer", "replicate", "position_loss", "neighbour_loss", "source"])


def summarize(reference: str | Path, baselines_from: str | Path | None = None) -> Path:
    """Rerun the summary notebook on a tracked reference's own records (after a change to the
    statistics, no training rerun needed), writing its summary/ in place. ``baselines_from``:
    another reference whose pre-training records carry the pretext baselines these lack; they
    are written to summary/pretext_baselines.csv and the pretext table names their source."""
    from vqdna.workflow.notebook import run_notebook

    reference = Path(reference)
    paths = sorted(
        str(p) for p in reference.glob("**/metrics.json") if p.relative_to(reference).parts[0] != "sarscov2"
    )
    if not paths:
        raise FileNotFoundError(f"{reference}: no metrics records to summarize")
    extra = ""
    if baselines_from is not None:
        extra = str(reference / "summary" / "pretext_baselines.csv")
        (reference / "summary").mkdir(exist_ok=True)
        pretext_baselines(baselines_from).to_csv(extra, index=False)
    notebook = reference / "summary" / "summary.ipynb"
    provenance = _read(reference / "provenance.json")
    # the run's own ablation plan, from the config it recorded
    ablation_runs = study.ablation_runs(provenance["config"]) if provenance.get("config") else []
    run_notebook(
        Path(__file__).resolve().parents[2] / "notebooks" / "summary.py",
        notebook,
        {
            "metrics_paths": paths,
            "ablation_runs": ablation_runs,
            "out_dir": str(reference / "summary"),
            "profile": provenance.get("profile", reference.name),
            "pretext_baselines": extra,
        },
    )
    notebook.unlink()  # the rendered HTML beside it is what a reference keeps
    return reference / "summary"


NAMES = {
    "hrq": "HRQ",
    "vq": "VQ",
    "kmer6": "6-mer, overlapping",
    "char": "char",
    "kmer6_nonoverlap": "6-mer, non-overlapping",
    "bpe": "BPE",
}


def glance(reference: str | Path, task: str = "coding") -> str:
    """The README's at-a-glance table, generated from a reference's summary CSVs (so a number
    in it cannot drift from the tracked tables; tests/test_readme.py regenerates and compares):
    per tokenizer, whether its encoder learned the pretext (loss vs the best context-free and
    the neighbour baseline), and its linear-probe and fine-tuning cells on ``task``."""
    import pandas as pd

    summary = Path(reference) / "summary"
    pretext = pd.read_csv(summary / "pretext.csv").set_index("tokenizer")
    cells = {}
    for stage in ("linear_probe", "finetune"):
        table = pd.read_csv(summary / f"{stage}.csv")
        for row in table[table["task"] == task].itertuples():
            sd = "" if pd.isna(row.sd) else f" ± {row.sd:.1f}"
            cells[(stage, row.tokenizer)] = f"{row.mean:.1f}{sd} [{row.ci_low:.1f}, {row.ci_high:.1f}]"
    lines = [
        "| tokenizer | pretext learned (loss vs context-free / neighbour baseline, nats) | linear probe "
        "| fine-tuning |",
        "|---|---|---|---|",
    ]
    order = [t for t in NAMES if t in pretext.index]
    for tokenizer in order:
        p = pretext.loc[tokenizer]
        free = min(p["unigram_loss"], p["position_loss"])
        learned = "yes" if p["learned"] == "yes" else f"**{p['learned']}**"
        lines.append(
            f"| {NAMES[tokenizer]} | {learned}: {p['val_loss']:.3f} vs {free:.3f} / "
            f"{p['neighbour_loss']:.3f} "
            f"| {cells.get(('linear_probe', tokenizer), '–')} | {cells.get(('finetune', tokenizer), '–')} |"
        )
    reference_row = cells.get(("linear_probe", "kmer-spectrum LR"), "–")
    lines.append(f"| k-mer spectrum LR (reference) | – | {reference_row} | |")
    return "\n".join(lines) + "\n"


#: what each tracked profile is, one line (the index of all references says it)
PROFILES = {
    "cpu-default": "The default study (`config/config.yaml`): `coding` fine-tuned and probed, "
    "`species_1k` probed, 6 tokenizers x 3 replicates, SARS-CoV-2",
    "cpu-gue": "`config/gue.yaml`: the 13 complete GUE tasks x 6 tokenizers x 3 replicates, "
    "the verdict on the paper's ordering",
    "cpu-species": "`config/species.yaml`: species of origin from 1, 10 and 32 kbp (paper Table 6 analogue)",
    "cpu-ablations": "`config/ablations.yaml`: the paper's Tables 7-9 and the knobs beyond them",
}


def reference_index(root: str | Path) -> str:
    """``results/reference/index.md``: every tracked reference with what it is, its commit, CPU,
    numerics mode and run time, and links to its summary page, claims and figures (generated;
    a test holds the tracked file to it)."""
    root = Path(root)
    lines = [
        "# Tracked reference runs",
        "",
        "Each is one fresh-clone run of a study config, with its provenance.",
        "",
    ]
    for folder in sorted(p.parent for p in root.glob("*/provenance.json")):
        provenance = _read(folder / "provenance.json")
        wall = provenance.get("run", {}).get("wall_time_s")
        minutes = f"{int(wall // 3600)} h {int(wall % 3600 // 60)} min" if wall else "time not recorded"
        mode = (provenance.get("numerics") or {}).get("mode") or "native"
        figures = sorted((folder / "summary" / "figures").glob("*.png"))
        lines += [
            f"## [{folder.name}]({folder.name}/index.md)",
            "",
            PROFILES.get(folder.name, "(profile not described)") + ".",
            f"Commit `{(provenance.get('commit') or '?')[:7]}`, "
            f"{provenance.get('machine', {}).get('cpu', '?')}, {mode} numerics, {minutes}.",
            "",
            f"- [summary page]({folder.name}/summary/summary.html) · "
            f"[claims]({folder.name}/summary/claims.md) · [effects]({folder.name}/summary/effects.md) · "
            f"[pretext]({folder.name}/summary/pretext.md) · [all results]({folder.name}/summary/results.md)",
            "- figures: "
            + " · ".join(f"[{f.stem}]({folder.name}/summary/figures/{f.name})" for f in figures),
            "",
        ]
    return "\n".join(lines)


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
