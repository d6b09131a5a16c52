"""How long a run will take, said before it starts: jobs per stage x measured seconds per job.

The seconds come from ``benchmarks/job_seconds.csv``, measured from the ``benchmark:`` files of
finished runs on the 2-core CPU machine (``python -m vqdna.workflow.plan measure <workdir>`` adds a run).
A job is matched by (stage, tokenizer, task), then (stage, tokenizer), then stage alone (the
median over what was measured); jobs of a stage never measured count as unknown. The estimate
assumes ``cores`` one-thread jobs run side by side, so it is a rough guide, not a promise.

    python -m vqdna.workflow.plan measure results/gue \
        [--table benchmarks/job_seconds.csv] [--machine "2-core CPU"]

How much GPU memory it will take, also said before it starts: ``memory`` prints the estimated
peak of every VQ-VAE and masked LM a study config trains (vqdna.train.memory, through
:func:`vqdna.workflow.study.memory_plan`) and the largest micro-batch that fits.

    python -m vqdna.workflow.plan memory config/paper.yaml [gpu_memory_gb]
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import yaml

TABLE = Path("benchmarks/job_seconds.csv")
COLUMNS = ["stage", "tokenizer", "task", "seconds", "machine", "profile"]
# metrics or benchmark path (relative to the workdir) -> (stage, tokenizer, task)
_PATTERNS = [
    (re.compile(r"tokenizers/(?P<tok>[^/]+)/seed\d+(/metrics\.json|\.tsv)$"), "train_tokenizer"),
    (re.compile(r"(models|pretrain)/(?P<tok>[^/]+)/rep\d+(/metrics\.json|\.tsv)$"), "pretrain"),
    (
        re.compile(r"finetune/(?P<task>[^/]+/[^/]+)/(?P<tok>[^/]+)/rep\d+(/seed\d+/metrics\.json|\.tsv)$"),
        "finetune",
    ),
    (
        re.compile(r"linear_probe/(?P<task>[^/]+/[^/]+)/(?P<tok>[^/]+)/rep\d+(/metrics\.json|\.tsv)$"),
        "linear_probe",
    ),
    (re.compile(r"baseline/(?P<task>[^/]+/[^/]+)(/metrics\.json|\.tsv)$"), "baseline"),
    (re.compile(r"(?P<stage>efficiency|sarscov2)\.tsv$"), None),
]


def job_of(path: str) -> tuple[str, str, str] | None:
    """(stage, tokenizer, task) of a metrics or benchmark path; None for other files. The
    replicate and seed parts are dropped: one fine-tuning job writes every seed's file."""
    for pattern, stage in _PATTERNS:
        found = pattern.search(path)
        if found:
            groups = found.groupdict()
            return stage or groups["stage"], groups.get("tok") or "", groups.get("task") or ""
    return None


def jobs(paths: Iterable[str]) -> list[tuple[str, str, str]]:
    """One entry per job that writes ``paths`` (metrics files of one job counted once)."""
    seen = {}
    for path in paths:
        job = job_of(path)
        if job is not None:
            seen[re.sub(r"(/rep\d+)/seed\d+/metrics\.json$", r"\1", path)] = job
    return list(seen.values())


def measure(workdir: str | Path, machine: str, profile: str) -> pd.DataFrame:
    """Wall seconds of every benchmarked job of a finished run: the Snakemake ``benchmark:`` files
    in its ``timings/`` folder (``benchmarks/`` in runs made before 2026-11-28, which still count)."""
    root = Path(workdir) / "timings"
    if not root.is_dir():
        root = Path(workdir) / "benchmarks"
    rows = []
    for tsv in sorted(root.rglob("*.tsv")):
        job = job_of(tsv.relative_to(root).as_posix())
        if job is not None:
            rows.append([*job, float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1]), machine, profile])
    return pd.DataFrame(rows, columns=COLUMNS)


