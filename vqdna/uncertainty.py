"""How uncertain a score is, from every source of randomness in the study.

A classification score here depends on three random things: the *replicate* (the seed that
trains the tokenizer and pre-trains the encoder), the *fine-tuning seed* (initial head, batch
order) and the *test set* (a few hundred sequences drawn from a population). This module turns
the runs of one table cell into

- :func:`hierarchical_interval`: a 95% interval of the cell's mean score that resamples all
  three: replicates, fine-tuning runs within each replicate, and test sequences within each run
  (from its confusion matrix, so no predictions need to be stored);
- :func:`bootstrap_interval`: the test-set interval of a single run (as NLP harnesses report);
- :func:`variance_components`: how much of the run-to-run variance comes from the replicate
  (tokenizer + pre-training) and how much from fine-tuning (a nested one-way ANOVA).

Scores are computed from confusion matrices with the same definitions as scikit-learn
(:mod:`vqdna.metrics`); a test checks they agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

METRICS = ("mcc", "macro_f1", "accuracy")


def metric_from_confusion(confusions: np.ndarray, metric: str) -> np.ndarray:
    """``metric`` of confusion matrices (..., C, C) (rows true, columns predicted) -> (...).

    MCC is the multiclass (Gorodkin) form, 0 where undefined; macro-F1 averages over the classes
    that occur in the truth or the predictions, as scikit-learn does."""
    cm = np.asarray(confusions, dtype=float)
    true, predicted = cm.sum(-1), cm.sum(-2)
    correct, total = np.trace(cm, axis1=-2, axis2=-1), cm.sum((-2, -1))
    if metric == "accuracy":
        return correct / np.maximum(total, 1)
    if metric == "mcc":
        numerator = correct * total - (true * predicted).sum(-1)
        denominator = np.sqrt((total**2 - (predicted**2).sum(-1)) * (total**2 - (true**2).sum(-1)))
        return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)
    if metric == "macro_f1":
        diagonal = np.diagonal(cm, axis1=-2, axis2=-1)
        support = true + predicted
        f1 = np.divide(2 * diagonal, support, out=np.zeros_like(support), where=support > 0)
        present = support > 0
        return (f1 * present).sum(-1) / np.maximum(present.sum(-1), 1)
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def _resample(confusion: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` bootstrap copies of a test set given as its confusion matrix: (n, C, C)."""
    cm = np.asarray(confusion, dtype=np.int64)
    total = int(cm.sum())
    if total == 0:
        raise ValueError("empty confusion matrix: no test predictions to resample")
    draws = rng.multinomial(total, cm.ravel() / total, size=n)
    return draws.reshape(n, *cm.shape)


def bootstrap_interval(
    confusion, metric: str, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of one run's ``metric`` over bootstrap resamples of its test set."""
    rng = np.random.default_rng(seed)
    values = metric_from_confusion(_resample(confusion, n_boot, rng), metric)
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def hierarchical_interval(
    replicates: Sequence[str | int],
    confusions: Sequence,
    metric: str,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of a cell's mean ``metric`` that resamples every source of randomness:
    replicates with replacement, then the runs (fine-tuning seeds) of each drawn replicate with
    replacement, then the test set of each drawn run. ``replicates[i]`` names the replicate of
    the run whose confusion matrix is ``confusions[i]``. With one replicate and one run this is
    :func:`bootstrap_interval`."""
    if len(replicates) != len(confusions) or not len(confusions):
        raise ValueError("need one replicate label per confusion matrix, and at least one run")
    rng = np.random.default_rng(seed)
    groups: dict = {}
    for replicate, confusion in zip(replicates, confusions):
        groups.setdefault(replicate, []).append(np.asarray(confusion))
    groups = list(groups.values())
    # every run's test-set resamples, drawn once: (runs, n_boot)
    per_run = [[metric_from_confusion(_resample(cm, n_boot, rng), metric) for cm in runs] for runs in groups]
    means = np.empty(n_boot)
    columns = np.arange(n_boot)
    for b in range(n_boot):
        drawn = rng.integers(len(groups), size=len(groups))
        values = []
        for g in drawn:
            runs = per_run[g]
            values.extend(runs[r][columns[b]] for r in rng.integers(len(runs), size=len(runs)))
        means[b] = np.mean(values)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def variance_components(runs: pd.DataFrame, value: str = "score", replicate: str = "replicate") -> dict:
    """Nested one-way ANOVA of run scores grouped by replicate (balanced or not).

    -> ``between`` (variance of the replicate effect: tokenizer + pre-training), ``within``
    (fine-tuning seeds inside a replicate), ``share_replicate`` = between / (between + within)
    (NaN when neither can be estimated), ``n_replicates`` and ``runs_per_replicate`` (mean).
    The method-of-moments estimate is clipped at zero, as usual."""
    grouped = runs.groupby(replicate)[value]
    sizes, variances, means = grouped.size(), grouped.var(ddof=1), grouped.mean()
    within = float(variances[sizes > 1].mean()) if (sizes > 1).any() else np.nan
    between = np.nan
    if len(means) > 1:
        n_bar = float(sizes.mean())
        between = float(means.var(ddof=1)) - (within / n_bar if not np.isnan(within) else 0.0)
        between = max(0.0, between)
    total = (between if not np.isnan(between) else 0.0) + (within if not np.isnan(within) else 0.0)
    share = between / total if total > 0 and not np.isnan(between) and not np.isnan(within) else np.nan
    return {
        "between": between,
        "within": within,
        "share_replicate": share,
        "n_replicates": int(len(means)),
        "runs_per_replicate": float(sizes.mean()),
    }
