"""Tables from the gathered metrics records (:func:`vqdna.workflow.records.collect_metrics`): per-task
scores with every source of randomness in their intervals, ranks, the variance split, the
Table 1 / 6 analogues, and CSV/Markdown writing (the pretext check: :mod:`vqdna.analysis.pretext`;
the ablation tables: :mod:`vqdna.analysis.ablation_tables`).

Pure pandas / scipy (no torch). Scores are reported x100, like the paper. Ranks are computed
within one (suite, task, protocol, coverage) group and average ranks within one protocol label,
so reduced-train tasks are ranked apart from full-data ones and rows that saw different bases
are never ranked against each other. The classical reference (:data:`BASELINE_NAME`) appears in
every table but is not ranked: ranks compare tokenizers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from vqdna.analysis.baselines import BASELINE_NAME
from vqdna.analysis.paper import (
    PAPER_NAMES,
    PAPER_TABLE1,
    PAPER_TABLE6,
    PAPER_TASKS,
    SPECIES_TASKS,
)
from vqdna.analysis.pretext import pretext_table
from vqdna.workflow.records import WHOLE_SEQUENCES


def _paper_value(papers: pd.Series, tokenizer: str, paper_names: Mapping[str, str]) -> float:
    """The first published number for ``tokenizer`` in the records' ``paper`` dicts."""
    for paper in papers:
        if isinstance(paper, dict):
            for key in (tokenizer, paper_names.get(tokenizer)):
                if key in paper:
                    return float(paper[key])
    return math.nan


def summary_table(
    df: pd.DataFrame,
    stage: str,
    paper_names: Mapping[str, str] = PAPER_NAMES,
    paper_tasks: Mapping[str, str] = PAPER_TASKS,
) -> pd.DataFrame:
    """Per suite x task x tokenizer x protocol: n_runs (replicates x fine-tuning seeds), n_replicates,
    mean and sd over runs, the 95% interval over every source of randomness (x100), rank,
    average rank and the paper's number.

    ``paper``: for fine-tuning, the records' ``paper`` dict (the task's published fine-tuning
    scores), else Table 1 for a task that ``paper_tasks`` maps to CVC; for the linear probe
    Table 1 only (the records' dicts hold fine-tuning scores). Names via ``paper_names``.

    Non-ablation records of ``stage`` only, plus the :data:`BASELINE_NAME` rows (stage
    ``baseline``) of the same tasks as unranked references (``is_reference``). ``rank``: 1 = best
    within (suite, task, protocol, coverage), ties averaged. ``avg_rank``: the tokenizer's mean rank over
    the tasks of its protocol label; ``n_ranked_tasks`` how many tasks that is.
    """
    runs, rows = _summary_runs(df, stage)
    table = _cell_statistics(rows, ["suite", "task", "tokenizer", "protocol", "coverage", "metric"])
    table[["mean", "sd", "ci_low", "ci_high"]] *= 100
    pretext = pretext_table(df)
    learned = dict(zip(pretext["tokenizer"], pretext["learned"])) if len(pretext) else {}
    table["pretext learned"] = [learned.get(t, "–") for t in table["tokenizer"]]
    table["paper"] = _paper_numbers(table, runs, stage, paper_names, paper_tasks)
    return _ranked(table)


