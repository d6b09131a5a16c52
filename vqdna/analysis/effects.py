"""Paired effects between tokenizers across tasks: is "A beats B" (the paper's Table 1 ordering)
supported by this run, and how large a difference could the rule have detected?

Each table cell (task x tokenizer) is a :class:`Cell`: its runs' scores (x100) and the draws of
its mean over the task's shared test-set bootstrap (:mod:`vqdna.analysis.uncertainty`). One comparison
A - B yields:

- per task: the difference of the cell means, with a 95% interval that counts the shared test
  set once (both cells scored on the same resampled test sets) and the model noise of each side
  as a Welch t term over replicates;
- over tasks: the mean difference with a t interval over the per-task differences (tasks as the
  random unit: each task's difference carries its own replicate and test-set noise), the exact
  Wilcoxon signed-rank p, how many tasks A is ahead in (and with an interval excluding 0), and
  the smallest true difference the verdict's rule detects with power 0.8
  (:func:`vqdna.analysis.power.detectable`, by simulation of that rule);
- a verdict: "holds" when the Wilcoxon p < alpha and the interval excludes zero on A's side;
  "does not hold" when the same holds for B; "inconclusive at this power (detectable: x)"
  otherwise. With fewer than :func:`vqdna.analysis.power.min_tasks` tasks no exact two-sided
  Wilcoxon p can reach alpha, so the verdict says "no across-task test possible with N tasks"
  instead of a number.

:data:`BEST_BASELINE` as B stands for the best non-codebook tokenizer of each task (the
highest mean; picked after seeing the scores, so the comparison favours B).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from vqdna.analysis import uncertainty
from vqdna.analysis.power import detectable, min_tasks
from vqdna.core import metrics
from vqdna.core.metrics import OUTCOME_FIELDS

BEST_BASELINE = "best baseline"
HOLDS, FAILS = "holds", "does not hold"
#: how the verdict of a comparison with too few tasks for the exact test begins
NO_TEST = "no across-task test possible"
COLUMNS = [
    "comparison",
    "n_tasks",
    "mean_diff",
    "ci_low",
    "ci_high",
    "wilcoxon_p",
    "tasks_a_better",
    "tasks_a_better_ci",
    "mdd",
    "test_set_term",
    "verdict",
]
TASK_COLUMNS = ["comparison", "task", "b", "diff", "ci_low", "ci_high", "test_set_term"]
#: how a cell's test-set term was computed (tables print it)
SHARED, BOUND = "shared test set", "bound (no per-sequence outcomes)"


@dataclass
class Cell:
    """The runs of one task x tokenizer: replicate of each run, score x100 of each run, and
    ``draws``: the cell mean (x100) on each resampled test set (``term``: SHARED or BOUND).
    Intervals shift the draws to the recorded mean, so they always bracket the table's number."""

    replicates: list
    scores: np.ndarray
    draws: np.ndarray
    term: str
    unit_draws: np.ndarray | None = None  # (units, n_boot): each unit's mean on the same draws

    @property
    def mean(self) -> float:
        return float(self.scores.mean())

    @property
    def model(self) -> tuple[float, float]:
        variance, df, _ = uncertainty.model_term(self.replicates, self.scores)
        return variance, df

    @cached_property
    def test_set(self) -> np.ndarray:
        """The test-set draws of the mean, centred on the recorded mean, with the runs' own
        errors on these sequences taken out (they are in the model term already;
        :func:`vqdna.analysis.uncertainty.shared_noise`): the draws shrink towards the mean by
        sqrt(1 - shared / bootstrap variance). Taking it from this term, estimated from hundreds
        of sequences, leaves the model term its full t degrees of freedom."""
        centred = self.draws - self.draws.mean()
        if self.unit_draws is not None:
            total = float(np.var(self.draws, ddof=1))
            shared = uncertainty.shared_noise(self.unit_draws, self.draws)
            centred = centred * (max(0.0, total - shared) / total) ** 0.5 if total > 0 else centred
        return centred + self.mean

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """The cell mean's interval: shared test-set draws + the t term over replicates."""
        return uncertainty.interval(self.mean, self.test_set, *self.model, level)


