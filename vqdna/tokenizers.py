"""Every tokenizer of the study behind one interface: single nucleotide, k-mer, BPE and the learned
codebook tokenizers (VQ / HRQ) that wrap a trained ``vqdna.vqvae.VQVAE``.

Common contract (docs/design.md, "Token ids"):
- ids ``[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4``; regular tokens start at 5;
- every input goes through ``vqdna.sequence.normalize`` first (upper-case, U->T, IUPAC->N, errors
  name the character and position);
- ``encode(seq)`` -> regular ids only; ``encode_batch(seqs, ...)`` -> ``[CLS] ... [SEP]`` + right
  padding with ``[PAD]``, as LongTensors ``input_ids`` / ``attention_mask``;
- ``save(dir)`` writes ``tokenizer_config.json`` (name + params) plus artefacts; ``load_tokenizer``
  rebuilds the same ids without the training corpus;
- ``mlm_target_sizes`` / ``mlm_targets(ids)``: what masked modeling predicts at each position.

How ``N`` is tokenized: char: its own token; k-mer: a k-mer containing N is ``[UNK]`` (a trailing
single N is its own single-base token); BPE: an ordinary symbol of its alphabet (merges may
contain it); VQ/HRQ: an all-zero one-hot column of the VQ-VAE input.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: char/k-mer/BPE work without it (memory)
    import torch

from vqdna.sequence import N_INDEX, normalize, to_indices

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)
N_SPECIAL = len(SPECIAL_TOKENS)
CONFIG_FILE = "tokenizer_config.json"


def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest signed integer dtype holding ids ``0..vocab_size-1`` (int8 up to 128 ids,
    int16 up to 32,768, then int32 / int64): what :meth:`Tokenizer.encode_array` returns, so a
    long record's ids cost 1-2 bytes each instead of 8. Signed, so ``ids - N_SPECIAL`` stays exact."""
    for dtype in (np.int8, np.int16, np.int32):
        if vocab_size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def _normalize_all(seqs, caller: str) -> list[str]:
    """A list of sequences, each normalised (errors name its index); a bare string is refused
    (iterating it would silently make one-base sequences)."""
    if isinstance(seqs, (str, bytes)):
        raise TypeError(f"{caller} takes a list of sequences, got one {type(seqs).__name__} "
                        f"({seqs[:20]!r}...); pass [sequence]")
    seqs = [normalize(s, where=f"sequence {i}") for i, s in enumerate(seqs)]
    if not seqs:
        raise ValueError(f"{caller} needs at least one sequence")
    return seqs


