"""Typed settings of the training stages, one dataclass per config section (``corpus``,
``pretrain``, ``finetune``, ``linear_probe``) and the VQ-VAE's (``VQVAEConfig``, from a tokenizer
entry merged over the ``vqvae`` section). No torch here: the plan validates them at DAG time.

A job builds its section once (``FinetuneConfig.from_dict(config["finetune"])``): unknown keys
are an error naming them, and a key the section leaves out takes the field's default. Every
default is the value ``config/config.yaml`` sets (a test holds them equal), so code and config
cannot disagree about what an omitted key means.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from vqdna.core.contracts import Bool, Int, List, Map, Num, Str


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

    def __post_init__(self):
        _check(self, RULES[type(self).__name__])


def _check(settings, rules: dict) -> None:
    """Each field's type and range (:mod:`vqdna.core.contracts`): ``steps: 'ten'``, ``lr: -1``,
    ``mask_ratio: 1.5`` or ``batch_size: 0`` is a ``ValueError`` naming the section and key."""
    section = _SECTION_NAMES.get(type(settings).__name__, type(settings).__name__)
    for name, checker in rules.items():
        checker.check(getattr(settings, name), f"{section}.{name}")


@dataclass(frozen=True)
class CorpusConfig(_Section):
    """The pre-training corpus (``vqdna.data.corpus.write_corpus``)."""

    window: int = 128  # bp per window
    max_windows: int = 1200  # per genome file and split (reservoir-sampled)
    max_n_fraction: float = 0.01  # windows with more N are skipped
    val_fraction: float = 0.2  # held out per file; >= the tasks' dev+test share
    extra_fasta: list = field(default_factory=list)  # [{fasta: path, species: name}]
    min_paper_bp: float = 1e9  # extra_fasta below this labels a paper-profile run


@dataclass(frozen=True)
class PretrainConfig(_Section):
    """Masked-modeling pre-training (``vqdna.train.mlm.pretrain_mlm``)."""

    steps: int = 500
    batch_size: int = 32
    micro_batch_size: int | None = None  # None = batch_size
    lr: float = 0.002
    warmup_steps: int = 40
    mask_ratio: float = 0.25
    masking: str = "tokenizer"  # tokenizer: its own span (overlapping k-mers); token: single tokens
    max_tokens: int = 130


@dataclass(frozen=True)
class FinetuneConfig(_Section):
    """Fine-tuning on a task (``vqdna.train.classify.finetune``); ``protocol: benchmark`` takes epochs, lr,
    batch size and warm-up from the task's official protocol instead."""

    protocol: str = "config"  # config | benchmark
    epochs: int = 6
    lr: float = 0.001
    batch_size: int = 32
    lora_rank: int | None = 8  # None = full fine-tuning
    head_init: str = "probe"  # probe: LP-FT | random: MLP head from scratch
    patience: int | None = 3  # None = never stop early
    max_bp: int | None = 200  # bp every tokenizer sees (vqdna.train.coverage)
    window: str = "centre"  # centre | start
    select_by: str = "dev_loss"  # dev_loss | dev_metric
    warmup_steps: int = 50


@dataclass(frozen=True)
class ProbeConfig(_Section):
    """The linear probe's coverage (``vqdna.train.coverage.coverage``)."""

    max_bp: int | None = 128
    window: str = "centre"
    pooling: str = "fixed"  # fixed | sliding


