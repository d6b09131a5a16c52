"""Classification metrics as GUE reports them (scikit-learn MCC, macro F1, accuracy)."""

from __future__ import annotations

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
