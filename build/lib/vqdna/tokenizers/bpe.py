"""Byte-pair encoding learned on DNA with Hugging Face ``tokenizers`` (DNABERT-2's tokenizer)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from vqdna.core.sequence import normalize
from vqdna.tokenizers.base import CONFIG_FILE, N_SPECIAL, SPECIAL_TOKENS, Tokenizer
from vqdna.tokenizers.safety import check_int, read_json


class BPETokenizer(Tokenizer):
    """Byte-pair encoding learned on a DNA corpus with HF ``tokenizers`` (as DNABERT-2).

    Alphabet ACGTN (N an ordinary symbol), no pre-tokenizer: a whole sequence is one word, so
    merges may span any position. Training is deterministic for a given corpus.

    HF merges a word in ~90 bytes per bp, so a sequence longer than ``window`` bp (default 65,536:
    ~6 MB) is encoded window by window and cut only where the whole-sequence encoding has a token
    boundary, giving identical ids (:meth:`_encode_long`). ``overlap`` (default 1,024 bp) sizes the
    stretch in which each cut is confirmed; ids are the same for any ``window`` and ``overlap``.
    """

    name = "bpe"
    config_types = ("bpe",)

    def __init__(
        self, vocab_size: int = 4096, min_frequency: int = 2, window: int = 65536, overlap: int = 1024
    ):
        vocab_size = check_int("vocab_size", vocab_size, 1)
        min_frequency = check_int("min_frequency", min_frequency, 0)
        window, overlap = check_int("window", window, 8), check_int("overlap", overlap, 4)
        if not 4 <= overlap <= window // 2:
            raise ValueError(f"need 4 <= overlap <= window / 2, got window {window}, overlap {overlap}")
        self.target_vocab_size, self.min_frequency = vocab_size, min_frequency
        self.window, self.overlap = window, overlap
        self._tokenizer = None

    @property
    def vocab_size(self) -> int:
        """Learned vocabulary size (can be below the requested one on a small corpus)."""
        return self._trained().get_vocab_size()

    @property
    def params(self) -> dict:
        return {"vocab_size": self.target_vocab_size, "min_frequency": self.min_frequency}

    @classmethod
    def from_spec(cls, spec: dict) -> "BPETokenizer":
        return cls(vocab_size=spec["vocab_size"], min_frequency=spec.get("min_frequency", 2))

    @classmethod
    def train_from_spec(
        cls,
        spec: dict,
        train_windows: list[str],
        val_windows: list[str],
        seed: int = 0,
        device: str | None = None,
        progress: bool = False,
        scale: dict | None = None,
    ) -> tuple["BPETokenizer", list[dict]]:
        """Learn the merges on the training windows (deterministic: no seed, no history)."""
        return cls.from_spec(spec).train(train_windows), []

    def _decode(self, ids: np.ndarray) -> str:
        hf = self._trained()
        return "".join("N" if i < N_SPECIAL else hf.id_to_token(i) for i in ids.tolist())

    def train(self, sequences: Iterable[str]) -> "BPETokenizer":
        """Learn the merges on ``sequences`` (normalised first); returns self."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import models, trainers

        tokenizer = HFTokenizer(models.BPE(unk_token="[UNK]"))
        trainer = trainers.BpeTrainer(
            vocab_size=self.target_vocab_size,
            min_frequency=self.min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=list("ACGTN"),
            show_progress=False,
        )
        tokenizer.train_from_iterator(
            (normalize(s, where=f"training sequence {i}") for i, s in enumerate(sequences)), trainer=trainer
        )
        self._tokenizer = self._checked(tokenizer)
        return self

    @staticmethod
    def _checked(tokenizer):
        """Fail loudly unless ids 0..4 are exactly the special tokens."""
        ids = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
        if ids != list(range(N_SPECIAL)):
            raise RuntimeError(f"BPE special token ids are {ids}, expected 0..4")
        return tokenizer

    def _trained(self):
        if self._tokenizer is None:
            raise RuntimeError("BPE tokenizer is not trained: call .train(sequences) or load_tokenizer(path)")
        return self._tokenizer

    def _encode_whole(self, seq: str) -> np.ndarray:
        """One HF pass over ``seq`` as one word."""
        return np.asarray(self._trained().encode(seq, add_special_tokens=False).ids, dtype=self.id_dtype)

    def _encode(self, seq: str) -> np.ndarray:
        return self._encode_long(seq) if len(seq) > self.window else self._encode_whole(seq)

    def _encode_long(self, seq: str) -> np.ndarray:
        """Ids of ``seq`` equal to one whole pass, in memory of about one window.

        HF applies a word's merges lowest rank first; a merge never splits a token, so where the
        whole encoding has a boundary at ``p`` no merge crossed ``p``, and the tokens after ``p``
        are those of ``seq[p:]`` encoded alone. So from a cut ``start`` (0 first), ``seq[start:end]``
        (``end = start + window``) is exact except near ``end``, where it lacks the text that
        follows. The next cut ``p`` is a boundary that this left encoding and a second one, of
        ``seq[end - overlap:end + overlap]``, both have, with identical boundaries (hence tokens:
        the id is the text's) within a guard of ``overlap // 4`` bp, and at least twice the longest
        token, on either side: the two encodings miss context on different sides, so their
        agreement there means neither edge reaches ``p`` (a shorter guard is not enough: inside a
        homopolymer run, two phases of 8-bp tokens share every eighth boundary).
        Tokens ``start..p`` are kept and the next window starts at ``p``. Where no boundary agrees
        (e.g. a homopolymer run read in two phases), ``end`` moves right and the second window
        widens leftwards until one does; at worst the window grows to the end of ``seq``, the
        whole pass: ids are never approximated."""
        lengths = np.zeros(self.vocab_size, dtype=np.int64)  # bp of each token
        for token, i in self._trained().get_vocab().items():
            lengths[i] = len(token)
        guard, n, pieces, start = max(self.overlap // 4, 2 * int(lengths.max())), len(seq), [], 0
        while start < n:
            end, overlap = start + self.window, self.overlap
            while True:
                if end >= n:
                    pieces.append(self._encode_whole(seq[start:]))
                    start = n
                    break
                left = self._encode_whole(seq[start:end])
                r0 = max(start, end - overlap)
                right = self._encode_whole(seq[r0 : min(n, end + overlap)])
                left_cuts = start + np.concatenate([[0], np.cumsum(lengths[left])])
                right_cuts = r0 + np.concatenate([[0], np.cumsum(lengths[right])])
                cut = _agreeing_cut(left_cuts, right_cuts, r0 + guard, end - guard, guard)
                if cut is not None:
                    pieces.append(left[: np.searchsorted(left_cuts, cut)])
                    start = cut
                    break
                end, overlap = end + overlap // 2, overlap * 2
        return np.concatenate(pieces)

    def _encode_many(self, seqs: list[str]) -> list[np.ndarray]:
        """Sequences up to ``window`` bp in one HF batch; longer ones window by window."""
        short = [i for i, seq in enumerate(seqs) if len(seq) <= self.window]
        rows = [None if len(seq) <= self.window else self._encode_long(seq) for seq in seqs]
        if short:
            encodings = self._trained().encode_batch([seqs[i] for i in short], add_special_tokens=False)
            for i, encoding in zip(short, encodings):
                rows[i] = np.asarray(encoding.ids, dtype=self.id_dtype)
        return rows

    def _save(self, path: Path) -> None:
        self._trained().save(str(path / "tokenizer.json"))

    @classmethod
    def _load(cls, path: Path, name: str, params: dict) -> "BPETokenizer":
        from tokenizers import Tokenizer as HFTokenizer

        file = path / "tokenizer.json"
        spec = read_json(file)
        model = spec.get("model") if isinstance(spec, dict) else None
        kind = model.get("type") if isinstance(model, dict) else None
        if kind != "BPE":
            raise ValueError(
                f"{file}: a {kind or 'non-HF'} tokenizer, not the BPE that {path / CONFIG_FILE} names"
            )
        vocab = model.get("vocab") or {}
        missing = [symbol for symbol in "ACGTN" if symbol not in vocab]
        if missing or spec.get("normalizer") or spec.get("pre_tokenizer"):
            raise ValueError(
                f"{file}: not a DNA BPE of this project (symbols {missing} absent, normalizer "
                f"{spec.get('normalizer')}, pre-tokenizer {spec.get('pre_tokenizer')})"
            )
        tokenizer = cls(**params)
        try:
            tokenizer._tokenizer = cls._checked(HFTokenizer.from_file(str(file)))
        except Exception as error:  # the HF loader raises its own exception types
            raise ValueError(f"{file}: cannot be loaded ({error})") from error
        return tokenizer


def _agreeing_cut(a: np.ndarray, b: np.ndarray, lo: int, hi: int, guard: int) -> int | None:
    """A position in ``lo..hi``, nearest their middle, that is in both sorted boundary arrays
    ``a`` and ``b`` while no boundary within ``guard`` of it is in only one; None if there is none."""
    a_in, b_in = a[(a >= lo - guard) & (a <= hi + guard)], b[(b >= lo - guard) & (b <= hi + guard)]
    common = np.intersect1d(a_in, b_in)
    common = common[(common >= lo) & (common <= hi)]
    only_one = np.setxor1d(a_in, b_in)
    if only_one.size:
        i = np.searchsorted(only_one, common)
        before = np.where(i > 0, common - only_one[np.maximum(i - 1, 0)], guard + 1)
        after = np.where(i < only_one.size, only_one[np.minimum(i, only_one.size - 1)] - common, guard + 1)
        common = common[(before > guard) & (after > guard)]
    if not common.size:
        return None
    return int(common[np.argmin(np.abs(common - (lo + hi) // 2))])
