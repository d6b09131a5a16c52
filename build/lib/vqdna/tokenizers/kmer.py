"""k-mer tokenizers: overlapping (DNABERT) and non-overlapping (Nucleotide Transformer)."""

from __future__ import annotations

import numpy as np

from vqdna.core.sequence import N_INDEX, to_indices
from vqdna.tokenizers.base import N_SPECIAL, UNK_ID, Tokenizer
from vqdna.tokenizers.safety import check_int


class KmerTokenizer(Tokenizer):
    """k-mers starting every ``stride`` bases: stride 1 = overlapping (DNABERT), stride k =
    non-overlapping (Nucleotide Transformer).

    Vocabulary: the 4^k k-mers in lexicographic ACGT order (id ``5 + base-4 value``), then the
    single bases A C G T N. A k-mer containing N is ``[UNK]``. Bases after the last full k-mer
    (a remainder shorter than k with stride k; a whole sequence shorter than k) become single-base
    tokens, as in the Nucleotide Transformer.
    """

    name = "kmer"
    config_types = ("kmer",)

    def __init__(self, k: int = 6, stride: int = 1):
        k = check_int("k", k, 1, 12)  # vocabulary 4^k
        stride = check_int("stride", stride, 1, k)  # larger strides would skip bases
        self.k, self.stride = k, stride
        self._single_offset = N_SPECIAL + 4**k

    @property
    def vocab_size(self) -> int:
        return self._single_offset + 5

    @property
    def params(self) -> dict:
        return {"k": self.k, "stride": self.stride}

    @classmethod
    def from_spec(cls, spec: dict) -> "KmerTokenizer":
        return cls(k=spec["k"], stride=spec.get("stride", 1))

    def _decode(self, ids: np.ndarray) -> str:
        """Each base is read off any k-mer covering it; a base covered only by ``[UNK]`` k-mers
        (those with an N) or ``[MASK]`` decodes as N, so sequences without N round-trip exactly."""
        k, stride = self.k, self.stride
        singles = ids >= self._single_offset
        n_kmers = int(np.argmax(singles)) if singles.any() else len(ids)
        kmers, tail = ids[:n_kmers], ids[n_kmers:]
        if (tail < self._single_offset).any():
            raise ValueError("k-mer ids after single-base ids: not an encoding of one sequence")
        length = (n_kmers - 1) * stride + k if n_kmers else 0
        out = np.full(length, 4, dtype=np.int64)  # N until some k-mer says otherwise
        value = kmers - N_SPECIAL
        known = kmers >= N_SPECIAL  # [UNK] (a k-mer with N) and [MASK] fix no base
        for j in range(k):  # base j of every k-mer at once
            digit = (value // 4 ** (k - 1 - j)) % 4
            out[np.arange(n_kmers)[known] * stride + j] = digit[known]
        bases = np.concatenate([out, tail - self._single_offset]).astype(np.int64)
        return "".join("ACGTN"[b] for b in bases)

    @property
    def mlm_span(self) -> int:
        """Overlapping k-mers are masked in spans of ceil(k / stride) tokens (DNABERT's scheme):
        a lone masked k-mer could be read off its unmasked neighbours, which share k - stride
        bases with it; a span that long leaves at least one of its bases in no unmasked token."""
        return -(-self.k // self.stride)

    #: a sequence longer than this (bp) is encoded block by block: temporaries stay ~10 MB
    block = 1 << 18

    def _encode(self, seq: str) -> np.ndarray:
        if len(seq) <= self.block:
            return self._encode_many([seq])[0]
        k, stride = self.k, self.stride
        count = (len(seq) - k) // stride + 1
        covered = (count - 1) * stride + k
        ids = np.empty(count + len(seq) - covered, dtype=self.id_dtype)
        step = stride * max(1, self.block // stride)
        for start in range(0, count * stride, step):  # each block: its k-mers, no remainder bases
            block = self._encode_many([seq[start : min(start + step, count * stride) - stride + k]])[0]
            ids[start // stride : start // stride + len(block)] = block
        ids[count:] = self._single_offset + to_indices(seq[covered:]).astype(np.int64)
        return ids

    def _encode_many(self, seqs: list[str]) -> list[np.ndarray]:
        """The id of the k-mer starting at every position of the sequences' concatenation, in k
        vectorised passes; then each row is two slices (its k-mer starts, its remainder bases)."""
        k, stride = self.k, self.stride
        idx = to_indices("".join(seqs)).astype(np.int64)
        base = np.concatenate([np.minimum(idx, 3), np.zeros(k - 1, dtype=np.int64)])  # N read as A...
        ids = np.zeros(len(idx), dtype=np.int64)
        for j in range(k):  # base-4 value: add the j-th base of every k-mer at once
            ids *= 4
            ids += base[j : j + len(idx)]
        ids += N_SPECIAL
        is_n = idx == N_INDEX
        if is_n.any():  # ...then every k-mer with an N becomes [UNK]
            n_before = np.concatenate([[0], np.cumsum(is_n)])
            n_until_end = np.concatenate([n_before[k:], np.full(k - 1, n_before[-1])])
            ids[n_until_end > n_before[:-1]] = UNK_ID
        rows, start = [], 0
        for seq in seqs:
            count = 0 if len(seq) < k else (len(seq) - k) // stride + 1
            covered = (count - 1) * stride + k if count else 0
            rows.append(
                np.concatenate(
                    [
                        ids[start : start + count * stride : stride],
                        self._single_offset + idx[start + covered : start + len(seq)],
                    ]
                ).astype(self.id_dtype)
            )
            start += len(seq)
        return rows
