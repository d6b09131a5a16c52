"""VQDNA stage-1 tokenizer: a ConvNeXt-1D VQ-VAE over one-hot nucleotides, plain (VQ) or with
Hierarchical Residual Quantization (HRQ). Codebook indices are the DNA tokens. The network and
its held-out evaluation; the quantizer itself is vqdna/model/quantizer.py and the training loop
:func:`vqdna.train.vqvae_trainer.fit_vqvae`.

Network (paper Sec. 3.3; sizes in :class:`VQVAEConfig`):

- input ``idx (B, L)`` over A0 C1 G2 T3 N4 -> one-hot ``(B, L, 4)``, N = all-zero column;
- encoder: stem Conv1d(4 -> stem_dim, kernel 5, stride 1) -> LayerNorm -> GELU -> ``down``
  (Conv1d(stem_dim -> dim, kernel = stride = ``stride``); a 1x1 projection when stride is 1 and
  the widths differ) -> ``depth`` ConvNeXt-1D blocks of width ``dim``;
- quantization (vqdna/model/hrq.py): ``levels`` taps at evenly spaced block depths, each
  normalised and projected to ``code_dim`` (Z_n); level 1 quantizes Z_1, level n
  H_n = 2 Z_n - e(M_{n-1}) (HRQ, Eq. 6) with ``codebook_size * codebook_growth**(n-1)`` codes.
  The token embedding is the mean of the levels' straight-through quantized vectors; with
  levels=1 this is plain VQ-VAE;
- decoder (mirror): linear back to ``dim`` if ``code_dim != dim`` -> ``depth`` blocks ->
  ``up`` (ConvTranspose1d dim -> stem_dim, kernel = stride = ``stride``) -> LayerNorm -> GELU ->
  ConvTranspose1d(stem_dim -> 4, kernel 5) = per-position nucleotide logits ``(B, L, 4)``.

Codebook sizes: the sources give "level n has 2^n K codes" without saying whether n starts at 0.
We use {K, 2K} for two levels (n from 0, as the re-implementation quoted in the notes, 512/1024
at paper scale); ``codebook_growth`` and ``codebook_size`` reach the other reading ({2K, 4K}).

Down-sampling (ablation ``stride`` s in 1/2/4): T = ceil(L / s) tokens, i.e. s bp per token.
A length not divisible by s is right-padded with N (all-zero columns) to a multiple of s before
the encoder, and the decoder output is cropped back to L; the padding is never scored.

Loss = nucleotide cross-entropy over non-N positions + mean over levels of the quantizer loss
(beta * commitment, plus the codebook loss in the ``ema=False`` ablation).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from vqdna.core.sequence import N_INDEX, to_indices
from vqdna.core.settings import VQVAEConfig
from vqdna.model.checkpoint import load_checkpoint, save_checkpoint
from vqdna.model.hrq import HRQ
from vqdna.model.quantizer import Quantized


@dataclass
class VQVAEOutput:
    logits: torch.Tensor  # (B, L, 4)
    indices: torch.Tensor  # (B, T, levels) long
    quantized: torch.Tensor  # (B, T, code_dim), mean of the levels' straight-through codes
    loss: torch.Tensor  # recon_loss + quant_loss
    recon_loss: torch.Tensor  # cross-entropy over non-N positions
    commit_loss: torch.Tensor  # unweighted commitment ||H - sg(e)||^2, mean over levels
    quant_loss: torch.Tensor  # quantizer loss, mean over levels
    n_scored: torch.Tensor  # non-N positions recon_loss averages over


class Block(nn.Module):
    """ConvNeXt-1D block on channels-last ``(B, T, dim)``: depth-wise conv -> LayerNorm ->
    Linear(dim, r*dim) -> GELU -> Linear(r*dim, dim), added to the input."""

    def __init__(self, dim: int, kernel: int, mlp_ratio: int):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(self.dwconv(x.transpose(1, 2)).transpose(1, 2)))


class VQVAE(HRQ):
    """VQ-VAE (``levels=1``) or HRQ tokenizer; see the module docstring for the architecture and
    :class:`vqdna.model.hrq.HRQ` for the quantization levels it inherits."""

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        c = self.config = config
        code_dim = self.code_dim = c.code_dim or c.dim
        # encoder
        self.stem = nn.Conv1d(4, c.stem_dim, c.stem_kernel, padding=c.stem_kernel // 2)
        self.stem_norm = nn.LayerNorm(c.stem_dim)
        self.down = (
            nn.Conv1d(c.stem_dim, c.dim, c.stride, stride=c.stride)
            if c.stride > 1 or c.stem_dim != c.dim
            else nn.Identity()
        )
        self.encoder = nn.ModuleList(Block(c.dim, c.block_kernel, c.mlp_ratio) for _ in range(c.depth))
        self.init_levels(c, code_dim)  # quantization levels (HRQ): pre_quant, quantizers
        # decoder
        self.post_quant = nn.Linear(code_dim, c.dim) if code_dim != c.dim else nn.Identity()
        self.decoder = nn.ModuleList(Block(c.dim, c.block_kernel, c.mlp_ratio) for _ in range(c.depth))
        self.up = (
            nn.ConvTranspose1d(c.dim, c.stem_dim, c.stride, stride=c.stride)
            if c.stride > 1 or c.stem_dim != c.dim
            else nn.Identity()
        )
        self.head_norm = nn.LayerNorm(c.stem_dim)
        self.head = nn.ConvTranspose1d(c.stem_dim, 4, c.stem_kernel, padding=c.stem_kernel // 2)
        self.activation_checkpointing = False  # True: recompute block activations in backward

    def _block(self, block: Block, h: torch.Tensor) -> torch.Tensor:
        if self.activation_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, h, use_reentrant=False)
        return block(h)

    @property
    def level_sizes(self) -> list[int]:
        return self.config.level_sizes

    def encode(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> list[Quantized]:
        """``idx (B, L)`` -> one :class:`Quantized` per level, each over ``T = ceil(L/stride)`` tokens."""
        x = F.one_hot(idx.long(), 5)[..., :4].float()  # N -> all-zero column
        x = F.pad(x, (0, 0, 0, -idx.shape[1] % self.config.stride))  # right-pad with N
        h = F.gelu(self.stem_norm(self.stem(x.transpose(1, 2)).transpose(1, 2)))
        h = _channels_first(self.down, h)
        levels, previous = [], None
        for depth, block in enumerate(self.encoder, start=1):
            h = self._block(block, h)
            if depth in self.taps:
                levels.append(self.quantize_level(len(levels), h, previous, generator))
                previous = levels[-1].quantized.detach()  # = e(M_{n-1})
        return levels

    def decode(self, quantized: torch.Tensor, length: int) -> torch.Tensor:
        """Token embeddings ``(B, T, code_dim)`` -> nucleotide logits ``(B, length, 4)``."""
        h = self.post_quant(quantized)
        for block in self.decoder:
            h = self._block(block, h)
        h = F.gelu(self.head_norm(_channels_first(self.up, h)))
        return _channels_first(self.head, h)[:, :length]

    def forward(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> VQVAEOutput:
        """Reconstruct ``idx (B, L)``; in training mode the codebooks are initialised / EMA-updated,
        drawing randomness (data init, dead-code restart) from ``generator``."""
        levels = self.encode(idx, generator)
        quantized = torch.stack([q.quantized for q in levels]).mean(0)
        logits = self.decode(quantized, idx.shape[1])
        target = idx.long().reshape(-1)
        n_scored = (target != N_INDEX).sum().clamp(min=1)
        recon = (
            F.cross_entropy(logits.reshape(-1, 4), target, ignore_index=N_INDEX, reduction="sum") / n_scored
        )
        quant_loss = torch.stack([q.loss for q in levels]).mean()
        return VQVAEOutput(
            logits=logits,
            indices=torch.stack([q.indices for q in levels], dim=-1),
            quantized=quantized,
            loss=recon + quant_loss,
            recon_loss=recon,
            commit_loss=torch.stack([q.commitment for q in levels]).mean(),
            quant_loss=quant_loss,
            n_scored=n_scored,
        )

    @torch.no_grad()
    def tokenize(self, idx: torch.Tensor) -> torch.Tensor:
        """``idx (B, L)`` -> codes ``(B, T, levels)``, in eval mode (no codebook update)."""
        was_training = self.training
        self.eval()
        levels = self.encode(idx.to(self.quantizers[0].codebook.device))
        self.train(was_training)
        return torch.stack([q.indices for q in levels], dim=-1)

    def save(self, path: str | Path) -> None:
        """Config + state dict in one file (atomic write)."""
        save_checkpoint(path, self, config=asdict(self.config))

    @classmethod
    def load(cls, path: str | Path, map_location="cpu") -> "VQVAE":
        """Inverse of :meth:`save`; the model comes back in eval mode."""
        payload = load_checkpoint(path, map_location=map_location)
        model = cls(VQVAEConfig(**payload["config"]))
        model.load_state_dict(payload["state_dict"])
        return model.eval()


def _channels_first(layer: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """Apply a Conv1d-like ``layer`` to channels-last ``h (B, T, C)``."""
    return h if isinstance(layer, nn.Identity) else layer(h.transpose(1, 2)).transpose(1, 2)


def windows_by_length(windows: list[str]) -> dict[int, torch.Tensor]:
    """Group normalised windows by length: ``{length: LongTensor (n, length)}`` in input order.

    Mixed lengths are handled by grouping (a batch never mixes lengths), so no padding symbol
    ever reaches the codebooks."""
    groups: dict[int, list[np.ndarray]] = {}
    for window in windows:
        groups.setdefault(len(window), []).append(to_indices(window))
    out = {}
    for length in sorted(groups):
        array = np.stack(groups[length])
        if (array < 0).any():
            raise ValueError(
                "windows must be normalised (vqdna.core.sequence.normalize): found a symbol outside ACGTN"
            )
        out[length] = torch.from_numpy(array).long()
    return out


@torch.no_grad()
def heldout_percentages(
    model: VQVAE, windows: list[str], batch_size: int = 256, max_batch_bp: int = 256 * 1024
) -> dict:
    """Held-out tokenizer quality, in eval mode (no codebook update). A batch holds at most
    ``batch_size`` windows and ``max_batch_bp`` bases, so memory stays flat on long sequences
    (166 test sequences of 32 kbp in one batch took 15 GB).

    Returns ``recon_accuracy`` (% of non-N positions whose argmax logit is the input base),
    ``code_usage`` (per level, % of the level's codes used at least once on these windows),
    ``perplexity`` (per level, exp of the entropy of the code frequencies), ``bp_per_token``,
    ``n_windows``, ``n_tokens``.
    """
    was_training = model.training
    model.eval()
    device = model.quantizers[0].codebook.device
    correct = scored = n_bp = n_tokens = 0
    counts = [torch.zeros(size, dtype=torch.long) for size in model.level_sizes]
    for length, batch_all in windows_by_length(windows).items():
        for batch in batch_all.split(max(1, min(batch_size, max_batch_bp // length))):
            out = model(batch.to(device))
            valid = batch != N_INDEX
            correct += int(((out.logits.argmax(-1).cpu() == batch) & valid).sum())
            scored += int(valid.sum())
            n_bp += batch.numel()
            n_tokens += out.indices.shape[0] * out.indices.shape[1]
            for n, count in enumerate(counts):
                count += torch.bincount(out.indices[..., n].reshape(-1).cpu(), minlength=len(count))
    model.train(was_training)
    probs = [count.double() / count.sum().clamp(min=1) for count in counts]
    return {
        "recon_accuracy": 100.0 * correct / max(scored, 1),
        "code_usage": [100.0 * float((count > 0).double().mean()) for count in counts],
        "perplexity": [math.exp(-float((p[p > 0] * p[p > 0].log()).sum())) for p in probs],
        "bp_per_token": n_bp / max(n_tokens, 1),
        "n_windows": len(windows),
        "n_tokens": n_tokens,
    }
