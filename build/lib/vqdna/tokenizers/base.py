"""What every tokenizer shares: the special ids, input normalisation, batching with padding,
decoding, saving, and the Hugging Face-style surface (``encode(..., add_special_tokens=True)``,
``decode``, ``__call__``, ``save_pretrained`` / ``from_pretrained``, ``pad_token_id``...), the
``TOKENIZERS`` registry and :func:`load_tokenizer` (here, so that ``from_pretrained`` never
imports the package ``__init__``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: char/k-mer/BPE work without it (memory)
    import torch

from vqdna.core.sequence import normalize
from vqdna.tokenizers.safety import check_trusted, read_json

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
        raise TypeError(
            f"{caller} takes a list of sequences, got one {type(seqs).__name__} "
            f"({seqs[:20]!r}...); pass [sequence]"
        )
    seqs = [normalize(s, where=f"sequence {i}") for i, s in enumerate(seqs)]
    if not seqs:
        raise ValueError(f"{caller} needs at least one sequence")
    return seqs


#: config ``type`` -> tokenizer class: every subclass registers itself under its ``config_types``
TOKENIZERS: dict[str, type] = {}
#: what a concrete tokenizer defines itself (``Tokenizer``'s own versions only raise)
REQUIRED_MEMBERS = ("_encode", "_decode", "vocab_size", "params", "from_spec")
_CLASS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


def class_path(cls: type) -> str:
    """``module:Qualname`` of a class: how config and ``tokenizer_config.json`` name it."""
    return f"{cls.__module__}:{cls.__qualname__}"


def abstract_members(cls: type) -> list[str]:
    """The members of :data:`REQUIRED_MEMBERS` that ``cls`` leaves to ``Tokenizer`` (which only
    raises): a class with any is abstract and cannot tokenize."""
    return [
        member
        for member in REQUIRED_MEMBERS
        if next((k for k in cls.__mro__ if member in k.__dict__), Tokenizer) is Tokenizer
    ]


def tokenizer_class(kind: str) -> type:
    """The class a config entry's ``type`` names: a registered type (``TOKENIZERS``), or
    ``module:Class`` for a tokenizer defined anywhere importable (no edit of this package).
    ``module:Class`` imports the module: only for names from a source one trusts (the config;
    a saved folder's class is imported only with ``trust_remote_code``, :func:`load_tokenizer`)."""
    if not isinstance(kind, str):
        raise ValueError(f"tokenizer type must be a string, got {kind!r}")
    if ":" in kind:
        import importlib

        if not _CLASS_NAME.match(kind):
            raise ValueError(f"tokenizer type {kind!r} is not of the form 'module:Class'")
        module, _, qualname = kind.partition(":")
        try:
            cls = getattr(importlib.import_module(module), qualname)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"tokenizer type {kind!r}: cannot import it ({error})") from None
        if not (isinstance(cls, type) and issubclass(cls, Tokenizer)):
            raise ValueError(f"tokenizer type {kind!r} is not a vqdna.tokenizers.Tokenizer subclass")
        missing = abstract_members(cls)
        if missing:
            raise ValueError(
                f"tokenizer type {kind!r} is abstract: it does not define {missing} "
                f"(a tokenizer class implements {list(REQUIRED_MEMBERS)})"
            )
        return cls
    if kind not in TOKENIZERS:
        raise ValueError(
            f"unknown tokenizer type {kind!r}; choose from {sorted(TOKENIZERS)} or 'module:Class'"
        )
    return TOKENIZERS[kind]


