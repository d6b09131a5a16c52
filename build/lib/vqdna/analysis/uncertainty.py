"""How uncertain a score is, counting each source of randomness once.

A classification score here depends on three random things: the *replicate* (the seed that
trains the tokenizer and pre-trains the encoder), the *fine-tuning seed* and the *test set*.
The first two differ from run to run; the test set does not: every run of a task, whatever its
tokenizer, scores the same test sequences. So

- the **test-set term** is one bootstrap over the task's test sequences: :func:`test_draws`
  draws the resampled indices once per task, and every run (every cell, both sides of every
  difference) is scored on the same draws (:func:`run_draws`, from the per-sequence outcomes
  each record keeps). Six copies of one run have exactly that run's test-set interval;
- the **model term** is the spread of the replicate means (each the mean of its fine-tuning
  runs, all on the same test set). With 3 replicates it is a t-based term (:func:`model_term`):
  the variance of the mean, s^2 / n, with n - 1 degrees of freedom (Welch-Satterthwaite for a
  difference of two cells). A run's own errors on the test sequences are in both terms, so that
  part is counted once (:func:`shared_noise`, the crossed-design correction, taken out of the
  test-set term, which is estimated from hundreds of sequences);
- an interval (:func:`interval`) is the percentile interval of their sum: the test-set draws
  plus an independent draw of the scaled t term. With no model noise it is the test-set
  percentile interval; with no test-set noise it is the t interval of the replicate means.
  (Tried and rejected in the simulation tests with 3 replicates: a normal model term widened by
  t / z at the Welch-Satterthwaite degrees of freedom of the sum covered 92%; taking the shared
  part out of the model term, with Satterthwaite's reduced degrees of freedom, over-covered and
  gave intervals twice the t interval's width on the real study.)

Records written before per-sequence outcomes were kept have only confusion matrices. Their
test-set term is then a bound (:func:`vqdna.core.metrics.confusion_draws`): each run is resampled from its own
confusion matrix and the runs of a cell are coupled comonotonically (sorted draws averaged), as
if their test-set errors were perfectly correlated, the widest case; the two sides of a
difference are taken as independent. Tables label such intervals.

:func:`variance_components` splits the run-to-run variance into replicate and fine-tuning shares.
Scores are computed with the same definitions as scikit-learn (:mod:`vqdna.core.metrics`); tests
check that, the known answers above and the coverage of the intervals by simulation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from vqdna.core.metrics import N_BOOT, metric_from_confusion


def test_draws(n_test: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """(n_boot, n_test) indices of test sequences drawn with replacement: one set per task,
    shared by every run scored on that task."""
    if n_test < 1:
        raise ValueError("no test sequences to resample")
    return np.random.default_rng(seed).integers(n_test, size=(n_boot, n_test))


def run_draws(
    labels, predictions, draws: np.ndarray, metric: str, n_classes: int | None = None
) -> np.ndarray:
    """One run's ``metric`` on each resampled test set of ``draws`` -> (n_boot,)."""
    labels, predictions = np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape or draws.shape[1] != len(labels):
        raise ValueError(
            f"{len(labels)} labels, {len(predictions)} predictions and draws over {draws.shape[1]} "
            "test sequences: a task's runs must score the same test set"
        )
    c = int(n_classes or max(labels.max(), predictions.max()) + 1)
    out = np.empty(len(draws))
    for start in range(0, len(draws), 250):  # bounded memory: 250 x n_test at a time
        chunk = draws[start : start + 250]
        cells = labels[chunk] * c + predictions[chunk] + (np.arange(len(chunk)) * c * c)[:, None]
        confusions = np.bincount(cells.ravel(), minlength=len(chunk) * c * c).reshape(len(chunk), c, c)
        out[start : start + len(chunk)] = metric_from_confusion(confusions, metric)
    return out


def model_term(replicates: Sequence, scores: Sequence[float]) -> tuple[float, float, int]:
    """The run-to-run (model) uncertainty of a cell's mean score -> (variance of the mean,
    degrees of freedom, units). The units are the replicates (each the mean of its runs) when
    there are at least 2, else the runs themselves (fine-tuning seeds of one replicate), else
    none: (0, inf, 1)."""
    frame = pd.DataFrame({"replicate": list(replicates), "score": np.asarray(scores, dtype=float)})
    units = frame.groupby("replicate", sort=True)["score"].mean().to_numpy()
    if len(units) < 2:
        units = frame["score"].to_numpy()
    if len(units) < 2:
        return 0.0, math.inf, 1
    return float(units.var(ddof=1) / len(units)), float(len(units) - 1), len(units)


def unit_ids(replicates: Sequence, n_runs: int) -> np.ndarray:
    """The unit each run belongs to for :func:`model_term`: its replicate when there are at
    least 2, else the run itself."""
    replicates = np.asarray(list(replicates))
    return np.unique(replicates, return_inverse=True)[1] if len(set(replicates)) > 1 else np.arange(n_runs)


def shared_noise(unit_draws: np.ndarray, cell_draws: np.ndarray) -> float:
    """The part of a cell's two terms that both count (crossed design of runs x test
    sequences): a run's own errors on this test set move its unit mean, so they are in the
    spread of the unit means, and they move the per-sequence outcomes, so they are in the
    test-set bootstrap too. With R units, unit draws (R, n_boot) and the cell-mean draws: (mean
    unit bootstrap variance - cell bootstrap variance) / (R - 1), the method-of-moments estimate
    of that interaction over R (clipped at 0). :attr:`vqdna.analysis.effects.Cell.test_set` takes it out."""
    n_units = len(unit_draws)
    if n_units < 2:
        return 0.0
    within = float(np.mean(np.var(unit_draws, axis=1, ddof=1)))
    return max(0.0, (within - float(np.var(cell_draws, ddof=1))) / (n_units - 1))


def welch(terms: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Sum of independent variance terms (variance, degrees of freedom) -> (variance, Welch-
    Satterthwaite degrees of freedom); a term with zero variance adds nothing."""
    variance = sum(v for v, _ in terms)
    denominator = sum(v * v / df for v, df in terms if v > 0 and math.isfinite(df))
    return variance, (variance * variance / denominator if denominator > 0 else math.inf)


def interval(
    point: float,
    test_set: np.ndarray | None,
    variance: float,
    df: float,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of an estimate's ``test_set`` draws (None: no test-set term, the
    point instead) plus an independent t(``df``) draw scaled by sqrt(``variance``), the model
    term's variance of the mean. No model variance: exactly the test-set percentile interval;
    no test set: the t interval of the replicate means."""
    draws = np.full(N_BOOT, float(point)) if test_set is None else np.asarray(test_set, dtype=float)
    if variance > 0:
        rng = np.random.default_rng(seed + 7919)
        t = rng.standard_t(df, size=len(draws)) if math.isfinite(df) else rng.standard_normal(len(draws))
        draws = draws + math.sqrt(variance) * t
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(low), float(high)


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Student t interval of the mean of ``values`` (NaNs with fewer than 2)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


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