def _has_outcomes(runs: pd.DataFrame) -> bool:
    if not set(OUTCOME_FIELDS) <= set(runs.columns):
        return False
    return all(isinstance(v, list) and len(v) for v in runs["test_predictions"])


def _has_confusions(runs: pd.DataFrame) -> bool:
    """Every run has a confusion matrix (the bound's input when outcomes are missing)."""
    return "confusion_matrix" in runs and all(
        isinstance(c, list) and len(c) for c in runs["confusion_matrix"]
    )


def cells_of_task(runs: pd.DataFrame, task: str, n_boot: int = metrics.N_BOOT) -> dict[str, Cell]:
    """tokenizer -> :class:`Cell` for the runs of one task (columns tokenizer, replicate, score
    as a fraction, metric, and the outcome fields or confusion_matrix). The task's test-set
    draws are seeded by its name, so every table draws the same ones."""
    seed = zlib.crc32(task.encode())
    metric = runs["metric"].iloc[0] if "metric" in runs else "mcc"
    shared = _has_outcomes(runs)
    if shared:
        lengths = {len(v) for v in runs["test_labels"]}
        if len(lengths) != 1:
            raise ValueError(f"{task}: runs scored different test sets ({sorted(lengths)} sequences)")
        draws = uncertainty.test_draws(lengths.pop(), n_boot, seed)
        n_classes = (
            max(max(max(a), max(b)) for a, b in zip(runs["test_labels"], runs["test_predictions"])) + 1
        )
    cells = {}
    for tokenizer, group in runs.groupby("tokenizer", sort=True):
        unit_draws = None
        if shared:
            per_run = [
                uncertainty.run_draws(labels, predicted, draws, metric, n_classes)
                for labels, predicted in zip(group["test_labels"], group["test_predictions"])
            ]
            per_run = 100 * np.asarray(per_run)
            mean_draws = per_run.mean(0)
            units = uncertainty.unit_ids(group["replicate"].fillna(0), len(group))
            unit_draws = np.stack([per_run[units == u].mean(0) for u in np.unique(units)])
        elif _has_confusions(group):
            mean_draws = 100 * metrics.confusion_draws(list(group["confusion_matrix"]), metric, n_boot, seed)
        else:
            mean_draws = np.full(n_boot, 100 * float(group["score"].mean()))
        cells[tokenizer] = Cell(
            replicates=list(group["replicate"].fillna(0).astype(int)),
            scores=100 * group["score"].to_numpy(dtype=float),
            draws=mean_draws,
            term=SHARED if shared else BOUND,
            unit_draws=unit_draws,
        )
    return cells


def task_runs(df: pd.DataFrame, stage: str = "finetune", protocol: str | None = None) -> pd.DataFrame:
    """The non-ablation ``stage`` runs (one ``protocol`` label, default all) plus the
    deterministic baseline rows (stage ``baseline``) of the same tasks, with ``task`` as
    "suite/task" and ``replicate`` filled."""
    plain = df[df["ablation_name"].isna()] if "ablation_name" in df else df
    runs = plain[plain["stage"] == stage]
    if protocol is not None:
        runs = runs[runs["protocol"] == protocol]
    tasks = set(zip(runs["suite"], runs["task"]))
    in_tasks = np.array([k in tasks for k in zip(plain["suite"], plain["task"])], dtype=bool)
    rows = pd.concat([runs, plain[(plain["stage"] == "baseline").to_numpy() & in_tasks]])
    if rows.empty:
        return rows.assign(task=pd.Series(dtype=str), replicate=pd.Series(dtype=int))
    replicate = rows["replicate"] if "replicate" in rows else pd.Series(0, index=rows.index)
    return rows.assign(task=rows["suite"] + "/" + rows["task"], replicate=replicate.fillna(0).astype(int))


def study_cells(
    df: pd.DataFrame, stage: str = "finetune", protocol: str | None = None, n_boot: int = metrics.N_BOOT
) -> dict[str, dict[str, Cell]]:
    """task -> tokenizer -> :class:`Cell` for one stage and protocol label."""
    runs = task_runs(df, stage, protocol)
    return {task: cells_of_task(group, task, n_boot) for task, group in runs.groupby("task", sort=True)}