def estimate(
    planned: Iterable[tuple[str, str, str]], measured: pd.DataFrame, cores: int
) -> tuple[pd.DataFrame, float]:
    """-> (per stage: jobs, seconds per job (mean of the matched measurements), job-seconds,
    unmeasured jobs; wall minutes = job-seconds / cores)."""
    planned = list(planned)
    by_task = measured.groupby(["stage", "tokenizer", "task"])["seconds"].median().to_dict()
    by_tok = measured.groupby(["stage", "tokenizer"])["seconds"].median().to_dict()
    by_stage = measured.groupby("stage")["seconds"].median().to_dict()
    rows = {}
    for stage, tok, task in planned:
        seconds = by_task.get((stage, tok, task), by_tok.get((stage, tok), by_stage.get(stage, math.nan)))
        row = rows.setdefault(stage, {"stage": stage, "jobs": 0, "job_seconds": 0.0, "unmeasured": 0})
        row["jobs"] += 1
        if math.isnan(seconds):
            row["unmeasured"] += 1
        else:
            row["job_seconds"] += seconds
    table = pd.DataFrame(list(rows.values()), columns=["stage", "jobs", "job_seconds", "unmeasured"])
    table["seconds_per_job"] = table["job_seconds"] / (table["jobs"] - table["unmeasured"]).clip(lower=1)
    return table, float(table["job_seconds"].sum()) / max(cores, 1) / 60


def describe(
    planned: Iterable[tuple[str, str, str]], cores: int, profile: str = "", table: str | Path = TABLE
) -> str:
    """The plan as text: jobs and seconds per job per stage, and the wall-time estimate. Uses
    ``profile``'s own measurements where the table has them, else every profile's."""
    measured = pd.read_csv(table) if Path(table).exists() else pd.DataFrame(columns=COLUMNS)
    if (measured["profile"] == profile).any():
        measured = measured[measured["profile"] == profile]
    per_stage, minutes = estimate(planned, measured, cores)
    lines = [
        f"plan: {int(per_stage['jobs'].sum())} benchmarked jobs, about {minutes:.0f} min on {cores} "
        f"one-thread job slots (seconds per job measured on: "
        f"{', '.join(sorted(set(measured['machine']))) or 'nothing yet'}, profile "
        f"{', '.join(sorted(set(measured['profile']))) or '-'}; {table}); gathering jobs not counted"
    ]
    for row in per_stage.itertuples():
        unknown = f", {row.unmeasured} not measured" if row.unmeasured else ""
        lines.append(f"  {row.stage:<16} {row.jobs:>4} jobs x {row.seconds_per_job:6.1f} s{unknown}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("measure", help="add a finished run's job seconds to the table")
    add.add_argument("workdir")
    add.add_argument("--table", default=str(TABLE))
    add.add_argument("--machine", default="2-core CPU (the project's CI machine kind)")
    add.add_argument("--profile", default=None, help="profile name (default: the workdir's provenance.json)")
    memory = sub.add_parser("memory", help="estimated peak GPU memory of every training stage of a config")
    memory.add_argument("config", help="a study config (config/paper.yaml)")
    memory.add_argument("gpu_memory_gb", nargs="?", type=float, help="per-GPU memory (default: the config's)")
    args = parser.parse_args(argv)
    if args.command == "memory":
        print_memory_plan(args.config, args.gpu_memory_gb)
    else:
        add_measurements(args)


def print_memory_plan(config_path: str, gpu_memory_gb: float | None = None) -> None:
    """Print every trained stage's memory estimate and the largest micro-batch that fits in
    ``gpu_memory_gb`` (default: the config's ``gpu_memory_gb``)."""
    from vqdna.workflow import study

    config = yaml.safe_load(Path(config_path).read_text())
    if gpu_memory_gb is not None:
        config["gpu_memory_gb"] = gpu_memory_gb
    for name, estimate, fits in study.memory_plan(config):
        print(f"{name}: {estimate}; largest micro-batch that fits in {config['gpu_memory_gb']} GiB: {fits}")


def add_measurements(args: argparse.Namespace) -> None:
    """The ``measure`` command: a finished run's job seconds replace its profile's in the table."""
    profile = args.profile
    if profile is None:
        provenance = Path(args.workdir) / "provenance.json"
        profile = json.loads(provenance.read_text()).get("profile", "") if provenance.exists() else ""
    new = measure(args.workdir, args.machine, profile)
    old = pd.read_csv(args.table) if Path(args.table).exists() else pd.DataFrame(columns=COLUMNS)
    old = old[old["profile"] != profile]  # a profile's last measured run replaces its earlier one
    pd.concat([old, new], ignore_index=True).to_csv(args.table, index=False)
    print(f"{len(new)} jobs of {args.workdir} ({profile}) -> {args.table}")


if __name__ == "__main__":
    main()
