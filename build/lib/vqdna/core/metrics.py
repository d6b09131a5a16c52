"""Classification metrics as GUE reports them (scikit-learn MCC, macro F1, accuracy), the same
scores computed from confusion matrices, and a run's test-set bootstrap interval from its
confusion matrix (the ``test_interval`` every classification record carries; the study-level
intervals that count each source of randomness once are vqdna.analysis.uncertainty's)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# scikit-learn is imported inside the functions: it costs 1.5 s CPU and 120 MB RSS, and most
# importers of vqdna.train.classify (tokenizer and pre-training jobs) never compute a metric.


def classification_metrics(y_true, y_pred) -> dict[str, float]:
    """-> {"mcc", "macro_f1", "accuracy"} as plain floats (MCC is 0 for a constant prediction)."""
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return {
        "mcc": float(matthews_corrcoef(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }


def confusion(y_true, y_pred, num_classes: int | None = None) -> list[list[int]]:
    """Confusion matrix as nested lists (rows = true class, columns = predicted), JSON-able;
    ``num_classes`` fixes its size even when a class never occurs."""
    from sklearn.metrics import confusion_matrix

    labels = None if num_classes is None else list(range(num_classes))
    return confusion_matrix(np.asarray(y_true), np.asarray(y_pred), labels=labels).tolist()


#: the per-sequence test outcomes a classification record keeps (vqdna.analysis.uncertainty resamples
#: them: every run of a task scores the same test sequences, so one draw serves them all)
OUTCOME_FIELDS = ("test_labels", "test_predictions")


def test_outcomes(y_true, y_pred) -> dict[str, list[int]]:
    """The true and predicted class of every test sequence, in test-set order, JSON-able."""
    return {
        "test_labels": np.asarray(y_true).astype(int).tolist(),
        "test_predictions": np.asarray(y_pred).astype(int).tolist(),
    }


METRICS = ("mcc", "macro_f1", "accuracy")
#: bootstrap draws of the test set per task
N_BOOT = 2000


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


def bootstrap_interval(
    confusion, metric: str, n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of one run's ``metric`` over bootstrap resamples of its test set
    (multinomial draws from its confusion matrix: the same law as resampling its sequences)."""
    draws = confusion_draws([confusion], metric, n_boot, seed)
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(low), float(high)


def confusion_draws(confusions: Sequence, metric: str, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """The bound for records without per-sequence outcomes (module docstring): each run's
    ``metric`` over multinomial resamples of its confusion matrix, sorted, then averaged over
    the runs rank by rank -> (n_boot,) draws of the runs' mean (comonotone coupling)."""
    rng = np.random.default_rng(seed)
    sorted_runs = []
    for confusion in confusions:
        cm = np.asarray(confusion, dtype=np.int64)
        total = int(cm.sum())
        if total == 0:
            raise ValueError("empty confusion matrix: no test predictions to resample")
        resampled = rng.multinomial(total, cm.ravel() / total, size=n_boot).reshape(n_boot, *cm.shape)
        sorted_runs.append(np.sort(metric_from_confusion(resampled, metric)))
    return np.mean(sorted_runs, axis=0)
