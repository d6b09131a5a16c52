"""Intervals that count the shared test set once (vqdna.analysis.uncertainty, vqdna.analysis.effects.Cell):
known answers, and the coverage of the 95% intervals over simulated studies."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from vqdna.analysis import effects, uncertainty
from vqdna.core import metrics


def _runs(outcomes, replicates, task="gue/t", metric="accuracy", tokenizer="vq"):
    """Records of one cell from (labels, predictions) pairs."""
    rows = []
    for (labels, predictions), replicate in zip(outcomes, replicates):
        labels, predictions = np.asarray(labels), np.asarray(predictions)
        score = {
            "accuracy": accuracy_score,
            "mcc": matthews_corrcoef,
            "macro_f1": lambda y, p: f1_score(y, p, average="macro"),
        }[metric](labels, predictions)
        rows.append(
            {
                "suite": task.split("/")[0],
                "task": task.split("/")[1],
                "tokenizer": tokenizer,
                "replicate": replicate,
                "metric": metric,
                "score": score,
                "test_labels": labels.tolist(),
                "test_predictions": predictions.tolist(),
            }
        )
    return pd.DataFrame(rows)


def _one_run(n=300, accuracy=0.7, seed=0, classes=2):
    rng = np.random.default_rng(seed)
    labels = rng.integers(classes, size=n)
    wrong = rng.random(n) > accuracy
    return labels, np.where(wrong, (labels + 1) % classes, labels)


@pytest.mark.parametrize("metric", ["mcc", "macro_f1", "accuracy"])
def test_run_draws_are_the_metric_of_the_resampled_sequences(metric):
    labels, predictions = _one_run(classes=3)
    draws = uncertainty.test_draws(len(labels), n_boot=5, seed=1)
    got = uncertainty.run_draws(labels, predictions, draws, metric)
    score = {"mcc": matthews_corrcoef, "accuracy": accuracy_score}.get(
        metric, lambda y, p: f1_score(y, p, average="macro")
    )
    assert got == pytest.approx([score(labels[d], predictions[d]) for d in draws])


def test_runs_of_different_test_sets_are_refused():
    draws = uncertainty.test_draws(10, n_boot=3)
    with pytest.raises(ValueError, match="same test set"):
        uncertainty.run_draws([0] * 9, [0] * 9, draws, "accuracy")


def test_six_copies_of_one_run_have_that_runs_interval():
    """No run-to-run variance: the cell's interval is the single run's test-set interval (the
    old code averaged six independent resamples and gave a narrower one)."""
    run = _one_run(accuracy=0.65)
    one = effects.cells_of_task(_runs([run], [0], metric="mcc"), "gue/t")["vq"].interval()
    six = effects.cells_of_task(_runs([run] * 6, [0, 0, 1, 1, 2, 2], metric="mcc"), "gue/t")["vq"].interval()
    assert six == pytest.approx(one)
    confusion = [[int(((run[0] == a) & (run[1] == b)).sum()) for b in (0, 1)] for a in (0, 1)]
    classic = metrics.bootstrap_interval(confusion, "mcc")
    assert np.divide(one, 100) == pytest.approx(classic, abs=0.02)  # same law, other draws


def test_without_test_noise_the_interval_is_the_t_interval_of_replicate_means():
    scores = [30.0, 34.0, 41.0]
    low, high = uncertainty.interval(np.mean(scores), None, *uncertainty.model_term([0, 1, 2], scores)[:2])
    expected = uncertainty.t_interval(scores)
    assert (low, high) == pytest.approx(expected, rel=0.03)
    half = stats.t.ppf(0.975, 2) * np.std(scores, ddof=1) / math.sqrt(3)
    assert expected == pytest.approx((np.mean(scores) - half, np.mean(scores) + half))


def test_model_term_uses_replicate_means_then_runs():
    assert uncertainty.model_term([0, 0, 1, 1], [1.0, 3.0, 5.0, 7.0]) == pytest.approx((4.0, 1.0, 2))
    assert uncertainty.model_term([0, 0, 0], [1.0, 2.0, 3.0]) == pytest.approx((1 / 3, 2.0, 3))
    assert uncertainty.model_term([0], [1.0]) == (0.0, math.inf, 1)


def test_welch_satterthwaite_known_answer():
    variance, df = uncertainty.welch([(4.0, 2.0), (1.0, 4.0)])
    assert variance == 5.0 and df == pytest.approx(25 / (16 / 2 + 1 / 4))
    assert uncertainty.welch([(4.0, 2.0), (0.0, math.inf)]) == (4.0, 2.0)


def _simulated_cell(rng, n_test=250, n_reps=3, n_seeds=2, mu=0.4, rep_sd=0.25, seed_sd=0.1):
    """One cell of a simulated study: sequences of random difficulty (shared by every run),
    a replicate effect and a fine-tuning effect per run."""
    difficulty = rng.standard_normal(n_test)
    labels = rng.integers(2, size=n_test)
    outcomes, replicates = [], []
    for r in range(n_reps):
        b = rep_sd * rng.standard_normal()
        for _ in range(n_seeds):
            c = seed_sd * rng.standard_normal()
            correct = rng.random(n_test) < stats.norm.cdf(mu + b + c - difficulty)
            outcomes.append((labels, np.where(correct, labels, 1 - labels)))
            replicates.append(r)
    return outcomes, replicates


@pytest.mark.parametrize(
    ("rep_sd", "seed_sd", "naive_fails"),
    [(0.1, 0.05, True), (0.3, 0.1, False)],
    ids=["test-set noise dominates (as in the study)", "replicate noise dominates"],
)
def test_cell_interval_covers_the_true_mean_95_percent_of_the_time(rep_sd, seed_sd, naive_fails):
    """500 simulated studies; truth: expected accuracy over sequences and model randomness,
    Phi(mu / sqrt(1 + rep_sd^2 + seed_sd^2 + 1)) for difficulty ~ N(0, 1)."""
    mu = 0.4
    truth = stats.norm.cdf(mu / math.sqrt(1 + rep_sd**2 + seed_sd**2 + 1))
    rng = np.random.default_rng(2024)
    hits = naive_hits = 0
    for _ in range(500):
        outcomes, replicates = _simulated_cell(rng, mu=mu, rep_sd=rep_sd, seed_sd=seed_sd)
        cell = effects.cells_of_task(_runs(outcomes, replicates), "gue/t", n_boot=400)["vq"]
        low, high = cell.interval()
        hits += low <= 100 * truth <= high
        # the old construction: each run's test set resampled on its own, then averaged
        naive = np.mean(
            [
                uncertainty.run_draws(y, p, uncertainty.test_draws(len(y), 400, seed=i), "accuracy")
                for i, (y, p) in enumerate(outcomes)
            ],
            axis=0,
        )
        low, high = uncertainty.interval(100 * naive.mean(), 100 * naive, *cell.model)
        naive_hits += low <= 100 * truth <= high
    assert 0.93 <= hits / 500 <= 0.97, hits / 500
    if naive_fails:  # the check can fail: it does for the old construction
        assert naive_hits / 500 < 0.93, naive_hits / 500


def test_paired_difference_covers_and_is_narrower_than_the_bound():
    """A and B score the same test sequences, so their errors are correlated: the paired
    interval of A - B covers the true difference ~95% of the time and is narrower than the
    independent coupling used when outcomes are missing."""
    rng = np.random.default_rng(7)
    hits, paired_widths, bound_widths = 0, [], []
    truth = 100 * (
        stats.norm.cdf(0.6 / math.sqrt(1 + 0.2**2 + 1)) - stats.norm.cdf(0.4 / math.sqrt(1 + 0.2**2 + 1))
    )
    for _ in range(300):
        difficulty, labels = rng.standard_normal(250), rng.integers(2, size=250)
        rows = []
        for tokenizer, mu in (("a", 0.6), ("b", 0.4)):
            outcomes = []
            for _ in range(3):
                correct = rng.random(250) < stats.norm.cdf(mu + 0.2 * rng.standard_normal() - difficulty)
                outcomes.append((labels, np.where(correct, labels, 1 - labels)))
            rows.append(_runs(outcomes, [0, 1, 2], tokenizer=tokenizer))
        runs = pd.concat(rows, ignore_index=True)
        cells = effects.cells_of_task(runs, "gue/t", n_boot=400)
        _, low, high, term = effects.difference(cells["a"], cells["b"])
        assert term == effects.SHARED
        hits += low <= truth <= high
        bound = effects.cells_of_task(
            runs.drop(columns=["test_labels", "test_predictions"]).assign(
                confusion_matrix=[
                    [[int(((y == i) & (p == j)).sum()) for j in (0, 1)] for i in (0, 1)]
                    for y, p in (
                        map(np.asarray, o) for o in zip(runs["test_labels"], runs["test_predictions"])
                    )
                ]
            ),
            "gue/t",
            n_boot=400,
        )
        _, _, _, b_term = effects.difference(bound["a"], bound["b"])
        assert b_term == effects.BOUND
        # the test-set term of the difference: paired draws vs independently coupled sides
        paired_widths.append(np.std(cells["a"].draws - cells["b"].draws))
        bound_widths.append(np.std(bound["a"].draws - np.random.default_rng(0).permutation(bound["b"].draws)))
    assert 0.92 <= hits / 300 <= 0.98, hits / 300
    assert np.mean(paired_widths) < 0.8 * np.mean(bound_widths)


def test_variance_components_known_answer():
    runs = pd.DataFrame({"replicate": [0, 0, 1, 1], "score": [1.0, 3.0, 5.0, 7.0]})
    parts = uncertainty.variance_components(runs)
    assert parts["within"] == pytest.approx(2.0) and parts["between"] == pytest.approx(8.0 - 1.0)
