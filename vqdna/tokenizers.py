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
from typing import Iterable

import numpy as np
import torch

from vqdna.sequence import N_INDEX, normalize, to_indices

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)
N_SPECIAL = len(SPECIAL_TOKENS)
CONFIG_FILE = "tokenizer_config.json"


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

    def _encode(self, seq: str) -> np.ndarray:
        """Normalised sequence -> int64 array of regular token ids."""
        raise NotImplementedError

    def encode(self, seq: str) -> list[int]:
        """Sequence -> regular token ids (no special tokens)."""
        return self._encode(normalize(seq)).tolist()

    def _encode_many(self, seqs: list[str]) -> list[np.ndarray]:
        """Normalised sequences -> id arrays; subclasses override to batch the work."""
        return [self._encode(s) for s in seqs]

    def encode_batch(self, seqs: Iterable[str], max_length: int | None = None, truncation: bool = True,
                     add_special_tokens: bool = True) -> dict[str, torch.Tensor]:
        """Sequences -> ``{"input_ids", "attention_mask"}``, LongTensors (B, T), T the longest row.

        ``max_length`` counts the special tokens. Longer rows are cut at the end when
        ``truncation``, else raise ``ValueError`` naming the sequence index and lengths.
        """
        seqs = [normalize(s, where=f"sequence {i}") for i, s in enumerate(seqs)]
        if not seqs:
            raise ValueError("encode_batch needs at least one sequence")
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
        return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask)}

    @property
    def mlm_target_sizes(self) -> list[int]:
        """Class count of each masked-modeling target: one target over the whole vocabulary."""
        return [self.vocab_size]

    def mlm_targets(self, ids) -> torch.Tensor:
        """ids (...) -> targets (..., 1): the id itself."""
        return torch.as_tensor(ids, dtype=torch.long)[..., None]

    def token_counts(self, seqs: Iterable[str]) -> np.ndarray:
        """How often each id occurs when encoding ``seqs`` (length ``vocab_size``): vocabulary usage."""
        rows = self._encode_many([normalize(s) for s in seqs])
        return np.bincount(np.concatenate(rows), minlength=self.vocab_size)

    def tokens_per_bp(self, seqs: Iterable[str]) -> float:
        """Regular tokens per base pair over ``seqs`` (compression: char 1, non-overlapping 6-mer ~1/6)."""
        seqs = [normalize(s) for s in seqs]
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
        return to_indices(seq).astype(np.int64) + N_SPECIAL

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

    def _encode(self, seq: str) -> np.ndarray:
        return self._encode_many([seq])[0]

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
                                        self._single_offset + idx[start + covered:start + len(seq)]]))
            start += len(seq)
        return rows


class BPETokenizer(Tokenizer):
    """Byte-pair encoding learned on a DNA corpus with HF ``tokenizers`` (as DNABERT-2).

    Alphabet ACGTN (N an ordinary symbol), no pre-tokenizer: a whole sequence is one word, so
    merges may span any position. Training is deterministic for a given corpus.
    """

    name = "bpe"

    def __init__(self, vocab_size: int = 4096, min_frequency: int = 2):
        self.target_vocab_size, self.min_frequency = vocab_size, min_frequency
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

    def _encode(self, seq: str) -> np.ndarray:
        return np.asarray(self._trained().encode(seq, add_special_tokens=False).ids, dtype=np.int64)

    def _encode_many(self, seqs: list[str]) -> list[np.ndarray]:
        encodings = self._trained().encode_batch(seqs, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encodings]

    def _save(self, path: Path) -> None:
        self._trained().save(str(path / "tokenizer.json"))

    @classmethod
    def _load(cls, path: Path, name: str, params: dict) -> "BPETokenizer":
        from tokenizers import Tokenizer as HFTokenizer

        tokenizer = cls(**params)
        tokenizer._tokenizer = cls._checked(HFTokenizer.from_file(str(path / "tokenizer.json")))
        return tokenizer


class CodebookTokenizer(Tokenizer):
    """Learned tokenizer: the codes a trained VQ-VAE (``vq``, one level) or HRQ (``hrq``, several
    levels) assigns to each down-sampled position; ceil(len / stride) tokens per sequence.

    A position's id is ``5 + mixed-radix(m1..mL)`` over ``level_sizes`` (m1 most significant).
    The model runs in eval mode without gradients (``model.tokenize``); N is an all-zero one-hot
    input column. ``batch_size``: sequences per forward pass in ``encode_batch``.
    """

    def __init__(self, model, name: str = "vq", batch_size: int = 256):
        self.model, self.name, self.batch_size = model, name, batch_size
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

    def _encode_many(self, seqs: list[str]) -> list[np.ndarray]:
        """One forward pass per distinct length (chunks of ``batch_size``). Sequences are not padded
        to a common length: padding would change the codes near a sequence's end (the conv
        receptive field would see the padding), so a sequence's ids would depend on its batch."""
        rows: list = [None] * len(seqs)
        by_length: dict[int, list[int]] = {}
        for i, seq in enumerate(seqs):
            by_length.setdefault(len(seq), []).append(i)
        for members in by_length.values():
            for start in range(0, len(members), self.batch_size):
                chunk = members[start:start + self.batch_size]
                indices = torch.from_numpy(np.stack([to_indices(seqs[i]) for i in chunk]).astype(np.int64))
                codes = self.model.tokenize(indices).cpu()
                ids = (N_SPECIAL + (codes * self._radix).sum(-1)).numpy()
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

        return cls(VQVAE.load(path / "vqvae.pt"), name=name, batch_size=params["batch_size"])


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


def load_tokenizer(path) -> Tokenizer:
    """Rebuild a tokenizer written by ``Tokenizer.save(path)``."""
    path = Path(path)
    config = json.loads((path / CONFIG_FILE).read_text())
    return TOKENIZERS[config["name"]]._load(path, config["name"], config["params"])
