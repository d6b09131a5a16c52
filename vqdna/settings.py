"""Typed settings of the training stages, one dataclass per config section (``corpus``,
``pretrain``, ``finetune``, ``linear_probe``; the VQ-VAE's is ``vqvae.VQVAEConfig``).

A job builds its section once (``FinetuneConfig.from_dict(config["finetune"])``): unknown keys
are an error naming them, and a key the section leaves out takes the field's default. Every
default is the value ``config/config.yaml`` sets (a test holds them equal), so code and config
cannot disagree about what an omitted key means.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


class _Section:
    """``from_dict`` with strict keys, shared by the settings below."""

    @classmethod
    def from_dict(cls, values: dict | None = None):
        if isinstance(values, cls):
            return values
        values = dict(values or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown setting(s) {unknown}; known: {sorted(names)}")
        return cls(**values)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class CorpusConfig(_Section):
    """The pre-training corpus (``vqdna.corpus.write_corpus``)."""

    window: int = 128                 # bp per window
    max_windows: int = 1200           # per genome file and split (reservoir-sampled)
    max_n_fraction: float = 0.01      # windows with more N are skipped
    val_fraction: float = 0.2         # held out per file; >= the tasks' dev+test share
    extra_fasta: list = field(default_factory=list)  # [{fasta: path, species: name}]
    min_paper_bp: float = 1e9         # extra_fasta below this labels a paper-profile run


@dataclass(frozen=True)
class PretrainConfig(_Section):
    """Masked-modeling pre-training (``training.pretrain_mlm``)."""

    steps: int = 500
    batch_size: int = 32
    micro_batch_size: int | None = None  # None = batch_size
    lr: float = 0.002
    warmup_steps: int = 40
    mask_ratio: float = 0.25
    masking: str = "tokenizer"        # tokenizer: its own span (overlapping k-mers); token: single tokens
    max_tokens: int = 130


@dataclass(frozen=True)
class FinetuneConfig(_Section):
    """Fine-tuning on a task (``training.finetune``); ``protocol: benchmark`` takes epochs, lr,
    batch size and warm-up from the task's official protocol instead."""

    protocol: str = "config"          # config | benchmark
    epochs: int = 6
    lr: float = 0.001
    batch_size: int = 32
    lora_rank: int | None = 8         # None = full fine-tuning
    head_init: str = "probe"          # probe: LP-FT | random: MLP head from scratch
    patience: int | None = 3          # None = never stop early
    max_bp: int | None = 200          # bp every tokenizer sees (vqdna.coverage)
    window: str = "centre"            # centre | start
    select_by: str = "dev_loss"       # dev_loss | dev_metric
    warmup_steps: int = 50


@dataclass(frozen=True)
class ProbeConfig(_Section):
    """The linear probe's coverage (``vqdna.coverage.coverage``)."""

    max_bp: int | None = 128
    window: str = "centre"
    pooling: str = "fixed"            # fixed | sliding


#: config section -> its settings class
SECTIONS: dict[str, Any] = {"corpus": CorpusConfig, "pretrain": PretrainConfig, "finetune": FinetuneConfig,
                            "linear_probe": ProbeConfig}
