"""The power of the across-task verdict rule (exact two-sided Wilcoxon signed-rank p < alpha
and a t interval over tasks excluding 0, :func:`vqdna.analysis.effects.effect`): how many tasks
it needs before it can decide at all (:func:`min_tasks`), and the smallest true difference it
detects with power 0.8 (:func:`detectable`, by simulation of that rule)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import stats

#: power the "detectable" difference is computed for
POWER = 0.8


def min_tasks(alpha: float = 0.05) -> int:
    """Fewest tasks whose exact two-sided Wilcoxon signed-rank p can fall below ``alpha``
    (all n differences of one sign give p = 2 / 2**n): 6 for alpha 0.05."""
    return math.ceil(math.log2(2 / alpha) + 1e-12)


@lru_cache(maxsize=None)
def _signed_rank_cdf(n: int) -> np.ndarray:
    """P(W+ <= w) for w = 0..n(n+1)/2 under the null (exact, by counting subsets)."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1
    for rank in range(1, n + 1):
        counts[rank:] = counts[rank:] + counts[:-rank].copy()
    return np.cumsum(counts) / 2**n


def _rule_rejects(d: np.ndarray, alpha: float) -> np.ndarray:
    """Rows of ``d`` (simulated per-task differences) where the verdict rule says "holds":
    exact two-sided Wilcoxon p < alpha and the t interval's lower end above 0."""
    n = d.shape[1]
    ranks = np.abs(d).argsort(1).argsort(1) + 1
    w = (ranks * (d > 0)).sum(1)
    cdf = _signed_rank_cdf(n)
    total = n * (n + 1) // 2
    p = np.minimum(1.0, 2 * np.minimum(cdf[w], cdf[total - w]))  # P(W+ >= w) = P(W+ <= total - w)
    half = stats.t.ppf(1 - alpha / 2, n - 1) * d.std(1, ddof=1) / math.sqrt(n)
    return (p < alpha) & (d.mean(1) - half > 0)


@lru_cache(maxsize=None)
def _detectable_in_sd(n: int, alpha: float, power: float, n_sim: int = 4000) -> float:
    """Smallest true mean difference, in units of the per-task sd, that the verdict rule
    detects with ``power`` over ``n`` tasks (normal per-task differences; bisection on one
    fixed set of simulated studies, so the power curve is monotone)."""
    z = np.random.default_rng(12345).standard_normal((n_sim, n))
    low, high = 0.0, 20.0
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if _rule_rejects(z + middle, alpha).mean() < power else (low, middle)
    return high


def detectable(task_differences: Sequence[float], alpha: float = 0.05, power: float = POWER) -> float:
    """The difference the verdict's rule detects with ``power`` over these tasks, by simulation
    (tasks' differences normal with the observed sd); NaN below :func:`min_tasks` tasks, where
    the rule cannot reject at all."""
    d = np.asarray(task_differences, dtype=float)
    if len(d) < min_tasks(alpha):
        return math.nan
    return _detectable_in_sd(len(d), alpha, power) * float(d.std(ddof=1))
