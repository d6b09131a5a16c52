"""The classical reference row of every table: k-mer (3-6) spectrum + logistic regression
(:data:`BASELINE_NAME`). It shows what a tokenizer-free model gets from the same training split;
tables show it but never rank it."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from vqdna.core.metrics import METRICS, OUTCOME_FIELDS, bootstrap_interval
from vqdna.core.protocol import deviation_tags
from vqdna.core.sequence import N_INDEX, normalize, to_indices

#: name of the k-mer spectrum logistic-regression reference row
BASELINE_NAME = "kmer-spectrum LR"


def kmer_spectrum(sequences: Sequence[str], ks: Sequence[int] = (3, 4, 5, 6)) -> sparse.csr_matrix:
    """Counts of every k-mer (k in ``ks``; windows with N skipped), each k's block L2-normalised
    so every k weighs the same -> sparse (n, sum 4^k). Vectorised over all sequences at once."""
    from sklearn.preprocessing import normalize as l2_rows

    seqs = [normalize(s) for s in sequences]
    index = to_indices("N".join(seqs)).astype(np.int64)  # the N separators end every k-mer
    owner = np.repeat(np.arange(len(seqs)), [len(s) + 1 for s in seqs])[: len(index)]
    valid = index != N_INDEX
    blocks = []
    for k in ks:
        m = len(index) - k + 1
        code, ok = np.zeros(m, dtype=np.int64), np.ones(m, dtype=bool)
        for j in range(k):
            code = code * 4 + np.where(valid[j : j + m], index[j : j + m], 0)
            ok &= valid[j : j + m]
        counts = sparse.csr_matrix(
            (np.ones(ok.sum(), dtype=np.float32), (owner[:m][ok], code[ok])), shape=(len(seqs), 4**k)
        )
        blocks.append(l2_rows(counts))
    return sparse.hstack(blocks, format="csr")


def kmer_spectrum_baseline(
    train: pd.DataFrame,
    test: pd.DataFrame,
    seed: int = 0,
    ks: Sequence[int] = (3, 4, 5, 6),
    C: float = 1.0,
    max_iter: int = 2000,
) -> dict:
    """The :data:`BASELINE_NAME` reference: logistic regression on :func:`kmer_spectrum`
    features of ``train`` -> ``{mcc, macro_f1, accuracy, n_train, n_test}`` on ``test``
    (DataFrames with ``sequence, label``)."""
    from sklearn.linear_model import LogisticRegression

    from vqdna.core.metrics import classification_metrics, confusion, test_outcomes

    model = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    model.fit(kmer_spectrum(train["sequence"], ks), train["label"].to_numpy())
    predicted = model.predict(kmer_spectrum(test["sequence"], ks))
    truth = test["label"].to_numpy()
    return {
        **classification_metrics(truth, predicted),
        "confusion_matrix": confusion(truth, predicted, int(max(truth.max(), predicted.max())) + 1),
        **test_outcomes(truth, predicted),
        "n_train": len(train),
        "n_test": len(test),
    }


def kmer_baseline_record(task: tuple[dict, dict], profile: str) -> dict:
    """The classical reference row: k-mer (3-6) spectrum + logistic regression on the task's
    train split, scored on test. Deterministic (lbfgs), so one run stands for every seed."""
    splits, meta = task
    result = kmer_spectrum_baseline(splits["train"], splits["test"], seed=0)
    return {
        "stage": "baseline",
        "suite": meta["suite"],
        "task": meta["task"],
        "tokenizer": BASELINE_NAME,
        "seed": 0,
        "replicate": 0,
        "metric": meta["metric"],
        **{k: float(result[k]) for k in ("mcc", "macro_f1", "accuracy")},
        "confusion_matrix": result["confusion_matrix"],
        **{k: result[k] for k in OUTCOME_FIELDS},
        "test_interval": {m: bootstrap_interval(result["confusion_matrix"], m) for m in METRICS},
        "deviations": deviation_tags(meta.get("deviations", [])),
        "deviation_details": meta.get("deviations", []),
        "paper": meta.get("paper", {}),
        "ablation": None,
        "profile": profile,
    }


def write_kmer_baseline(task_dir, out_path, profile: str) -> None:
    """The baseline job: prepared task folder -> metrics JSON."""
    from vqdna.data import tasks
    from vqdna.workflow.records import write_record

    write_record(kmer_baseline_record(tasks.read_task(task_dir), profile), out_path)
