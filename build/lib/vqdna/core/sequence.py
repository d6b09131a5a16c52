"""The one input policy every tokenizer and data loader applies to DNA text.

Policy (documented in README, "Data and input policy"):
- each character is judged as written, before any case change: ``A C G T U N`` and the IUPAC
  ambiguity codes ``R Y S W K M B D H V``, upper or lower case, pass; whitespace means the ASCII
  space, tab, CR and LF only and is removed wherever it occurs;
- letters are upper-cased, RNA ``U`` becomes ``T``, the IUPAC codes become ``N``: the study has
  no use for partial ambiguity, and one unknown-base symbol keeps every vocabulary small;
- any other character (``-``, digits, other control characters, non-ASCII letters, ``\\ufeff``)
  raises ``ValueError`` naming the character as written, its code point and its 1-based position
  in the input as written (whitespace counted), plus the file and line when the caller says where
  the sequence came from;
- an empty sequence (after whitespace removal) raises ``ValueError``.

How ``N`` is then tokenized is each tokenizer's documented choice (char: its own token;
k-mer: a k-mer with N is [UNK]; BPE: an ordinary symbol; VQ/HRQ: an all-zero one-hot column).
"""

from __future__ import annotations

import re

import numpy as np

BASES = "ACGT"
AMBIGUOUS = "NRYSWKMBDHV"
WHITESPACE = " \t\r\n"
#: index of each normalised symbol in the 5-letter alphabet used by one-hot / integer encodings
BASE_INDEX = {"A": 0, "C": 1, "G": 2, "T": 3, "N": 4}
N_INDEX = 4

_ACCEPTED = BASES + "U" + AMBIGUOUS
_INVALID = re.compile(f"[^{_ACCEPTED}{_ACCEPTED.lower()}{re.escape(WHITESPACE)}]")
_CHANGED = re.compile("[^ACGTN]")  # once _INVALID passed: a character that translate would change
_TRANSLATE = str.maketrans(
    {
        **{c: None for c in WHITESPACE},
        **{c.lower(): c for c in BASES},
        "U": "T",
        "u": "T",
        **{c: "N" for c in AMBIGUOUS},
        **{c.lower(): "N" for c in AMBIGUOUS},
    }
)
_LOOKUP = np.full(256, -1, dtype=np.int8)
for _base, _index in BASE_INDEX.items():
    _LOOKUP[ord(_base)] = _index


def normalize(seq: str, where: str = "", offset: int = 0) -> str:
    """Apply the input policy; ``where`` (e.g. ``"train.csv line 12"``) prefixes error messages and
    ``offset`` is added to reported positions (a piece of a longer line)."""
    prefix = f"{where}: " if where else ""
    if not isinstance(seq, str):
        raise ValueError(f"{prefix}sequence must be a string, got {type(seq).__name__}")
    bad = _INVALID.search(seq)
    if bad:
        char = bad.group()
        raise ValueError(
            f"{prefix}invalid character {char!r} at position {offset + bad.start() + 1} (U+{ord(char):04X})"
        )
    if _CHANGED.search(
        seq
    ):  # an already normalised sequence is returned as is: no second copy of a long record
        seq = seq.translate(_TRANSLATE)
    if not seq:
        raise ValueError(f"{prefix}empty sequence")
    return seq


def to_indices(seq: str) -> np.ndarray:
    """Normalised sequence -> int8 array over A=0 C=1 G=2 T=3 N=4 (vectorised)."""
    return _LOOKUP[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]


def from_indices(indices) -> str:
    """Inverse of :func:`to_indices`."""
    return "".join("ACGTN"[int(i)] for i in indices)
