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
  entry (``from_spec``); :func:`vqdna.train.tokenizer.train_tokenizer` trains it (BPE learns its
  merges itself, ``train_from_spec``; the VQ-VAE of VQ/HRQ is trained by ``vqdna.train``);
- ``mlm_target_sizes`` / ``mlm_targets(ids)``: what masked modeling predicts at each position.

How ``N`` is tokenized: char: its own token; k-mer: a k-mer containing N is ``[UNK]`` (a trailing
single N is its own single-base token); BPE: an ordinary symbol of its alphabet (merges may
contain it); VQ/HRQ: an all-zero one-hot column of the VQ-VAE input.
"""

from __future__ import annotations

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
    abstract_members,
    class_path,
    id_dtype,
    load_tokenizer,
    tokenizer_class,
)
from vqdna.tokenizers.bpe import BPETokenizer
from vqdna.tokenizers.char import CharTokenizer
from vqdna.tokenizers.codebook import CodebookTokenizer
from vqdna.tokenizers.kmer import KmerTokenizer

# Layout: base.py (the shared interface, the TOKENIZERS registry, load_tokenizer), safety.py (the
# checks of what comes from outside), one module per family; importing them registers the
# built-in types.
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
]


def build_tokenizer(name: str, **params) -> Tokenizer:
    """``build_tokenizer("kmer", k=6, stride=6)``, ``build_tokenizer("bpe", vocab_size=1024)``
    (then ``.train(seqs)``), ``build_tokenizer("hrq", model=trained_vqvae)``."""
    if name not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {name!r}; choose from {sorted(TOKENIZERS)}")
    if TOKENIZERS[name] is CodebookTokenizer:
        return CodebookTokenizer(name=name, **params)
    return TOKENIZERS[name](**params)
