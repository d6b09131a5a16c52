"""Every tokenizer of the study behind one interface: single nucleotide, k-mer, BPE and the learned
codebook tokenizers (VQ / HRQ) that wrap a trained ``vqdna.model.vqvae.VQVAE``.

Common contract (docs/design.md, "Token ids"):
- ids ``[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4``; regular tokens start at 5;
- every input goes through ``vqdna.core.sequence.normalize`` first (upper-case, U->T, IUPAC->N, errors
  name the character and position);
- ``encode(seq)`` -> ``[CLS] ids [SEP]`` (``add_special_tokens=False``: the regular ids only);
  ``encode_batch(seqs, ...)`` (or ``tokenizer(seqs)``) -> ``[CLS] ... [SEP]`` + right padding with
  ``[PAD]``, as LongTensors ``input_ids`` / ``attention_mask``; ``decode(ids)`` -> bases;
- ``save_pretrained(dir)`` writes ``tokenizer_config.json`` (name + params) plus artefacts;
  ``Tokenizer.from_pretrained(dir)`` / ``load_tokenizer(dir)`` rebuild the same ids without the
  training corpus;
- ``TOKENIZERS`` maps a config entry's ``type`` to its class; the class builds itself from the
  entry (``from_spec``) and learns what it learns (``train_from_spec``): :func:`train_tokenizer`;
- ``mlm_target_sizes`` / ``mlm_targets(ids)``: what masked modeling predicts at each position.

How ``N`` is tokenized: char: its own token; k-mer: a k-mer containing N is ``[UNK]`` (a trailing
single N is its own single-base token); BPE: an ordinary symbol of its alphabet (merges may
contain it); VQ/HRQ: an all-zero one-hot column of the VQ-VAE input.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from vqdna.tokenizers.base import (
    CLS_ID,
    CONFIG_FILE,
    MASK_ID,
    N_SPECIAL,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    TOKENIZERS,
    UNK_ID,
    Tokenizer,
    _read_json,
    abstract_members,
    class_path,
    id_dtype,
    tokenizer_class,
)
from vqdna.tokenizers.bpe import BPETokenizer
from vqdna.tokenizers.char import CharTokenizer
from vqdna.tokenizers.codebook import CodebookTokenizer
from vqdna.tokenizers.kmer import KmerTokenizer

# Layout: base.py (the shared interface and the TOKENIZERS registry), one module per family;
# importing them registers the built-in types.
__all__ = [
    "BPETokenizer",
    "CLS_ID",
    "CONFIG_FILE",
    "CharTokenizer",
    "CodebookTokenizer",
    "KmerTokenizer",
    "MASK_ID",
    "N_SPECIAL",
    "PAD_ID",
    "SEP_ID",
    "SPECIAL_TOKENS",
    "TOKENIZERS",
    "Tokenizer",
    "UNK_ID",
    "abstract_members",
    "build_tokenizer",
    "class_path",
    "id_dtype",
    "load_tokenizer",
    "tokenizer_class",
    "train_tokenizer",
]


def build_tokenizer(name: str, **params) -> Tokenizer:
    """``build_tokenizer("kmer", k=6, stride=6)``, ``build_tokenizer("bpe", vocab_size=1024)``
    (then ``.train(seqs)``), ``build_tokenizer("hrq", model=trained_vqvae)``."""
    if name not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {name!r}; choose from {sorted(TOKENIZERS)}")
    if TOKENIZERS[name] is CodebookTokenizer:
        return CodebookTokenizer(name=name, **params)
    return TOKENIZERS[name](**params)


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
    config = _read_json(file)
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
    """The class ``tokenizer_config.json`` names, imported only when ``trust_remote_code``
    covers it and the module lies outside the tokenizer folder; else a ``ValueError`` naming
    the file, the class and the flag, before anything is imported."""
    built_in = {class_path(cls): cls for cls in TOKENIZERS.values()}
    if kind in built_in:  # a built-in class under another name: nothing to import
        return built_in[kind]
    if isinstance(trust_remote_code, str):
        trusted = trust_remote_code == kind
    elif isinstance(trust_remote_code, bool) or trust_remote_code is None:
        trusted = bool(trust_remote_code)
    else:
        trusted = kind in set(trust_remote_code)
    if not trusted:
        raise ValueError(
            f"{file}: names the tokenizer class {kind!r}, which is not a built-in type "
            f"({sorted(TOKENIZERS)}); loading it would import and run that module's code, so "
            f"nothing was imported. If you trust this folder, pass trust_remote_code=True "
            f"(or trust_remote_code={kind!r}) to load_tokenizer / Tokenizer.from_pretrained"
        )
    folder = file.parent.resolve()
    for location in _module_locations(kind.partition(":")[0]):
        if location == folder or folder in location.parents:
            raise ValueError(
                f"{file}: the class {kind!r} would be imported from {location}, inside the "
                f"tokenizer folder itself; a folder's own code is never imported (put the module "
                f"on PYTHONPATH outside the folder). Nothing was imported"
            )
    return tokenizer_class(kind)


def _module_locations(module: str) -> list[Path]:
    """Where importing ``module`` would read code from (its not yet imported packages and the
    module itself), found without executing anything (``PathFinder.find_spec`` searches
    ``sys.path`` like ``import`` does, but runs no module)."""
    import importlib.machinery
    import sys

    locations, search, parts = [], None, module.split(".")
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        if name in sys.modules:  # already imported: importing it again runs nothing
            search = getattr(sys.modules[name], "__path__", None)
            continue
        try:
            spec = importlib.machinery.PathFinder.find_spec(name, search)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            break  # the import fails later, with its own error
        found = [spec.origin] if spec.origin not in (None, "namespace", "built-in", "frozen") else []
        found += list(spec.submodule_search_locations or [])
        locations += [Path(f).resolve() for f in found]
        search = spec.submodule_search_locations
    return locations


def train_tokenizer(
    spec: dict,
    train_windows: list[str],
    val_windows: list[str],
    seed: int = 0,
    device: str | None = None,
    progress: bool = False,
    scale: dict | None = None,
) -> tuple[Tokenizer, list[dict]]:
    """Build (char, k-mer) or train (BPE, VQ, HRQ) the tokenizer a config entry describes: the
    class its ``type`` names (:func:`tokenizer_class`) does it (:meth:`Tokenizer.train_from_spec`).
    -> (tokenizer, training history; empty for tokenizers without training). ``scale``: the
    training-at-scale settings (:func:`vqdna.train.scale.scale_options`)."""
    return tokenizer_class(spec["type"]).train_from_spec(
        spec, train_windows, val_windows, seed=seed, device=device, progress=progress, scale=scale
    )