def difference(a: Cell, b: Cell, level: float = 0.95, seed: int = 0) -> tuple[float, float, float, str]:
    """A - B on one task -> (difference, interval low, high, test-set term). Shared outcomes:
    both cells' draws come from the same resampled test sets, so their difference carries the
    test-set noise once; without them the sides are coupled independently (a bound)."""
    shared = a.term == SHARED and b.term == SHARED
    a_draws, b_draws = a.test_set, b.test_set
    b_draws = b_draws if shared else np.random.default_rng(seed).permutation(b_draws)
    diff = a.mean - b.mean
    draws = a_draws - b_draws + diff - (a.mean - b.mean)  # both centred on their recorded means
    low, high = uncertainty.interval(diff, draws, *uncertainty.welch([a.model, b.model]), level, seed)
    return diff, low, high, SHARED if shared else BOUND


def _pairs(cells: dict[str, dict[str, Cell]], a: str, b: str, baselines: Sequence[str]) -> dict:
    """task -> (A's cell, B's cell, B's name) for the tasks both ran."""
    out = {}
    for task, by_tokenizer in cells.items():
        name = b
        if b == BEST_BASELINE:
            present = [t for t in baselines if t in by_tokenizer]
            name = max(present, key=lambda t: by_tokenizer[t].mean) if present else None
        if a in by_tokenizer and name in by_tokenizer:
            out[task] = (by_tokenizer[a], by_tokenizer[name], name)
    return out


def task_differences(
    cells, a: str, b: str, baselines: Sequence[str] = (), level: float = 0.95
) -> pd.DataFrame:
    """One row per task both ran: comparison, task, b (the tokenizer B stood for), diff (x100)
    and its interval (:func:`difference`), and the test-set term."""
    rows = []
    for task, (x, y, name) in _pairs(cells, a, b, baselines).items():
        diff, low, high, term = difference(x, y, level)
        rows.append(
            {
                "comparison": f"{a} - {b}",
                "task": task,
                "b": name,
                "diff": diff,
                "ci_low": low,
                "ci_high": high,
            }
            | {"test_set_term": term}
        )
    return pd.DataFrame(rows, columns=TASK_COLUMNS)


def effect(cells, a: str, b: str, baselines: Sequence[str] = (), alpha: float = 0.05) -> dict:
    """A - B over the tasks both ran (module docstring): one row of :data:`COLUMNS`."""
    pairs = _pairs(cells, a, b, baselines)
    row = dict.fromkeys(COLUMNS, math.nan) | {"comparison": f"{a} - {b}", "n_tasks": len(pairs)}
    if not pairs:
        return row | {"verdict": "inconclusive (no task ran by both)"}
    per_task = task_differences(cells, a, b, baselines, 1 - alpha)
    diffs = per_task["diff"].to_numpy()
    if len(diffs) > 1:
        low, high = uncertainty.t_interval(diffs, 1 - alpha)
    else:
        low, high = per_task["ci_low"].iloc[0], per_task["ci_high"].iloc[0]
    wilcoxon = (
        float(stats.wilcoxon(diffs).pvalue) if len(diffs) > 1 and not np.allclose(diffs, 0) else math.nan
    )
    ahead, ahead_ci = int((diffs > 0).sum()), int((per_task["ci_low"] > 0).sum())
    terms = set(per_task["test_set_term"])
    row.update(
        mean_diff=float(diffs.mean()),
        ci_low=float(low),
        ci_high=float(high),
        wilcoxon_p=wilcoxon,
        tasks_a_better=ahead,
        tasks_a_better_ci=ahead_ci,
        mdd=detectable(diffs, alpha),
        test_set_term=terms.pop() if len(terms) == 1 else BOUND,
    )
    n = len(diffs)
    if n < min_tasks(alpha):
        row["verdict"] = (
            f"{NO_TEST} with {n} task{'s' if n > 1 else ''} "
            f"({a} ahead on {ahead_ci} of {n} with an interval excluding 0, behind on "
            f"{int((per_task['ci_high'] < 0).sum())})"
        )
    elif wilcoxon < alpha and low > 0:
        row["verdict"] = HOLDS
    elif wilcoxon < alpha and high < 0:
        row["verdict"] = FAILS
    else:
        row["verdict"] = f"inconclusive at this power (detectable: {row['mdd']:.1f} points)"
    return row