class Tokenizer:
    """Shared behaviour; a subclass sets ``name`` and implements ``_encode``, ``vocab_size``,
    ``params`` and (when it has artefacts) ``_save`` / ``_load``."""

    name: str

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    @property
    def params(self) -> dict:
        """Constructor parameters (JSON-serialisable): what reports print and ``save`` stores."""
        raise NotImplementedError

    @property
    def id_dtype(self) -> np.dtype:
        """dtype of the id arrays (:func:`id_dtype` of the vocabulary size)."""
        return id_dtype(self.vocab_size)

    def _encode(self, seq: str) -> np.ndarray:
        """Normalised sequence -> array of regular token ids, dtype :attr:`id_dtype`."""
        raise NotImplementedError

    def encode(self, seq: str) -> list[int]:
        """Sequence -> regular token ids (no special tokens)."""
        return self._encode(normalize(seq)).tolist()

    def encode_array(self, seq: str) -> np.ndarray:
        """Sequence -> regular token ids as an array of the smallest signed integer dtype that holds
        the vocabulary (:attr:`id_dtype`: int8 for char and the default VQ, int16 for 6-mers, BPE
        and HRQ): for long sequences, where the list of :meth:`encode` costs 8 bytes per id, plus
        a 28-byte int object per id above 256. Cast with ``.astype(np.int64)`` where arithmetic
        could overflow."""
        return self._encode(normalize(seq))

    def _encode_many(self, seqs: list[str]) -> list[np.ndarray]:
        """Normalised sequences -> id arrays; subclasses override to batch the work."""
        return [self._encode(s) for s in seqs]

    def encode_batch(self, seqs: Iterable[str], max_length: int | None = None, truncation: bool = True,
                     add_special_tokens: bool = True) -> dict[str, torch.Tensor]:
        """Sequences -> ``{"input_ids", "attention_mask"}``, LongTensors (B, T), T the longest row.

        ``max_length`` counts the special tokens. Longer rows are cut at the end when
        ``truncation``, else raise ``ValueError`` naming the sequence index and lengths.
        """
        seqs = _normalize_all(seqs, "encode_batch")
        extra = 2 if add_special_tokens else 0
        if max_length is not None and max_length <= extra:
            raise ValueError(f"max_length {max_length} leaves no room for tokens besides {extra} special ones")
        budget = None if max_length is None else max_length - extra
        rows = self._encode_many(seqs)
        for i, row in enumerate(rows):
            if budget is not None and len(row) > budget and not truncation:
                raise ValueError(f"sequence {i} ({len(seqs[i])} bp) has {len(row)} tokens + {extra} special "
                                 f"> max_length {max_length}; pass truncation=True or a larger max_length")
        rows = [row[:budget] for row in rows]
        width = max(len(row) for row in rows) + extra
        input_ids = np.full((len(rows), width), PAD_ID, dtype=np.int64)
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)
        start = 1 if add_special_tokens else 0
        for i, row in enumerate(rows):
            input_ids[i, start:start + len(row)] = row
            attention_mask[i, :len(row) + extra] = 1
            if add_special_tokens:
                input_ids[i, 0], input_ids[i, len(row) + 1] = CLS_ID, SEP_ID
        import torch

        return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask)}

    @property
    def mlm_target_sizes(self) -> list[int]:
        """Class count of each masked-modeling target: one target over the whole vocabulary."""
        return [self.vocab_size]

    def mlm_targets(self, ids) -> torch.Tensor:
        """ids (...) -> targets (..., 1): the id itself."""
        import torch

        return torch.as_tensor(ids, dtype=torch.long)[..., None]

    @property
    def mlm_span(self) -> int:
        """Contiguous tokens masked together in pre-training (1 = independent token masking)."""
        return 1

    def token_counts(self, seqs: Iterable[str]) -> np.ndarray:
        """How often each id occurs when encoding ``seqs`` (length ``vocab_size``): vocabulary usage."""
        rows = self._encode_many(_normalize_all(seqs, "token_counts"))
        return np.bincount(np.concatenate(rows), minlength=self.vocab_size)

    def tokens_per_bp(self, seqs: Iterable[str]) -> float:
        """Regular tokens per base pair over ``seqs`` (compression: char 1, non-overlapping 6-mer ~1/6)."""
        seqs = _normalize_all(seqs, "tokens_per_bp")
        return sum(len(row) for row in self._encode_many(seqs)) / sum(len(s) for s in seqs)

    def save(self, path) -> Path:
        """Write the tokenizer into directory ``path``: ``tokenizer_config.json`` + artefacts."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._save(path)
        (path / CONFIG_FILE).write_text(json.dumps({"name": self.name, "params": self.params}, indent=2) + "\n")
        return path

    def _save(self, path: Path) -> None:
        """Artefacts beyond the params (none by default)."""

    @classmethod
    def _load(cls, path: Path, name: str, params: dict) -> "Tokenizer":
        return cls(**params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args}) [{self.name}, vocab {self.vocab_size}]"


class CharTokenizer(Tokenizer):
    """One token per base: A=5 C=6 G=7 T=8 N=9."""

    name = "char"

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL + 5

    @property
    def params(self) -> dict:
        return {}

    def _encode(self, seq: str) -> np.ndarray:
        ids = to_indices(seq)  # a fresh int8 array: shifted in place
        ids += N_SPECIAL
        return ids

    def _encode_many(self, seqs: list[str]) -> list[np.ndarray]:
        """One pass over the concatenation, split back into rows."""
        return np.split(self._encode("".join(seqs)), np.cumsum([len(s) for s in seqs])[:-1])


class KmerTokenizer(Tokenizer):
    """k-mers starting every ``stride`` bases: stride 1 = overlapping (DNABERT), stride k =
    non-overlapping (Nucleotide Transformer).

    Vocabulary: the 4^k k-mers in lexicographic ACGT order (id ``5 + base-4 value``), then the
    single bases A C G T N. A k-mer containing N is ``[UNK]``. Bases after the last full k-mer
    (a remainder shorter than k with stride k; a whole sequence shorter than k) become single-base
    tokens, as in the Nucleotide Transformer.
    """

    name = "kmer"

    def __init__(self, k: int = 6, stride: int = 1):
        if not 1 <= k <= 12:
            raise ValueError(f"k must be in 1..12 (vocabulary 4^k), got {k}")
        if not 1 <= stride <= k:
            raise ValueError(f"stride must be in 1..k={k} (larger strides skip bases), got {stride}")
        self.k, self.stride = k, stride
        self._single_offset = N_SPECIAL + 4 ** k

    @property
    def vocab_size(self) -> int:
        return self._single_offset + 5

    @property
    def params(self) -> dict:
        return {"k": self.k, "stride": self.stride}

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
            block = self._encode_many([seq[start:min(start + step, count * stride) - stride + k]])[0]
            ids[start // stride:start // stride + len(block)] = block
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
            ids += base[j:j + len(idx)]
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
            rows.append(np.concatenate([ids[start:start + count * stride:stride],
                                        self._single_offset + idx[start + covered:start + len(seq)]]
                                       ).astype(self.id_dtype))
            start += len(seq)
        return rows


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

    def __init__(self, vocab_size: int = 4096, min_frequency: int = 2, window: int = 65536, overlap: int = 1024):
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

    def train(self, sequences: Iterable[str]) -> "BPETokenizer":
        """Learn the merges on ``sequences`` (normalised first); returns self."""
        from tokenizers import Tokenizer as HFTokenizer, models, trainers

        tokenizer = HFTokenizer(models.BPE(unk_token="[UNK]"))
        trainer = trainers.BpeTrainer(vocab_size=self.target_vocab_size, min_frequency=self.min_frequency,
                                      special_tokens=list(SPECIAL_TOKENS), initial_alphabet=list("ACGTN"),
                                      show_progress=False)
        tokenizer.train_from_iterator((normalize(s, where=f"training sequence {i}") for i, s in enumerate(sequences)),
                                      trainer=trainer)
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
                right = self._encode_whole(seq[r0:min(n, end + overlap)])
                left_cuts = start + np.concatenate([[0], np.cumsum(lengths[left])])
                right_cuts = r0 + np.concatenate([[0], np.cumsum(lengths[right])])
                cut = _agreeing_cut(left_cuts, right_cuts, r0 + guard, end - guard, guard)
                if cut is not None:
                    pieces.append(left[:np.searchsorted(left_cuts, cut)])
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
        spec = _read_json(file)
        model = spec.get("model") if isinstance(spec, dict) else None
        kind = model.get("type") if isinstance(model, dict) else None
        if kind != "BPE":
            raise ValueError(f"{file}: a {kind or 'non-HF'} tokenizer, not the BPE that "
                             f"{path / CONFIG_FILE} names")
        vocab = model.get("vocab") or {}
        missing = [symbol for symbol in "ACGTN" if symbol not in vocab]
        if missing or spec.get("normalizer") or spec.get("pre_tokenizer"):
            raise ValueError(f"{file}: not a DNA BPE of this project (symbols {missing} absent, normalizer "
                             f"{spec.get('normalizer')}, pre-tokenizer {spec.get('pre_tokenizer')})")
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


class CodebookTokenizer(Tokenizer):
    """Learned tokenizer: the codes a trained VQ-VAE (``vq``, one level) or HRQ (``hrq``, several
    levels) assigns to each down-sampled position; ceil(len / stride) tokens per sequence.

    A position's id is ``5 + mixed-radix(m1..mL)`` over ``level_sizes`` (m1 most significant).
    The model runs in eval mode without gradients (``model.tokenize``); N is an all-zero one-hot
    input column. ``batch_size``: sequences per forward pass in ``encode_batch``.

    A sequence longer than ``window`` bp is tokenized window by window: each window of ``window``
    bp is run with :attr:`margin` tokens of context on both sides (the encoder's receptive field),
    so its ids equal a whole-sequence pass while memory stays that of one window. The default
    1,024 bp keeps a window's activations at a few MB (4,096 bp cost ~20 MB more peak RSS on the
    default model for a ~25% speed-up); ids are the same for any window.
    """

    def __init__(self, model, name: str = "vq", batch_size: int = 256, window: int = 1024):
        import torch

        if window < 1:
            raise ValueError(f"window must be >= 1 bp, got {window}")
        self.model, self.name, self.batch_size, self.window = model, name, batch_size, window
        self.window_tokens = max(1, window // int(model.config.stride))
        self.level_sizes = [int(size) for size in model.level_sizes]
        self._radix = torch.tensor([math.prod(self.level_sizes[l + 1:]) for l in range(len(self.level_sizes))])
        self._sizes = torch.tensor(self.level_sizes)

    @property
    def vocab_size(self) -> int:
        return N_SPECIAL + math.prod(self.level_sizes)

    @property
    def params(self) -> dict:
        return {"level_sizes": self.level_sizes, "stride": int(self.model.config.stride),
                "batch_size": self.batch_size}

    def _encode(self, seq: str) -> np.ndarray:
        return self._encode_many([seq])[0]

    @property
    def margin(self) -> int:
        """Tokens of context a token's code depends on, on each side: ``depth`` blocks with
        depth-wise kernel ``block_kernel`` after the stem (kernel ``stem_kernel``, in bp) and the
        non-overlapping down-sampling by ``stride``; LayerNorm, MLP and quantizers are per token."""
        c = self.model.config
        return c.depth * (c.block_kernel // 2) + math.ceil((c.stem_kernel // 2) / c.stride)

    def _codes_to_ids(self, indices) -> np.ndarray:
        """Index rows (B, L) -> ids (B, ceil(L / stride))."""
        import torch

        codes = self.model.tokenize(torch.from_numpy(np.ascontiguousarray(indices, dtype=np.int64))).cpu()
        return (N_SPECIAL + (codes * self._radix).sum(-1)).numpy()

    def _encode_long(self, seq: str) -> np.ndarray:
        """Window by window: tokens ``t0..t1`` come from a pass over tokens ``t0-margin..t1+margin``
        (clipped at the sequence ends, which a whole pass sees too), so the ids are exact."""
        stride, window, margin = int(self.model.config.stride), self.window_tokens, self.margin
        length = len(seq)
        n_tokens = -(-length // stride)
        ids = np.empty(n_tokens, dtype=self.id_dtype)
        for t0 in range(0, n_tokens, window):
            t1 = min(t0 + window, n_tokens)
            a, b = max(0, t0 - margin), min(n_tokens, t1 + margin)
            piece = to_indices(seq[a * stride:min(length, b * stride)])
            ids[t0:t1] = self._codes_to_ids(piece[None])[0, t0 - a:t1 - a]
        return ids

    def _encode_many(self, seqs: list[str]) -> list[np.ndarray]:
        """One forward pass per distinct length (chunks of ``batch_size``); a sequence longer than
        the window goes window by window (:meth:`_encode_long`). Sequences are not padded
        to a common length: padding would change the codes near a sequence's end (the conv
        receptive field would see the padding), so a sequence's ids would depend on its batch."""
        rows: list = [None] * len(seqs)
        by_length: dict[int, list[int]] = {}
        for i, seq in enumerate(seqs):
            if len(seq) > self.window:
                rows[i] = self._encode_long(seq)
                continue
            by_length.setdefault(len(seq), []).append(i)
        for members in by_length.values():
            for start in range(0, len(members), self.batch_size):
                chunk = members[start:start + self.batch_size]
                ids = self._codes_to_ids(np.stack([to_indices(seqs[i]) for i in chunk])).astype(self.id_dtype)
                for i, row in zip(chunk, ids):
                    rows[i] = row
        return rows

    def level_counts(self, seqs: Iterable[str]) -> list[np.ndarray]:
        """How often each code of each level occurs when encoding ``seqs``: one array of length
        ``level_sizes[l]`` per level. Memory ~ the sum of the codebooks, never their product
        (``token_counts`` would allocate the joint vocabulary: 1e9 ids for a 512/1024/2048 HRQ)."""
        counts = [np.zeros(size, dtype=np.int64) for size in self.level_sizes]
        for row in self._encode_many([normalize(s) for s in seqs]):
            levels = self.ids_to_levels(row).numpy()
            for n, size in enumerate(self.level_sizes):
                counts[n] += np.bincount(levels[:, n], minlength=size)
        return counts

    def ids_to_levels(self, ids) -> torch.Tensor:
        """ids (...) -> per-level codes (..., L), -1 at special tokens."""
        import torch

        ids = torch.as_tensor(ids, dtype=torch.long)
        levels = ((ids - N_SPECIAL).clamp(min=0)[..., None] // self._radix) % self._sizes
        return levels.masked_fill((ids < N_SPECIAL)[..., None], -1)

    @property
    def mlm_target_sizes(self) -> list[int]:
        """One masked-modeling target per level (the paper's stage 2, losses summed)."""
        return list(self.level_sizes)

    def mlm_targets(self, ids) -> torch.Tensor:
        """ids (...) -> per-level codes (..., L), -1 at special tokens."""
        return self.ids_to_levels(ids)

    def codebooks(self) -> list[torch.Tensor]:
        """The model's frozen code vectors, one (K_l, code_dim) tensor per level."""
        return self.model.codebooks()

    def codes_to_vectors(self, levels: torch.Tensor) -> torch.Tensor:
        """Per-level codes (..., L) -> token embedding (..., code_dim), computed by the model."""
        return self.model.codes_to_vectors(levels)

    def _save(self, path: Path) -> None:
        self.model.save(path / "vqvae.pt")

    @classmethod
    def _load(cls, path: Path, name: str, params: dict) -> "CodebookTokenizer":
        from vqdna.vqvae import VQVAE

        file = path / "vqvae.pt"
        if not file.is_file():
            raise ValueError(f"{path}: {CONFIG_FILE} names a {name} tokenizer but vqvae.pt is absent")
        try:
            model = VQVAE.load(file)
        except Exception as error:  # torch / pickle / state-dict errors come in many types
            raise ValueError(f"{file}: not a VQ-VAE checkpoint of this project ({type(error).__name__}: "
                             f"{error})") from error
        tokenizer = cls(model, name=name, batch_size=params.get("batch_size", 256))
        saved = {k: params[k] for k in ("level_sizes", "stride") if k in params}
        found = {k: tokenizer.params[k] for k in saved}
        if saved != found:
            raise ValueError(f"{file}: the model has {found} but {path / CONFIG_FILE} says {saved}")
        if (name == "vq") != (len(tokenizer.level_sizes) == 1):
            raise ValueError(f"{file}: {len(tokenizer.level_sizes)} levels, not a {name} tokenizer")
        return tokenizer


TOKENIZERS = {"char": CharTokenizer, "kmer": KmerTokenizer, "bpe": BPETokenizer,
              "vq": CodebookTokenizer, "hrq": CodebookTokenizer}


def build_tokenizer(name: str, **params) -> Tokenizer:
    """``build_tokenizer("kmer", k=6, stride=6)``, ``build_tokenizer("bpe", vocab_size=1024)``
    (then ``.train(seqs)``), ``build_tokenizer("hrq", model=trained_vqvae)``."""
    if name not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {name!r}; choose from {sorted(TOKENIZERS)}")
    if TOKENIZERS[name] is CodebookTokenizer:
        return CodebookTokenizer(name=name, **params)
    return TOKENIZERS[name](**params)


def _read_json(file: Path):
    """JSON of ``file``; a missing, unreadable or malformed file raises ``ValueError`` naming it."""
    if not file.is_file():
        raise ValueError(f"{file} is absent")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{file}: not valid JSON ({error})") from None


def load_tokenizer(path) -> Tokenizer:
    """Rebuild a tokenizer written by ``Tokenizer.save(path)``. What the folder holds is checked
    against the saved type; every problem is a ``ValueError`` naming the file."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path} is not a tokenizer folder (not a directory)")
    file = path / CONFIG_FILE
    config = _read_json(file)
    if not isinstance(config, dict) or not isinstance(config.get("params"), dict):
        raise ValueError(f"{file}: expected {{'name': ..., 'params': {{...}}}}, got {str(config)[:80]}")
    name = config.get("name")
    if name not in TOKENIZERS:
        raise ValueError(f"{file}: unknown tokenizer {name!r}; choose from {sorted(TOKENIZERS)}")
    try:
        return TOKENIZERS[name]._load(path, name, config["params"])
    except (TypeError, ValueError) as error:  # params the constructor refuses
        if str(path) in str(error):
            raise
        raise ValueError(f"{file}: params {config['params']} do not fit {name} ({error})") from error
