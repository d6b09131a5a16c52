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

    def _encode(self, seq: str) -> np.ndarray:
        """Normalised sequence -> int64 array of regular token ids."""
        raise NotImplementedError

    def encode(self, seq: str) -> list[int]:
        """Sequence -> regular token ids (no special tokens)."""
        return self._encode(normalize(seq)).tolist()

    def encode_array(self, seq: str) -> np.ndarray:
        """Sequence -> regular token ids as an int64 array: for long sequences, where the list of
        :meth:`encode` costs 8 bytes per id, plus a 28-byte int object per id above 256."""
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
        ids = np.empty(count + len(seq) - covered, dtype=np.int64)
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


class CodebookTokenizer(Tokenizer):
    """Learned tokenizer: the codes a trained VQ-VAE (``vq``, one level) or HRQ (``hrq``, several
    levels) assigns to each down-sampled position; ceil(len / stride) tokens per sequence.

    A position's id is ``5 + mixed-radix(m1..mL)`` over ``level_sizes`` (m1 most significant).
    The model runs in eval mode without gradients (``model.tokenize``); N is an all-zero one-hot
    input column. ``batch_size``: sequences per forward pass in ``encode_batch``.

    A sequence longer than ``window`` bp is tokenized window by window: each window of ``window``
    bp is run with :attr:`margin` tokens of context on both sides (the encoder's receptive field),
    so its ids equal a whole-sequence pass while memory stays that of one window.
    """

    def __init__(self, model, name: str = "vq", batch_size: int = 256, window: int = 4096):
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
        ids = np.empty(n_tokens, dtype=np.int64)
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
                ids = self._codes_to_ids(np.stack([to_indices(seqs[i]) for i in chunk]))
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