def load_tokenizer(path, trust_remote_code: bool | str | Iterable[str] = False) -> Tokenizer:
    """Rebuild a tokenizer written by ``Tokenizer.save_pretrained(path)``. What the folder holds is checked
    against the saved type; every problem is a ``ValueError`` naming the file.

    A built-in type (``TOKENIZERS``) is rebuilt without importing anything. A folder of a class
    of one's own (``"class": "module:Class"`` in ``tokenizer_config.json``) needs that module
    imported, which runs its code: only with ``trust_remote_code`` (``True``: any class; a
    ``"module:Class"`` string or a collection of them: only those), as Hugging Face's flag of
    that name. Even then a module found inside the tokenizer folder itself (a folder that is a
    package, importable because the working directory is on ``sys.path``) is never imported."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path} is not a tokenizer folder (not a directory)")
    file = path / CONFIG_FILE
    config = read_json(file)
    if not isinstance(config, dict) or not isinstance(config.get("params"), dict):
        raise ValueError(f"{file}: expected {{'name': ..., 'params': {{...}}}}, got {str(config)[:80]}")
    name = config.get("name")
    if isinstance(name, str) and name in TOKENIZERS:
        cls = TOKENIZERS[name]
    elif isinstance(config.get("class"), str):  # a tokenizer class of your own (module:Class)
        cls = _trusted_class(file, config["class"], trust_remote_code)
    else:
        raise ValueError(f"{file}: unknown tokenizer {name!r}; choose from {sorted(TOKENIZERS)}")
    try:
        return cls._load(path, name, config["params"])
    except (TypeError, ValueError) as error:  # params the constructor refuses
        if str(path) in str(error):
            raise
        raise ValueError(f"{file}: params {config['params']} do not fit {name} ({error})") from error


def _trusted_class(file: Path, kind: str, trust_remote_code) -> type:
    """The class ``tokenizer_config.json`` names: a built-in class under another name, or one
    :func:`~vqdna.tokenizers.safety.check_trusted` lets import."""
    built_in = {class_path(cls): cls for cls in TOKENIZERS.values()}
    if kind in built_in:  # a built-in class under another name: nothing to import
        return built_in[kind]
    check_trusted(file, kind, trust_remote_code, sorted(TOKENIZERS))
    return tokenizer_class(kind)


def _register(cls: type) -> None:
    """Register ``cls`` under its own ``config_types`` (not inherited ones: a subclass is not the
    type). Refused, before anything is registered: a type another class holds (a second class
    for ``char`` would silently change what every config and saved folder naming ``char``
    runs), an abstract class, a ``config_types`` that is not a tuple of names."""
    kinds = cls.__dict__.get("config_types", ())
    if not kinds:
        return
    where = class_path(cls)
    if isinstance(kinds, str) or not all(isinstance(k, str) and k for k in kinds):
        raise TypeError(f"{where}: config_types must be a tuple of type names, got {kinds!r}")
    missing = abstract_members(cls)
    if missing:
        raise TypeError(
            f"{where}: cannot register tokenizer type(s) {list(kinds)}: the class is abstract "
            f"(it does not define {missing})"
        )
    for kind in kinds:
        if ":" in kind:
            raise TypeError(f"{where}: config type {kind!r} may not contain ':' (that names a class)")
        taken = TOKENIZERS.get(kind)
        if taken is not None and class_path(taken) != where:  # the same class re-defined (a reload) is fine
            raise TypeError(
                f"{where}: tokenizer type {kind!r} is already taken by {class_path(taken)}; "
                f"a type names one class. Give the new class its own config_types, or name it "
                f"in config as '{where}'"
            )
    for kind in kinds:
        TOKENIZERS[kind] = cls


class Tokenizer:
    """Shared behaviour; a subclass sets ``name`` and implements ``_encode``, ``_decode``,
    ``vocab_size``, ``params``, ``from_spec`` (and ``train_from_spec`` when it learns from data),
    and, when it has artefacts, ``_save`` / ``_load``. Defining the class registers it under its
    ``config_types``; a class outside this package is named in config as ``module:Class``."""

    name: str
    #: the config ``type`` values this class answers to
    config_types: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _register(cls)  # its own config_types, not inherited: a subclass is not the type

    pad_token_id, unk_token_id, cls_token_id, sep_token_id, mask_token_id = (
        PAD_ID,
        UNK_ID,
        CLS_ID,
        SEP_ID,
        MASK_ID,
    )
    all_special_tokens = list(SPECIAL_TOKENS)
    all_special_ids = list(range(N_SPECIAL))

    @classmethod
    def from_spec(cls, spec: dict) -> "Tokenizer":
        """The tokenizer a config ``tokenizers`` entry describes (its ``type`` picks the class;
        the other keys are its parameters), untrained."""
        raise NotImplementedError

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
    ) -> tuple["Tokenizer", list[dict]]:
        """Build the tokenizer of a config entry and learn what it learns from the corpus windows.
        -> (tokenizer, training history). Rule-based tokenizers learn nothing: empty history."""
        return cls.from_spec(spec), []

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

    def encode(self, seq: str, add_special_tokens: bool = True) -> list[int]:
        """Sequence -> token ids, ``[CLS] ... [SEP]`` around them unless ``add_special_tokens`` is
        False (as Hugging Face tokenizers)."""
        ids = self._encode(normalize(seq)).tolist()
        return [CLS_ID, *ids, SEP_ID] if add_special_tokens else ids

    def _decode(self, ids: np.ndarray) -> str:
        """Ids of one sequence (regular, ``[UNK]`` or ``[MASK]``) -> the bases they stand for;
        ``[UNK]`` and ``[MASK]`` stand for unknown bases, written N."""
        raise NotImplementedError

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Token ids (list, array or 1-d tensor) -> sequence, as Hugging Face's ``decode``.
        ``[PAD]``, ``[CLS]`` and ``[SEP]`` hold no bases: dropped, or with
        ``skip_special_tokens=False`` written as their names. ``[UNK]`` / ``[MASK]`` stand for
        unknown bases (N). Exact for sequences without N for char, k-mers and BPE (char and BPE
        also with N); VQ/HRQ decode through the VQ-VAE's decoder, lossy (reconstruction accuracy)."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if np.any((ids < 0) | (ids >= self.vocab_size)):
            bad = ids[(ids < 0) | (ids >= self.vocab_size)][0]
            raise ValueError(f"id {bad} is outside the vocabulary (0..{self.vocab_size - 1})")
        structural = np.isin(ids, (PAD_ID, CLS_ID, SEP_ID))
        if skip_special_tokens or not structural.any():
            return self._decode(ids[~structural])
        pieces, start = [], 0
        for i in np.flatnonzero(structural):
            pieces += [self._decode(ids[start:i]) if i > start else "", SPECIAL_TOKENS[ids[i]]]
            start = i + 1
        return "".join(pieces) + (self._decode(ids[start:]) if start < len(ids) else "")

    def __call__(
        self, seqs, max_length: int | None = None, truncation: bool = True, add_special_tokens: bool = True
    ) -> dict[str, "torch.Tensor"]:
        """``tokenizer(seqs)``: :meth:`encode_batch` (a single string is a batch of one), as a
        Hugging Face tokenizer call with ``padding=True, return_tensors="pt"``."""
        return self.encode_batch(
            [seqs] if isinstance(seqs, str) else seqs, max_length, truncation, add_special_tokens
        )

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

    def encode_batch(
        self,
        seqs: Iterable[str],
        max_length: int | None = None,
        truncation: bool = True,
        add_special_tokens: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Sequences -> ``{"input_ids", "attention_mask"}``, LongTensors (B, T), T the longest row.

        ``max_length`` counts the special tokens. Longer rows are cut at the end when
        ``truncation``, else raise ``ValueError`` naming the sequence index and lengths.
        """
        seqs = _normalize_all(seqs, "encode_batch")
        extra = 2 if add_special_tokens else 0
        if max_length is not None and max_length <= extra:
            raise ValueError(
                f"max_length {max_length} leaves no room for tokens besides {extra} special ones"
            )
        budget = None if max_length is None else max_length - extra
        rows = self._encode_many(seqs)
        for i, row in enumerate(rows):
            if budget is not None and len(row) > budget and not truncation:
                raise ValueError(
                    f"sequence {i} ({len(seqs[i])} bp) has {len(row)} tokens + {extra} special "
                    f"> max_length {max_length}; pass truncation=True or a larger max_length"
                )
        rows = [row[:budget] for row in rows]
        width = max(len(row) for row in rows) + extra
        input_ids = np.full((len(rows), width), PAD_ID, dtype=np.int64)
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)
        start = 1 if add_special_tokens else 0
        for i, row in enumerate(rows):
            input_ids[i, start : start + len(row)] = row
            attention_mask[i, : len(row) + extra] = 1
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

    def save_pretrained(self, path) -> Path:
        """Write the tokenizer into directory ``path``: ``tokenizer_config.json`` + artefacts;
        :meth:`from_pretrained` (or ``vqdna.tokenizers.load_tokenizer``) reads it back."""
        cls = type(self)
        learns = cls.train_from_spec.__func__ is not Tokenizer.train_from_spec.__func__
        if learns and (cls._save is Tokenizer._save or cls._load.__func__ is Tokenizer._load.__func__):
            raise TypeError(
                f"{class_path(cls)} learns from the corpus (it defines train_from_spec) but does not "
                f"define both _save and _load: saved, it would be reloaded untrained. Write what it "
                f"learned in _save(path) and read it back in _load(path, name, params)"
            )
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._save(path)
        saved = {"name": self.name, "params": self.params, "class": class_path(cls)}
        (path / CONFIG_FILE).write_text(json.dumps(saved, indent=2) + "\n")
        return path

    def _save(self, path: Path) -> None:
        """Artefacts beyond the params (none by default)."""

    @classmethod
    def from_pretrained(cls, path, trust_remote_code=False) -> "Tokenizer":
        """The tokenizer saved in ``path`` (any type when called on ``Tokenizer``, like
        ``AutoTokenizer``; on a subclass the folder must hold that type). A folder naming a
        class of its own (not a built-in type) is loaded only with ``trust_remote_code``
        (:func:`vqdna.tokenizers.load_tokenizer`)."""
        tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
        if not isinstance(tokenizer, cls):
            raise ValueError(f"{path} holds a {type(tokenizer).__name__}, not a {cls.__name__}")
        return tokenizer

    @classmethod
    def _load(cls, path: Path, name: str, params: dict) -> "Tokenizer":
        return cls(**params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args}) [{self.name}, vocab {self.vocab_size}]"