@dataclass
class VQVAEConfig:
    """Every size and switch of the tokenizer. Defaults are a small CPU model; the paper scale
    (``config/paper.yaml``) is stem_dim=256, dim=384, depth=6, codebook_size=512, code_dim=384,
    levels=1 (VQ-VAE) or 2 (HRQ), ema=True, commitment_weight=0.5, stride=1. EMA decay, codebook
    initialisation and dead-code restart are not reported by the paper (documented choices; both
    configs turn dead-code restart on, ``dead_code_threshold: 1``, the class default is off)."""

    stem_dim: int = 64
    dim: int = 64
    depth: int = 2
    codebook_size: int = 64
    code_dim: int | None = None  # None: = dim; else project in/out of the code space
    levels: int = 1  # 1: VQ-VAE; 2: HRQ (paper); 3: HRQ ablation
    codebook_growth: int = 2  # level n has codebook_size * growth**(n-1) codes
    ema: bool = True  # False: codebook loss instead of EMA (ablation)
    decay: float = 0.95  # EMA decay (paper: NOT FOUND)
    commitment_weight: float = 0.5  # beta (paper)
    dead_code_threshold: float = 0.0  # > 0: restart codes whose EMA count falls below (ablation)
    data_init: bool = True  # k-means init of codebooks on the first training batch
    kmeans_iters: int = 10
    stride: int = 1  # encoder down-sampling: bp per token (ablation 1/2/4)
    stem_kernel: int = 5
    block_kernel: int = 7
    mlp_ratio: int = 4

    def __post_init__(self):
        _check(self, RULES["VQVAEConfig"])
        if not 1 <= self.levels <= self.depth:
            raise ValueError(f"need 1 <= levels <= depth, got levels={self.levels}, depth={self.depth}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")

    @classmethod
    def from_spec(cls, spec: dict) -> "VQVAEConfig":
        """The config of a tokenizer entry (``study.tokenizer_spec``), ignoring its other keys
        (type, steps, lr, ...)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in spec.items() if k in names})

    @property
    def level_sizes(self) -> list[int]:
        return [self.codebook_size * self.codebook_growth**n for n in range(self.levels)]


_POSITIVE = Int(minimum=1)
_WINDOW = Str(choices=("centre", "start"))
#: settings class -> field -> its type and range (as config/schema.yaml, which checks the config
#: files; these check every other way in: a notebook's parameters, the Python API)
RULES: dict[str, dict] = {
    "CorpusConfig": {
        "window": _POSITIVE,
        "max_windows": Int(minimum=1, nullable=True),
        "max_n_fraction": Num(minimum=0, maximum=1),
        "val_fraction": Num(exclusive_minimum=0, exclusive_maximum=1),
        "extra_fasta": List(Map({"fasta": Str(), "species": Str()}, required=("fasta",))),
        "min_paper_bp": Num(minimum=0),
    },
    "PretrainConfig": {
        "steps": _POSITIVE,
        "batch_size": _POSITIVE,
        "micro_batch_size": Int(minimum=1, nullable=True),
        "lr": Num(exclusive_minimum=0),
        "warmup_steps": Int(minimum=0),
        "mask_ratio": Num(exclusive_minimum=0, exclusive_maximum=1),
        "masking": Str(choices=("tokenizer", "token")),
        "max_tokens": _POSITIVE,
    },
    "FinetuneConfig": {
        "protocol": Str(choices=("config", "benchmark")),
        "epochs": _POSITIVE,
        "lr": Num(exclusive_minimum=0),
        "batch_size": _POSITIVE,
        "lora_rank": Int(minimum=1, nullable=True),
        "head_init": Str(choices=("probe", "random")),
        "patience": Int(minimum=0, nullable=True),
        "max_bp": Int(minimum=1, nullable=True),
        "window": _WINDOW,
        "select_by": Str(choices=("dev_loss", "dev_metric")),
        "warmup_steps": Int(minimum=0),
    },
    "ProbeConfig": {
        "max_bp": Int(minimum=1, nullable=True),
        "window": _WINDOW,
        "pooling": Str(choices=("fixed", "sliding")),
    },
    "VQVAEConfig": {
        "stem_dim": _POSITIVE,
        "dim": _POSITIVE,
        "depth": _POSITIVE,
        "codebook_size": Int(minimum=2),
        "code_dim": Int(minimum=1, nullable=True),
        "levels": Int(minimum=1, maximum=4),
        "codebook_growth": _POSITIVE,
        "ema": Bool(),
        "decay": Num(exclusive_minimum=0, exclusive_maximum=1),
        "commitment_weight": Num(minimum=0),
        "dead_code_threshold": Num(minimum=0),
        "data_init": Bool(),
        "kmeans_iters": Int(minimum=0),
        "stride": _POSITIVE,
        "stem_kernel": _POSITIVE,
        "block_kernel": _POSITIVE,
        "mlp_ratio": _POSITIVE,
    },
}
#: a vq/hrq tokenizer entry's training keys (beside the VQVAEConfig ones)
VQ_TRAINING = Map(
    {
        "steps": _POSITIVE,
        "batch_size": _POSITIVE,
        "lr": Num(exclusive_minimum=0),
        "warmup_steps": Int(minimum=0),
        "micro_batch_size": Int(minimum=1, nullable=True),
    },
    required=("steps", "batch_size", "lr"),
)


def check_vq_training(spec: dict, where: str = "tokenizer") -> None:
    """The training keys of a vq/hrq entry (steps, batch_size, lr, ...): typed and in range."""
    VQ_TRAINING.check({k: spec[k] for k in VQ_TRAINING.keys if k in spec}, where)


#: config section -> its settings class
SECTIONS: dict[str, Any] = {
    "corpus": CorpusConfig,
    "pretrain": PretrainConfig,
    "finetune": FinetuneConfig,
    "linear_probe": ProbeConfig,
}
#: settings class -> the config section it reads (for error messages)
_SECTION_NAMES = {cls.__name__: section for section, cls in SECTIONS.items()} | {"VQVAEConfig": "vqvae"}