def _summary_runs(df: pd.DataFrame, stage: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the non-ablation runs of ``stage``, those runs plus the reference rows of their tasks),
    the second with ``notes`` as lists, ``replicate`` filled and the LP-FT flags ``lpft`` and
    ``kept`` (a run of finetune.head_init: probe that kept its linear-probe start, step 0)."""
    plain = df[df["ablation_name"].isna()] if "ablation_name" in df else df
    runs = plain[plain["stage"] == stage]
    if runs.empty:
        raise ValueError(f"no {stage!r} records")
    base = plain[(plain["stage"] == "baseline")]
    # the reference row is shown (unranked) in every protocol group of its task
    base = base.drop(columns=["protocol", "coverage"]).merge(
        runs[["suite", "task", "protocol", "coverage"]].drop_duplicates(), on=["suite", "task"]
    )
    base = base.assign(
        notes=[
            [] if c == WHOLE_SEQUENCES else ["reference reads the whole sequences"] for c in base["coverage"]
        ]
    )
    rows = pd.concat([runs, base])
    if "notes" not in rows:
        rows = rows.assign(notes=[[] for _ in range(len(rows))])
    rows = rows.assign(notes=[n if isinstance(n, list) else [] for n in rows["notes"]])
    if "replicate" not in rows:
        rows = rows.assign(replicate=0)
    lpft = [
        isinstance(st, dict) and st.get("head_init") == "probe"
        for st in rows.get("settings", [None] * len(rows))
    ]
    kept = rows["best_step"].eq(0).to_numpy() if "best_step" in rows else False
    rows = rows.assign(
        replicate=rows["replicate"].fillna(0).astype(int), lpft=lpft, kept=np.logical_and(lpft, kept)
    )
    return runs, rows


def _cell_statistics(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per table cell (``keys``): run and replicate counts, mean and sd (fractions),
    notes, how many LP-FT runs kept their probe start, the 95% interval and its test-set term."""
    table = (
        rows.groupby(keys, sort=True)
        .agg(
            n_runs=("score", "size"),
            n_replicates=("replicate", "nunique"),
            mean=("score", "mean"),
            sd=("score", "std"),
            notes=("notes", lambda ns: "; ".join(sorted({n for note in ns for n in note}))),
            lpft_runs=("lpft", "sum"),
            kept_runs=("kept", "sum"),
        )
        .reset_index()
    )
    kept = zip(table.pop("kept_runs"), table.pop("lpft_runs"))
    table["probe start kept"] = [f"{k}/{n}" if n else "–" for k, n in kept]
    intervals = {key: _cell_interval(group) for key, group in rows.groupby(keys, sort=True)}
    table["ci_low"] = [intervals[tuple(k)][0] for k in table[keys].itertuples(index=False)]
    table["ci_high"] = [intervals[tuple(k)][1] for k in table[keys].itertuples(index=False)]
    terms = {key: _test_set_term(group) for key, group in rows.groupby(keys, sort=True)}
    table["test set in interval"] = [terms[tuple(k)] for k in table[keys].itertuples(index=False)]
    return table


def _paper_numbers(
    table: pd.DataFrame,
    runs: pd.DataFrame,
    stage: str,
    paper_names: Mapping[str, str],
    paper_tasks: Mapping[str, str],
) -> list[float]:
    """The published number of each table row (:func:`summary_table` says which)."""
    papers = runs.groupby(["suite", "task"])["paper"] if "paper" in runs and stage == "finetune" else None
    table1 = PAPER_TABLE1.get(stage, {})

    def paper(suite, task, tokenizer):
        found = (
            _paper_value(papers.get_group((suite, task)), tokenizer, paper_names)
            if papers is not None
            else math.nan
        )
        fallback = pd.Series([table1.get(paper_tasks.get(task))])
        return found if not math.isnan(found) else _paper_value(fallback, tokenizer, paper_names)

    return [paper(s, t, tok) for s, t, tok in zip(table["suite"], table["task"], table["tokenizer"])]


def _ranked(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``is_reference``, the rank within each (suite, task, protocol, coverage)
    group and the average rank over the tasks of each protocol label, in reading order."""
    table["is_reference"] = table["tokenizer"] == BASELINE_NAME
    ranked = table[~table["is_reference"]]
    table["rank"] = ranked.groupby(["suite", "task", "protocol", "coverage"])["mean"].rank(
        ascending=False, method="average"
    )
    avg = ranked.assign(rank=table["rank"]).groupby(["protocol", "tokenizer"])["rank"].agg(["mean", "size"])
    avg.columns = ["avg_rank", "n_ranked_tasks"]
    table = table.merge(avg.reset_index(), on=["protocol", "tokenizer"], how="left")
    order = ["suite", "task", "protocol", "coverage", "is_reference", "rank"]
    return table.sort_values(order).reset_index(drop=True)


def _cell_interval(runs: pd.DataFrame, metric: str | None = None) -> tuple[float, float]:
    """95% interval of a table cell's mean score (``metric``; default: the task's), as fractions:
    the task's shared test-set bootstrap plus a t term over replicates
    (:meth:`vqdna.analysis.effects.Cell.interval`; a bound where records lack per-sequence outcomes)."""
    from vqdna.analysis.effects import _has_confusions, _has_outcomes, cells_of_task

    if runs.empty or not (_has_outcomes(runs) or _has_confusions(runs)):  # no test-set term: no interval
        return math.nan, math.nan
    runs = runs.assign(replicate=runs.get("replicate", pd.Series(0, index=runs.index)).fillna(0))
    if metric:
        runs = runs.assign(metric=metric, score=runs[metric])
    task = f"{runs['suite'].iloc[0]}/{runs['task'].iloc[0]}"
    cells = cells_of_task(runs.assign(tokenizer="cell"), task, n_boot=1000)
    low, high = cells["cell"].interval()
    return low / 100, high / 100


def _test_set_term(runs: pd.DataFrame) -> str:
    """How a cell's interval counts the test set: "shared" (per-sequence outcomes) or "bound"."""
    from vqdna.analysis.effects import _has_outcomes

    return "shared" if _has_outcomes(runs) else "bound"


