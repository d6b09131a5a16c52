"""The classical reference row of every table: k-mer (3-6) spectrum + logistic regression
(:data:`BASELINE_NAME`). It shows what a tokenizer-free model gets from the same training split;
tables show it but never rank it."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from vqdna.sequence import N_INDEX, normalize, to_indices

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
            code = code * 4 + np.where(valid[j:j + m], index[j:j + m], 0)
            ok &= valid[j:j + m]
        counts = sparse.csr_matrix(
            (np.ones(ok.sum(), dtype=np.float32), (owner[:m][ok], code[ok])), shape=(len(seqs), 4 ** k)
        )
        blocks.append(l2_rows(counts))
    return sparse.hstack(blocks, format="csr")


def kmer_spectrum_baseline(train: pd.DataFrame, test: pd.DataFrame, seed: int = 0,
                           ks: Sequence[int] = (3, 4, 5, 6), C: float = 1.0, max_iter: int = 2000) -> dict:
    """The :data:`BASELINE_NAME` reference: logistic regression on :func:`kmer_spectrum`
    features of ``train`` -> ``{mcc, macro_f1, accuracy, n_train, n_test}`` on ``test``
    (DataFrames with ``sequence, label``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    model = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    model.fit(kmer_spectrum(train["sequence"], ks), train["label"].to_numpy())
    predicted = model.predict(kmer_spectrum(test["sequence"], ks))
    truth = test["label"].to_numpy()
    from vqdna.metrics import confusion

    return {
        "mcc": float(matthews_corrcoef(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro")),
        "accuracy": float(accuracy_score(truth, predicted)),
        "confusion_matrix": confusion(truth, predicted, int(max(truth.max(), predicted.max())) + 1),
        "n_train": len(train),
        "n_test": len(test),
    }
