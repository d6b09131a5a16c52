"""Stage 1 of the study: build or train the tokenizer a config entry describes
(:func:`train_tokenizer`). The tokenizer classes (``vqdna.tokenizers``) never import their
trainers, as Hugging Face's ``tokenizers`` keeps ``models/`` apart from ``trainers/``.

Which trainer: the nearest definition along the class's MRO wins: a class listed in
:data:`TRAINERS` is trained by that function (VQ/HRQ: :func:`train_codebook`, the VQ-VAE
trained by :func:`vqdna.train.vqvae_trainer.fit_vqvae`); a class that defines its own
``train_from_spec`` trains itself (BPE; the hook for a tokenizer class of one's own,
docs/extending.md); else ``Tokenizer.train_from_spec`` builds it untrained with an empty history.
"""

from __future__ import annotations

from collections.abc import Callable

from vqdna.core.settings import check_vq_training
from vqdna.data.corpus import spread_windows
from vqdna.tokenizers import CodebookTokenizer, Tokenizer, tokenizer_class
from vqdna.tokenizers.codebook import study_spec
from vqdna.train.loop import RunConfig
from vqdna.train.vqvae_trainer import VQTraining, fit_vqvae


def train_codebook(
    cls: type[CodebookTokenizer],
    spec: dict,
    train_windows: list[str],
    val_windows: list[str],
    seed: int = 0,
    device: str | None = None,
    progress: bool = False,
    scale: dict | None = None,
) -> tuple[CodebookTokenizer, list[dict]]:
    """Train the VQ-VAE of a vq/hrq config entry (stage 1 of the paper) on the corpus windows,
    scored on at most 512 held-out windows spread over the genomes. Keys the entry leaves out
    take the study's values (:func:`vqdna.tokenizers.codebook.study_spec`); the initial weights
    are drawn from ``seed``."""
    spec = study_spec(spec)
    check_vq_training(spec, f"tokenizer {spec.get('type')!r}")
    tokenizer = cls.from_spec(spec, seed)
    run, checkpointing = RunConfig.from_scale(scale, device=device, progress=progress)
    tokenizer.model.activation_checkpointing = checkpointing
    history = fit_vqvae(
        tokenizer.model, train_windows, spread_windows(val_windows), VQTraining.from_spec(spec), seed, run
    )
    tokenizer.model.cpu().eval()
    return tokenizer, history


#: tokenizer class -> the function that trains it (``cls, spec, train, val, seed, device,
#: progress, scale``); a class trained here does not define ``train_from_spec`` itself
TRAINERS: dict[type, Callable] = {CodebookTokenizer: train_codebook}


def train_tokenizer(
    spec: dict,
    train_windows: list[str],
    val_windows: list[str],
    seed: int = 0,
    device: str | None = None,
    progress: bool = False,
    scale: dict | None = None,
) -> tuple[Tokenizer, list[dict]]:
    """Build (char, k-mer) or train (BPE, VQ, HRQ) the tokenizer a config entry describes, of the
    class its ``type`` names (:func:`~vqdna.tokenizers.tokenizer_class`), with the trainer the
    module docstring picks. -> (tokenizer, training history; empty for tokenizers without
    training). ``scale``: the training-at-scale settings (:func:`vqdna.train.scale.scale_options`)."""
    cls = tokenizer_class(spec["type"])
    for owner in cls.__mro__:
        if owner in TRAINERS:
            trainer = TRAINERS[owner]
            break
        if "train_from_spec" in owner.__dict__:
            trainer = _own_training
            break
    return trainer(cls, spec, train_windows, val_windows, seed, device, progress, scale)


def _own_training(cls: type[Tokenizer], spec, train_windows, val_windows, seed, device, progress, scale):
    """A class that trains itself: its ``train_from_spec`` (``Tokenizer``'s own builds it untrained)."""
    return cls.train_from_spec(
        spec, train_windows, val_windows, seed=seed, device=device, progress=progress, scale=scale
    )