def variance_table(df: pd.DataFrame, stage: str = "finetune") -> pd.DataFrame:
    """Per task x tokenizer (non-ablation ``stage`` runs): the run-to-run variance of the score
    (x100 squared) split into between replicates (tokenizer + pre-training) and within them
    (fine-tuning seeds), and the replicate share (:func:`vqdna.analysis.uncertainty.variance_components`);
    a last row per tokenizer pools the tasks (mean of each component)."""
    from vqdna.analysis.uncertainty import variance_components

    plain = df[df["ablation_name"].isna()] if "ablation_name" in df else df
    runs = plain[plain["stage"] == stage]
    columns = [
        "task",
        "tokenizer",
        "replicates",
        "runs per replicate",
        "between replicates",
        "within (fine-tuning)",
        "replicate share %",
    ]
    if runs.empty or "replicate" not in runs:
        return pd.DataFrame(columns=columns)
    rows = []
    for (task, tokenizer), group in runs.groupby(["task", "tokenizer"]):
        parts = variance_components(group.assign(score=100 * group["score"]))
        rows.append(
            {
                "task": task,
                "tokenizer": tokenizer,
                "replicates": parts["n_replicates"],
                "runs per replicate": parts["runs_per_replicate"],
                "between replicates": parts["between"],
                "within (fine-tuning)": parts["within"],
                "replicate share %": 100 * parts["share_replicate"],
            }
        )
    table = pd.DataFrame(rows, columns=columns)
    pooled = table.groupby("tokenizer")[["between replicates", "within (fine-tuning)"]].mean().reset_index()
    pooled["replicate share %"] = (
        100 * pooled["between replicates"] / (pooled["between replicates"] + pooled["within (fine-tuning)"])
    )
    pooled["task"] = "all tasks (mean)"
    return pd.concat([table, pooled], ignore_index=True)[columns]


def average_ranks(summary: pd.DataFrame) -> pd.DataFrame:
    """Per protocol label and tokenizer: average rank, n ranked tasks and mean score (x100)."""
    ranked = summary[~summary["is_reference"]]
    return (
        ranked.groupby(["protocol", "tokenizer"])
        .agg(avg_rank=("rank", "mean"), n_tasks=("rank", "size"), mean_score=("mean", "mean"))
        .reset_index()
        .sort_values(["protocol", "avg_rank"])
        .reset_index(drop=True)
    )


def _fmt(value: float, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def format_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """Display strings: ``ours`` as "mean ± sd" beside ``paper``, ranks to one decimal."""
    ours = [
        _fmt(m) + ("" if math.isnan(s) else f" ± {s:.2f}") for m, s in zip(summary["mean"], summary["sd"])
    ]
    interval = [
        "–" if math.isnan(lo) else f"[{lo:.1f}, {hi:.1f}]"
        for lo, hi in zip(summary["ci_low"], summary["ci_high"])
    ]
    return pd.DataFrame(
        {
            "suite": summary["suite"],
            "task": summary["task"],
            "protocol": summary["protocol"],
            "coverage": summary["coverage"],
            "tokenizer": summary["tokenizer"],
            "metric": summary["metric"],
            "replicates": summary["n_replicates"],
            "runs": summary["n_runs"],
            "ours (x100) mean ± sd": ours,
            "95% CI": interval,
            "test set in CI": summary["test set in interval"],
            "paper": [_fmt(v) for v in summary["paper"]],
            "rank": [_fmt(v, 1) for v in summary["rank"]],
            "avg rank": [_fmt(v, 2) for v in summary["avg_rank"]],
            "pretext learned": summary["pretext learned"],
            "probe start kept": summary["probe start kept"],
            "notes": summary["notes"],
        }
    )


def markdown(table: pd.DataFrame) -> str:
    """A GitHub markdown table of ``table`` (index dropped; floats to 2 decimals, NaN as –);
    a table without columns is "(none)"."""
    if len(table.columns) == 0:
        return "(none)\n"

    def cell(value) -> str:
        if isinstance(value, float):
            return "–" if math.isnan(value) else f"{value:.0f}" if value.is_integer() else f"{value:.2f}"
        return str(value)

    header = [" ".join(map(str, c)).strip() if isinstance(c, tuple) else str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in table.itertuples(index=False, name=None)]
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, stem: str | Path, display: pd.DataFrame | None = None) -> None:
    """``stem``.csv (``table`` as is) and ``stem``.md (``display``, default ``table``)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(stem.with_suffix(".csv"), index=False)
    stem.with_suffix(".md").write_text(markdown(table if display is None else display))


def tokenizer_comparison(df: pd.DataFrame) -> pd.DataFrame:
    """Paper Table 1 per task: vocabulary usage on the task's training data (lowest codebook
    level for VQ/HRQ, %), linear-probe and fine-tuning scores (mean over seeds, x100), with the
    paper's CVC numbers for GUE covid only."""
    plain = df[df["ablation_name"].isna()] if "ablation_name" in df else df
    rows = []
    for (suite, task, tokenizer), group in plain[plain["stage"].isin(["linear_probe", "finetune"])].groupby(
        ["suite", "task", "tokenizer"]
    ):
        probe, tune = group[group["stage"] == "linear_probe"], group[group["stage"] == "finetune"]
        usage = [
            min(u) for u in probe.get("vocab_usage", pd.Series(dtype=object)) if isinstance(u, list) and u
        ]
        rows.append(
            {
                "suite": suite,
                "task": task,
                "tokenizer": tokenizer,
                "usage %": 100 * float(np.mean(usage)) if usage else math.nan,
                "linear probe": 100 * probe["score"].mean() if len(probe) else math.nan,
                "fine-tune": 100 * tune["score"].mean() if len(tune) else math.nan,
                "fine-tune sd": 100 * tune["score"].std() if len(tune) > 1 else math.nan,
            }
        )
    return pd.DataFrame(rows)