def ordering_effects(
    cells,
    ordering: Sequence[str],
    baselines: Sequence[str] = (),
    reference: str | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """:func:`effect` for each adjacent pair of ``ordering`` (A > B claimed), then ordering[0]
    against :data:`BEST_BASELINE` and against ``reference`` (e.g. the k-mer-spectrum row), and a
    last row for the whole ordering: holds if every adjacent pair holds, does not hold if any
    pair is reversed, else inconclusive."""
    pairs = list(zip(ordering, ordering[1:]))
    if baselines:
        pairs.append((ordering[0], BEST_BASELINE))
    if reference:
        pairs.append((ordering[0], reference))
    rows = [effect(cells, a, b, baselines, alpha) for a, b in pairs]
    chain = [r["verdict"] for r in rows[: len(ordering) - 1]]
    n_tasks = min((r["n_tasks"] for r in rows[: len(chain)]), default=0)
    if chain and all(v == HOLDS for v in chain):
        verdict = HOLDS
    elif FAILS in chain:
        verdict = FAILS
    elif n_tasks < min_tasks(alpha):
        verdict = f"{NO_TEST} with {n_tasks} task{'s' if n_tasks != 1 else ''}"
    else:
        verdict = "inconclusive at this power: " + ", ".join(
            r["comparison"] for r in rows[: len(chain)] if r["verdict"] != HOLDS
        )
    rows.append(
        dict.fromkeys(COLUMNS, math.nan)
        | {"comparison": " > ".join(ordering), "n_tasks": n_tasks, "verdict": verdict}
    )
    return pd.DataFrame(rows, columns=COLUMNS)


ORDERING = ("hrq", "vq", "bpe", "kmer6", "char")  # the paper's Table 1 ordering


def study_effects(
    df: pd.DataFrame,
    ordering: Sequence[str] = ORDERING,
    reference: str | None = None,
    codebooks: Sequence[str] = ("hrq", "vq"),
    stages: Sequence[str] = ("finetune", "linear_probe"),
    n_boot: int = metrics.N_BOOT,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every comparison of a run, per stage and protocol label (never pooled across labels):
    :func:`ordering_effects` over the tokenizers of ``ordering`` that ran (baselines: every
    tokenizer not in ``codebooks``; ``reference``: the deterministic reference row's name), then
    ordering[0] against each other tokenizer not in ``ordering``. -> (effects, per-task
    differences of the plotted comparisons), both with ``stage`` and ``protocol`` columns."""
    plain = df[df["ablation_name"].isna()] if "ablation_name" in df else df
    blocks, differences = [], []
    for stage in stages:
        for protocol in sorted(plain.loc[plain["stage"] == stage, "protocol"].unique()):
            cells = study_cells(df, stage, protocol, n_boot)
            names = {t for by_tokenizer in cells.values() for t in by_tokenizer}
            present = [t for t in ordering if t in names]
            if len(present) < 2:
                continue
            baselines = sorted(t for t in names if t not in codebooks and t != reference)
            ref = reference if reference in names else None
            extra = [effect(cells, present[0], t) for t in sorted(names - set(ordering) - {reference})]
            table = pd.concat(
                [ordering_effects(cells, present, baselines, ref), pd.DataFrame(extra, columns=COLUMNS)]
            )
            blocks.append(table.assign(stage=stage, protocol=protocol))
            plotted = [*zip(present, present[1:]), (present[0], BEST_BASELINE)] + (
                [(present[0], ref)] if ref else []
            )
            differences += [
                task_differences(cells, a, b, baselines).assign(stage=stage, protocol=protocol)
                for a, b in plotted
            ]
    effects = (
        pd.concat(blocks, ignore_index=True)
        if blocks
        else pd.DataFrame(columns=[*COLUMNS, "stage", "protocol"])
    )
    per_task = (
        pd.concat(differences, ignore_index=True)
        if differences
        else pd.DataFrame(columns=[*TASK_COLUMNS, "stage", "protocol"])
    )
    return effects, per_task
