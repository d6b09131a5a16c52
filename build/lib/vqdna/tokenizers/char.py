"""The single-nucleotide tokenizer (one-hot baseline, HyenaDNA-style)."""

from __future__ import annotations

import numpy as np

from vqdna.core.sequence import to_indices
from vqdna.tokenizers.base import N_SPECIAL, Tokenizer

#: the bases, in id order (A=5 ... N=9)
BASES = "ACGTN"


class CharTokenizer(Tokenizer):
    """One token per base: A=5 C=6 G=7 T=8 N=9."""

    name = "char"
    config_types = ("char",)

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL + 5

    @property
    def params(self) -> dict:
        return {}

    @classmethod
    def from_spec(cls, spec: dict) -> "CharTokenizer":
        return cls()

    def _encode(self, seq: str) -> np.ndarray:
        ids = to_indices(seq)  # a fresh int8 array: shifted in place
        ids += N_SPECIAL
        return ids

    def _encode_many(self, seqs: list[str]) -> list[np.ndarray]:
        """One pass over the concatenation, split back into rows."""
        return np.split(self._encode("".join(seqs)), np.cumsum([len(s) for s in seqs])[:-1])

    def _decode(self, ids: np.ndarray) -> str:
        return "".join(BASES[i] for i in np.where(ids < N_SPECIAL, 4, ids - N_SPECIAL))
