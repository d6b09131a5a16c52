"""Hierarchical Residual Quantization (HRQ), the paper's contribution (Sec. 3.3, Eq. 6).

What: a stack of ``levels`` codebooks of growing size tapped at evenly spaced encoder depths.
Level n reads the encoder features at depth ``depth * n // levels`` (levels=2 over 6 blocks:
blocks 3 and 6, as the paper places its two codebooks), normalises them (LayerNorm, so every
level sees one scale; paper: not stated) and projects them to ``code_dim`` when it differs from
the encoder width, giving Z_n. Level 1 quantizes Z_1; level n quantizes

    H_n = 2 Z_n - e(M_{n-1})        (Eq. 6)

with its own codebook of ``codebook_size * codebook_growth**(n-1)`` codes ({K, 2K} for two
levels: the paper's "2^n K" with n from 0). e(M_{n-1}), the code the previous level chose,
enters as a constant (no gradient through it). The token embedding is the mean of the levels'
straight-through quantized vectors; with ``levels=1`` the stack is one plain VQ codebook.

Why: a coarse codebook at mid depth and a larger, fine one at full depth that quantizes what the
coarse code left (the factor 2 keeps the features and the code on one scale) make the
vocabulary grow combinatorially while each codebook stays small; the paper reads the coarse
level as lineage-level and the fine level as mutation-level structure (Fig. 5).

:class:`HRQ` is the quantization half of :class:`vqdna.model.vqvae.VQVAE`, which inherits it so
that the level layers keep their checkpoint names (``pre_quant.*``, ``quantizers.*``) and their
place in the parameter order; one level is one :class:`vqdna.model.quantizer.VectorQuantizer`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vqdna.core.settings import VQVAEConfig
from vqdna.model.quantizer import Quantized, VectorQuantizer


def tap_depths(depth: int, levels: int) -> list[int]:
    """The encoder depth (1-based block count) each level reads: levels=1 taps block N, levels=2
    blocks N/2 and N, levels=3 N/3, 2N/3 and N."""
    return [depth * (n + 1) // levels for n in range(levels)]


class HRQ(nn.Module):
    """The level stack: per level a feature map (LayerNorm, projection to ``code_dim``) and a
    codebook of the level's size; see the module docstring for Eq. 6."""

    def init_levels(self, config: VQVAEConfig, code_dim: int) -> None:
        """Build the levels of ``config`` (call where the encoder's parameters end: the order of
        registration is the order of the parameters)."""
        self.taps = tap_depths(config.depth, config.levels)
        self.pre_quant = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(config.dim),
                nn.Linear(config.dim, code_dim) if code_dim != config.dim else nn.Identity(),
            )
            for _ in range(config.levels)
        )
        self.quantizers = nn.ModuleList(
            VectorQuantizer(
                size,
                code_dim,
                decay=config.decay,
                commitment_weight=config.commitment_weight,
                ema=config.ema,
                dead_code_threshold=config.dead_code_threshold,
                data_init=config.data_init,
                kmeans_iters=config.kmeans_iters,
            )
            for size in config.level_sizes
        )

    def quantize_level(
        self, n: int, h: torch.Tensor, previous: torch.Tensor | None, generator: torch.Generator | None
    ) -> Quantized:
        """Level ``n`` (0-based) on the encoder features ``h`` at its tap: Z_n, then Z_1 itself or
        Eq. 6's H_n = 2 Z_n - e(M_{n-1}) with ``previous`` = e(M_{n-1}), detached."""
        z = self.pre_quant[n](h)
        return self.quantizers[n](z if previous is None else 2 * z - previous, generator)

    def codebooks(self) -> list[torch.Tensor]:
        """Detached copies of the codebooks, ``(K_l, code_dim)`` per level."""
        return [q.codebook.detach().clone() for q in self.quantizers]

    def codes_to_vectors(self, levels: torch.Tensor) -> torch.Tensor:
        """Per-level codes ``(..., levels)`` -> token embeddings ``(..., code_dim)``: the mean of the
        levels' code vectors (the paper's token embedding), detached."""
        vectors = [F.embedding(levels[..., n], q.codebook.detach()) for n, q in enumerate(self.quantizers)]
        return torch.stack(vectors).mean(0)