def species_length_table(
    df: pd.DataFrame, tasks: Mapping[str, tuple] = SPECIES_TASKS, paper_names: Mapping[str, str] = PAPER_NAMES
) -> pd.DataFrame:
    """Paper Table 6 analogue: top-1 accuracy (x100: mean ± sd over runs and the 95% interval
    over replicates, seeds and test set) per stage, species set, tokenizer and sequence length,
    with the bp each tokenizer saw (``coverage``), the k-mer-spectrum reference row (whole
    sequences) and the paper's numbers at the lengths it reports (1k, 20k, 32k, fine-tuned; its
    task is 5 mammals, ours the embedded genomes). Empty when no species task ran."""
    plain = df[df["ablation_name"].isna()] if "ablation_name" in df else df
    runs = plain[
        plain["stage"].isin(["finetune", "linear_probe", "baseline"]) & plain["task"].isin(list(tasks))
    ]
    if runs.empty or not runs["stage"].isin(["finetune", "linear_probe"]).any():
        return pd.DataFrame()
    runs = runs.assign(
        coverage=runs.get("coverage", pd.Series(index=runs.index, dtype=object)).where(
            runs["stage"] != "baseline", "whole sequences (k-mer counts)"
        )
    )
    rows = []
    for (stage, task, tokenizer, protocol, coverage), group in runs.groupby(
        ["stage", "task", "tokenizer", "protocol", "coverage"]
    ):
        species, length = tasks[task]
        mean, sd = 100 * group["accuracy"].mean(), 100 * group["accuracy"].std()
        low, high = (100 * v for v in _cell_interval(group, "accuracy"))
        rows.append(
            {
                "stage": stage,
                "species": species,
                "length": length,
                "tokenizer": tokenizer,
                "protocol": protocol,
                "coverage": coverage,
                "ours": _fmt(mean)
                + ("" if math.isnan(sd) else f" ± {sd:.2f}")
                + ("" if math.isnan(low) else f" [{low:.1f}, {high:.1f}]"),
            }
        )
    long = pd.DataFrame(rows)
    long["length"] = long["length"].map(lambda n: f"{n // 1000}k bp")
    wide = long.pivot_table(
        index=["stage", "species", "protocol", "tokenizer"],
        columns="length",
        values=["ours", "coverage"],
        aggfunc="first",
    )
    wide.columns = [f"{length} {'acc' if what == 'ours' else 'coverage'}" for what, length in wide.columns]
    wide = wide[sorted(wide.columns, key=lambda c: (int(c.split("k")[0]), c))].reset_index()
    for length in sorted({n for table in PAPER_TABLE6.values() for n in table}):
        published = [
            PAPER_TABLE6.get(paper_names.get(t, t), {}).get(length, math.nan) for t in wide["tokenizer"]
        ]
        wide[f"paper {length // 1000}k"] = [_fmt(v) for v in published]
    return wide
