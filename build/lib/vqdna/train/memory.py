"""Peak GPU memory of one training step, estimated at plan time, so that a config that cannot
fit in the declared ``gpu_memory_gb`` fails at ``snakemake -n`` rather than hours into a job.

peak = model states + activations saved for backward + the largest transient + CUDA overhead:

- model states: trainable parameters x (4 B fp32 weight + 4 B gradient + 8 B AdamW moments), frozen
  buffers x 4 B, plus a 2 B bf16 copy of every weight under bf16 autocast;
- activations: bytes per element of each stage's dominant tensors. The coefficients below were
  measured on CPU with ``saved_tensor_bytes`` (the bytes autograd keeps for backward, model
  weights and, in bf16, their autocast copies excluded) and least-squares fitted over 6-7 small
  shapes (residuals <= 2%); ``tests/test_memory.py`` checks them at other shapes, and at the
  paper's widths they are within 1% (fp32) of the measurement. They assume fused
  attention (no T x T matrix: true for CUDA SDPA kernels, and for CPU SDPA without dropout).
  Transformer layer: 66.6 B per (batch x tokens x width) element in fp32 (~17 fp32 tensors of
  that size: LayerNorm, QKV, attention, MLP inputs; the MLP's 4x width counts 2x4), 38.4 B in
  bf16 (LayerNorm inputs stay fp32); masked-LM heads: 4.1 B per masked token x class (the
  fp32 log-softmax). ConvNeXt-1D block: 45.5 B per element in fp32 (~11 tensors: conv, norm,
  4x MLP), 22.7 B in bf16; per HRQ level 9 B; stem/head ~9-11 B per bp x stem width; a few
  hundred B per bp of one-hot input and logits;
- activation checkpointing keeps only each block's input (4 B per element) and recomputes one
  block at a time in backward;
- transient: one block's activations during backward (gradient buffers), the VQ-VAE's
  nearest-code distance matrices (2 x tokens x codes x 4 B), the masked-LM logits' gradient;
- overhead: 1 GiB (CUDA context, cuBLAS workspace) and 10% for allocator fragmentation.

All of it is an estimate; validate on the GPU you have (``torch.cuda.max_memory_allocated``).
The study's plan for a config: ``python -m vqdna.workflow.plan memory config/paper.yaml``.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass

import torch

GIB = 2**30
#: activation bytes per element, measured on CPU (see the module docstring), by precision
MLM_BYTES = {"fp32": {"layer": 66.6, "head": 4.1}, "bf16": {"layer": 38.4, "head": 4.1}}
VQVAE_BYTES = {
    "fp32": {"block": 45.5, "stem": 8.9, "level": 9.0, "bp": 607.0},
    "bf16": {"block": 22.7, "stem": 10.9, "level": 8.1, "bp": 197.0},
}
OVERHEAD_BYTES = 1 * GIB
FRAGMENTATION = 1.10


@dataclass
class Estimate:
    stage: str
    micro_batch: int
    states_gb: float
    activations_gb: float
    transient_gb: float

    @property
    def total_gb(self) -> float:
        """Estimated peak in GiB (model states + 1.1 x (activations + transient) + 1 GiB)."""
        dynamic = self.activations_gb + self.transient_gb
        return self.states_gb + FRAGMENTATION * dynamic + OVERHEAD_BYTES / GIB

    def __str__(self) -> str:
        return (
            f"{self.stage} at micro-batch {self.micro_batch}: ~{self.total_gb:.1f} GiB (model states "
            f"{self.states_gb:.1f}, activations {self.activations_gb:.1f}, "
            f"transient {self.transient_gb:.1f})"
        )


def saved_tensor_bytes(model: torch.nn.Module, forward) -> int:
    """Bytes of the tensors autograd saves for backward while ``forward()`` runs (each storage
    once; the model's own parameters and buffers excluded): the measured activation memory."""
    owned = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in owned:
            seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward()
    return sum(seen.values())


def _states(model: torch.nn.Module, precision: str) -> float:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(b.numel() for b in model.buffers())
    frozen += sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return trainable * (16 + (2 if precision == "bf16" else 0)) + frozen * 4


@functools.lru_cache(maxsize=256)
def _vqvae_states(config_json: str, precision: str) -> float:
    from vqdna.model.vqvae import VQVAE, VQVAEConfig

    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        return _states(VQVAE(VQVAEConfig(**json.loads(config_json))), precision)


@functools.lru_cache(maxsize=256)
def _mlm_states(
    encoder_json: str,
    target_sizes: tuple,
    codebook_sizes: tuple,
    code_dim: int,
    vocab_size: int,
    precision: str,
) -> float:
    from vqdna.model.encoder import EncoderConfig, MaskedLM, TransformerEncoder

    cfg = EncoderConfig(**json.loads(encoder_json))
    with torch.device("meta"):
        if codebook_sizes:
            body = TransformerEncoder(cfg, codebooks=[torch.empty(size, code_dim) for size in codebook_sizes])
        else:
            body = TransformerEncoder(cfg, vocab_size=vocab_size)
        return _states(MaskedLM(body, list(target_sizes)), precision)


def estimate_vqvae(
    spec: dict, micro_batch: int, length: int, precision: str = "bf16", checkpointing: bool = False
) -> Estimate:
    """Peak memory of a ``fit_vqvae`` step: ``spec`` a tokenizer spec (``study.tokenizer_spec``),
    ``length`` the window in bp."""
    from vqdna.model.vqvae import VQVAEConfig

    config = VQVAEConfig.from_spec(spec)
    states = _vqvae_states(json.dumps(asdict(config), sort_keys=True), precision)
    c, k = VQVAE_BYTES[precision], micro_batch
    tokens = math.ceil(length / config.stride)
    code_dim = config.code_dim or config.dim
    block = c["block"] * k * tokens * config.dim
    blocks = 2 * config.depth * (4 * k * tokens * config.dim if checkpointing else block)
    rest = (
        c["stem"] * k * length * config.stem_dim
        + c["bp"] * k * length
        + c["level"] * config.levels * k * tokens * code_dim
    )
    distances = 2 * k * tokens * max(config.level_sizes) * 4
    return Estimate("VQ-VAE", micro_batch, states / GIB, (blocks + rest) / GIB, max(block, distances) / GIB)


def estimate_mlm(
    encoder: dict,
    target_sizes: list[int],
    micro_batch: int,
    tokens: int,
    mask_ratio: float,
    precision: str = "bf16",
    checkpointing: bool = False,
    codebook_sizes: list[int] | None = None,
    code_dim: int = 0,
    vocab_size: int = 0,
) -> Estimate:
    """Peak memory of a ``pretrain_mlm`` step for the encoder section ``encoder``, one head per
    entry of ``target_sizes``; the embedding is learned (``vocab_size``) or frozen codebooks
    (``codebook_sizes`` x ``code_dim``)."""
    from vqdna.model.encoder import EncoderConfig

    cfg = EncoderConfig(**encoder)
    states = _mlm_states(
        json.dumps(encoder, sort_keys=True),
        tuple(target_sizes),
        tuple(codebook_sizes or ()),
        code_dim,
        vocab_size,
        precision,
    )
    c, k = MLM_BYTES[precision], micro_batch
    layer = c["layer"] * k * tokens * cfg.dim
    layers = cfg.layers * (4 * k * tokens * cfg.dim if checkpointing else layer)
    head = c["head"] * math.ceil(k * tokens * mask_ratio) * sum(target_sizes)
    return Estimate("masked LM", micro_batch, states / GIB, (layers + head) / GIB, max(layer, head) / GIB)


def largest_micro_batch(estimate, budget_gb: float, upper: int) -> int:
    """The largest micro-batch in 1..``upper`` whose ``estimate(micro_batch).total_gb`` fits in
    ``budget_gb`` (binary search; memory grows with the micro-batch); 0 if none fits."""
    low, high = 0, upper
    while low < high:
        middle = (low + high + 1) // 2
        if estimate(middle).total_gb <= budget_gb:
            low = middle
        else:
            high = middle - 1
    return low
