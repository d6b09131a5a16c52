"""The one input policy every tokenizer and data loader applies to DNA text.

Policy (documented in README, "Input policy"):
- whitespace anywhere is removed, letters are upper-cased, RNA ``U`` becomes ``T``;
- IUPAC ambiguity codes (N R Y S W K M B D H V) become ``N``: the study has no use for
  partial ambiguity, and one unknown-base symbol keeps every vocabulary small;
- ``-`` and any other character raise ``ValueError`` naming the character and its position
  (plus the file and line when the caller says where the sequence came from);
- an empty sequence (after whitespace removal) raises ``ValueError``.

How ``N`` is then tokenized is each tokenizer's documented choice (char: its own token;
k-mer: a k-mer with N is [UNK]; BPE: an ordinary symbol; VQ/HRQ: an all-zero one-hot column).
"""
from __future__ import annotations

import re

import numpy as np

BASES = "ACGT"
AMBIGUOUS = "NRYSWKMBDHV"
#: index of each normalised symbol in the 5-letter alphabet used by one-hot / integer encodings
BASE_INDEX = {"A": 0, "C": 1, "G": 2, "T": 3, "N": 4}
N_INDEX = 4

_WHITESPACE = re.compile(r"\s+")
_TRANSLATE = str.maketrans({"U": "T", **{c: "N" for c in AMBIGUOUS}})
_VALID = set(BASES + "N")
_LOOKUP = np.full(256, -1, dtype=np.int8)
for _base, _index in BASE_INDEX.items():
    _LOOKUP[ord(_base)] = _index


def normalize(seq: str, where: str = "") -> str:
    """Apply the input policy; ``where`` (e.g. ``"train.csv line 12"``) prefixes error messages."""
    prefix = f"{where}: " if where else ""
    if not isinstance(seq, str):
        raise ValueError(f"{prefix}sequence must be a string, got {type(seq).__name__}")
    seq = _WHITESPACE.sub("", seq).upper().translate(_TRANSLATE)
    if not seq:
        raise ValueError(f"{prefix}empty sequence")
    if not _VALID.issuperset(seq):
        position, char = next((i, c) for i, c in enumerate(seq) if c not in _VALID)
        raise ValueError(f"{prefix}invalid character {char!r} at position {position + 1}")
    return seq


def to_indices(seq: str) -> np.ndarray:
    """Normalised sequence -> int8 array over A=0 C=1 G=2 T=3 N=4 (vectorised)."""
    return _LOOKUP[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]


def from_indices(indices) -> str:
    """Inverse of :func:`to_indices`."""
    return "".join("ACGTN"[int(i)] for i in indices)
