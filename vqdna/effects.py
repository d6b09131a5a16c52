"""Paired effects between tokenizers across tasks: is "A beats B" (the paper's Table 1 ordering)
supported by this run, and how large a difference could it have detected?

One comparison A - B (scores x100) yields:

- per task: the difference of replicate means, with a 95% bootstrap interval that resamples
  each tokenizer's replicates (every source of randomness a replicate carries: tokenizer
  training, pre-training and fine-tuning seeds);
- over tasks: the mean difference with a hierarchical bootstrap interval (tasks, then
  replicates within each drawn task), a Wilcoxon signed-rank test on the per-task differences
  (tasks as the random unit: does it generalise to tasks like these?), a permutation test that
  flips A/B within each task x replicate pair (replicates as the unit, tasks fixed: is it more
  than replicate noise on these tasks?), how many tasks the ordering holds in, and the minimal
  detectable difference of a paired test over these tasks (two-sided alpha, power 0.8);
- a verdict: "holds" when the interval excludes zero on A's side and both tests reject;
  "does not hold" when the same holds for B over A; otherwise "inconclusive at this power".

:data:`BEST_BASELINE` as B stands for the best non-codebook tokenizer of each task (the
highest replicate mean; picked after seeing the scores, so the comparison favours B).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

BEST_BASELINE = "best baseline"
HOLDS, FAILS = "holds", "does not hold"
COLUMNS = [
    "comparison",
    "n_tasks",
    "mean_diff",
    "ci_low",
    "ci_high",
    "wilcoxon_p",
    "permutation_p",
    "tasks_a_better",
    "tasks_a_better_ci",
    "mdd",
    "verdict",
]


def replicate_means(df: pd.DataFrame, stage: str = "finetune", protocol: str | None = None) -> pd.DataFrame:
    """Score x100 per task x tokenizer x replicate (mean over fine-tuning seeds) of the
    non-ablation ``stage`` runs, plus the deterministic baseline rows (stage ``baseline``, one
    replicate) of the same tasks. ``protocol``: keep one protocol label (default: all).
    Columns: task ("suite/task"), tokenizer, replicate, score."""
    plain = df[df["ablation_name"].isna()] if "ablation_name" in df else df
    runs = plain[plain["stage"] == stage]
    if protocol is not None:
        runs = runs[runs["protocol"] == protocol]
    tasks = set(zip(runs["suite"], runs["task"]))
    in_tasks = np.array([k in tasks for k in zip(plain["suite"], plain["task"])], dtype=bool)
    base = plain[(plain["stage"] == "baseline").to_numpy() & in_tasks]
    rows = pd.concat([runs, base])
    if rows.empty:
        return pd.DataFrame(columns=["task", "tokenizer", "replicate", "score"])
    rows = rows.assign(
        task=rows["suite"] + "/" + rows["task"],
        replicate=rows.get("replicate", pd.Series(0, index=rows.index)).fillna(0).astype(int),
        score=100 * rows["score"].astype(float),
    )
    return rows.groupby(["task", "tokenizer", "replicate"], as_index=False)["score"].mean()


def _per_task(means: pd.DataFrame, a: str, b: str, baselines: Sequence[str]) -> dict[str, tuple]:
    """task -> (A's replicate scores, B's replicate scores, B's name) for tasks both ran."""
    out = {}
    for task, group in means.groupby("task"):
        scores = {t: g.sort_values("replicate")["score"].to_numpy() for t, g in group.groupby("tokenizer")}
        name = b
        if b == BEST_BASELINE:
            present = [t for t in baselines if t in scores]
            name = max(present, key=lambda t: scores[t].mean()) if present else None
        if a in scores and name in scores:
            out[task] = (scores[a], scores[name], name)
    return out


def _paired(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Replicate-paired differences x_r - y_r; a single-run side (a deterministic baseline) is
    paired with every replicate of the other."""
    if 1 in (len(x), len(y)):
        n = max(len(x), len(y))
        return np.resize(x, n) - np.resize(y, n)
    n = min(len(x), len(y))
    return x[:n] - y[:n]


def _bootstrap_diff(
    pairs: list[tuple[np.ndarray, np.ndarray]], n_boot: int, rng, resample_tasks: bool
) -> np.ndarray:
    """Bootstrap distribution of the mean over tasks of (mean A - mean B): replicates of each
    side resampled within a task, tasks resampled too when ``resample_tasks``."""
    n = len(pairs)
    draws = np.empty(n_boot)
    for i in range(n_boot):
        picked = rng.integers(n, size=n) if resample_tasks else range(n)
        draws[i] = np.mean(
            [
                pairs[t][0][rng.integers(len(pairs[t][0]), size=len(pairs[t][0]))].mean()
                - pairs[t][1][rng.integers(len(pairs[t][1]), size=len(pairs[t][1]))].mean()
                for t in picked
            ]
        )
    return draws


def sign_flip_p(differences: Sequence[np.ndarray], n_perm: int = 20000, seed: int = 0) -> float:
    """Two-sided permutation p of the mean over tasks of the mean paired difference, flipping
    the sign of each task x replicate difference independently (exact when there are at most
    2**14 flips, else ``n_perm`` random ones, with the observed one counted)."""
    lengths = [len(d) for d in differences]
    flat = np.concatenate(differences)
    weights = np.concatenate([np.full(n, 1 / (n * len(lengths))) for n in lengths])
    observed = abs(float(flat @ weights))
    if len(flat) <= 14:
        signs = np.array(list(itertools.product((1, -1), repeat=len(flat))))
        return float(np.mean(np.abs(signs @ (flat * weights)) >= observed - 1e-12))
    signs = np.random.default_rng(seed).choice((1, -1), size=(n_perm, len(flat)))
    return float((np.sum(np.abs(signs @ (flat * weights)) >= observed - 1e-12) + 1) / (n_perm + 1))


def minimal_detectable_difference(
    task_differences: Sequence[float], alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest true mean difference a paired t-test over these tasks detects with ``power`` at
    two-sided ``alpha``: (t_{1-alpha/2} + t_{power}) x sd / sqrt(n), n - 1 degrees of freedom."""
    d = np.asarray(task_differences, dtype=float)
    if len(d) < 2:
        return math.nan
    df = len(d) - 1
    return float(
        (stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * d.std(ddof=1) / math.sqrt(len(d))
    )


def _task_rows(
    per_task: dict[str, tuple], comparison: str, n_boot: int, level: float, seed: int
) -> pd.DataFrame:
    """Per task: the difference of replicate means and its bootstrap interval over replicates."""
    rng = np.random.default_rng(seed)
    tail = (1 - level) / 2
    rows = []
    for task, (x, y, name) in per_task.items():
        low, high = np.quantile(
            _bootstrap_diff([(x, y)], n_boot, rng, resample_tasks=False), [tail, 1 - tail]
        )
        rows.append(
            {
                "comparison": comparison,
                "task": task,
                "b": name,
                "diff": x.mean() - y.mean(),
                "ci_low": low,
                "ci_high": high,
            }
        )
    return pd.DataFrame(rows, columns=["comparison", "task", "b", "diff", "ci_low", "ci_high"])


def task_differences(
    means: pd.DataFrame,
    a: str,
    b: str,
    baselines: Sequence[str] = (),
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per task both ran: comparison, task, b (the tokenizer B stood for), diff (A - B
    replicate means, x100) and its bootstrap interval over replicates."""
    return _task_rows(_per_task(means, a, b, baselines), f"{a} - {b}", n_boot, level, seed)


def effect(
    means: pd.DataFrame,
    a: str,
    b: str,
    baselines: Sequence[str] = (),
    alpha: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict:
    """A - B over the tasks both ran (module docstring): one row of :data:`COLUMNS`."""
    per_task = _per_task(means, a, b, baselines)
    row = dict.fromkeys(COLUMNS, math.nan) | {"comparison": f"{a} - {b}", "n_tasks": len(per_task)}
    if not per_task:
        return row | {"verdict": "inconclusive (no task ran by both)"}
    pairs = list(per_task.values())
    diffs = np.array([x.mean() - y.mean() for x, y, _ in pairs])
    rng = np.random.default_rng(seed)
    draws = _bootstrap_diff([(x, y) for x, y, _ in pairs], n_boot, rng, resample_tasks=len(pairs) > 1)
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    per_task_ci = _task_rows(per_task, row["comparison"], n_boot // 4, 0.95, seed)
    wilcoxon = (
        float(stats.wilcoxon(diffs).pvalue) if len(diffs) > 1 and not np.allclose(diffs, 0) else math.nan
    )
    permutation = sign_flip_p([_paired(x, y) for x, y, _ in pairs], seed=seed)
    mdd = minimal_detectable_difference(diffs, alpha)
    row.update(
        mean_diff=float(diffs.mean()),
        ci_low=float(low),
        ci_high=float(high),
        wilcoxon_p=wilcoxon,
        permutation_p=permutation,
        tasks_a_better=int((diffs > 0).sum()),
        tasks_a_better_ci=int((per_task_ci["ci_low"] > 0).sum()),
        mdd=mdd,
    )
    significant = wilcoxon < alpha and permutation < alpha
    if significant and low > 0:
        row["verdict"] = HOLDS
    elif significant and high < 0:
        row["verdict"] = FAILS
    elif len(pairs) < 2:
        row["verdict"] = "inconclusive (one task: no test across tasks)"
    else:
        row["verdict"] = f"inconclusive at this power (detectable: {mdd:.1f} points)"
    return row


def ordering_effects(
    means: pd.DataFrame,
    ordering: Sequence[str],
    baselines: Sequence[str] = (),
    reference: str | None = None,
    alpha: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
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
    rows = [effect(means, a, b, baselines, alpha, n_boot, seed) for a, b in pairs]
    chain = [r["verdict"] for r in rows[: len(ordering) - 1]]
    verdict = (
        HOLDS
        if chain and all(v == HOLDS for v in chain)
        else FAILS
        if FAILS in chain
        else "inconclusive at this power: "
        + ", ".join(r["comparison"] for r in rows[: len(chain)] if r["verdict"] != HOLDS)
    )
    n_tasks = min((r["n_tasks"] for r in rows[: len(chain)]), default=0)
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
    n_boot: int = 2000,
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
            means = replicate_means(df, stage, protocol)
            names = set(means["tokenizer"])
            present = [t for t in ordering if t in names]
            if len(present) < 2:
                continue
            baselines = sorted(t for t in names if t not in codebooks and t != reference)
            extra = [
                effect(means, present[0], t, n_boot=n_boot)
                for t in sorted(names - set(ordering) - {reference})
            ]
            table = pd.concat(
                [
                    ordering_effects(
                        means, present, baselines, reference if reference in names else None, n_boot=n_boot
                    ),
                    pd.DataFrame(extra, columns=COLUMNS),
                ]
            )
            blocks.append(table.assign(stage=stage, protocol=protocol))
            plotted = [*zip(present, present[1:]), (present[0], BEST_BASELINE)] + (
                [(present[0], reference)] if reference in names else []
            )
            differences += [
                task_differences(means, a, b, baselines, n_boot=n_boot // 4).assign(
                    stage=stage, protocol=protocol
                )
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
        else pd.DataFrame(
            columns=["comparison", "task", "b", "diff", "ci_low", "ci_high", "stage", "protocol"]
        )
    )
    return effects, per_task
