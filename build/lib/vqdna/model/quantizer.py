"""One vector-quantization level: nearest code, straight-through gradient, EMA codebook.

``VectorQuantizer`` maps vectors ``x (..., dim)`` to their nearest code ``e(m) = argmin_k ||x - e_k||``
and returns ``x + sg(e(m) - x)`` (straight-through: the forward value is the code, the gradient
goes to ``x`` unchanged). Two ways to learn the codebook:

- ``ema=True`` (paper, VQ-VAE-2 style): codes are exponential moving averages of the vectors
  assigned to them (decay ``decay``, Laplace-smoothed counts); the codebook is a buffer with no
  gradient. Loss = ``beta * ||x - sg(e)||^2`` (commitment, beta = 0.5 in the paper).
- ``ema=False`` (ablation, original VQ-VAE): the codebook is a parameter trained by the codebook
  loss ``||sg(x) - e||^2``; loss = codebook loss + ``beta *`` commitment.

Codebook initialisation (paper: NOT FOUND) is data-dependent by default: on the first training
forward the codes are set by ``kmeans_iters`` Lloyd iterations on that batch's vectors, starting
from a random sample of them (``kmeans_iters=0``: the sample itself). Random-normal codes often
leave most of the codebook unused, and k-means init is the usual remedy (SoundStream, Jukebox).
Dead-code restart (the paper names no mechanism; off in this class by default, on with
threshold 1 in config/config.yaml and config/paper.yaml because without it 30% of the codes
stayed unused, README "Choices"): after each update, codes whose EMA usage count fell below
``dead_code_threshold`` are replaced by random vectors of the current batch.

Micro-batches and data-parallel ranks (``defer_updates = True``, set by ``fit_vqvae``): the
EMA statistics of every forward pass are summed (over micro-batches, and over ranks by an
all-reduce) and applied once per optimiser step by :meth:`apply_updates`, so the codebook moves
as with the whole batch in one forward. Data init then uses the step's first micro-batch (of
rank 0), and dead-code restart draws from its last micro-batch (of the last rank).

Why not ``vector_quantize_pytorch`` (pinned 1.32.0, which has EMA, k-means init and dead-code
expiry)? Its random draws (k-means seeds, replaced codes) use the global torch RNG with no way
to pass a generator; its k-means init also runs on the first forward in eval mode, so tokenizing
an untrained model silently changes its codebook; and its learnable-codebook mode folds codebook
and commitment terms into one ``commitment_weight * ||x - e||^2``, not the VQ-VAE loss with its
own beta. The ~100 lines below do exactly the spec, and every random draw takes an explicit
``torch.Generator``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class Quantized(NamedTuple):
    quantized: torch.Tensor  # (..., dim) straight-through codes
    indices: torch.Tensor  # (...) long, chosen code per vector
    loss: torch.Tensor  # scalar: beta * commitment (+ codebook loss when ema=False)
    commitment: torch.Tensor  # scalar: unweighted ||x - sg(e)||^2 (mean over elements)


class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantizer with ``codebook_size`` codes of width ``dim``.

    State (all in ``state_dict``): ``codebook (K, dim)`` (buffer if ``ema`` else parameter),
    ``cluster_size (K)`` and ``embed_sum (K, dim)`` (EMA usage counts and sums), ``initialised``.
    The EMA statistics start at one pseudo-count per code holding its initial value, so a code
    that is never chosen keeps its value (its count decays, which dead-code restart watches).
    """

    def __init__(
        self,
        codebook_size: int,
        dim: int,
        decay: float = 0.99,
        commitment_weight: float = 0.5,
        ema: bool = True,
        dead_code_threshold: float = 0.0,
        data_init: bool = True,
        kmeans_iters: int = 10,
        eps: float = 1e-5,
    ):
        super().__init__()
        self.codebook_size, self.dim = codebook_size, dim
        self.decay, self.commitment_weight, self.ema = decay, commitment_weight, ema
        self.dead_code_threshold, self.kmeans_iters, self.eps = dead_code_threshold, kmeans_iters, eps
        codebook = torch.randn(codebook_size, dim)
        if ema:
            self.register_buffer("codebook", codebook)
        else:
            self.codebook = nn.Parameter(codebook)
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("embed_sum", codebook.clone())
        self.register_buffer("initialised", torch.tensor(not data_init))
        self.defer_updates = False  # True: accumulate EMA statistics until apply_updates()
        self._pending: dict | None = None

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (squared Euclidean distance) for each row of ``x (n, dim)``."""
        codes = self.codebook.detach()
        dist = x.pow(2).sum(1, keepdim=True) - 2 * x @ codes.t() + codes.pow(2).sum(1)
        return dist.argmin(1)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> Quantized:
        """Quantize ``x (..., dim)``; in training mode also initialise / update the codebook.

        ``generator`` (CPU) drives the random draws of data init and dead-code restart. Runs in
        fp32 even under bf16 autocast: nearest-code search needs the precision.
        """
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._forward(x.float(), generator)

    def _forward(self, x: torch.Tensor, generator: torch.Generator | None) -> Quantized:
        flat = x.reshape(-1, self.dim)
        if self.training and not self.initialised:
            self._init_from(flat.detach().float(), generator)
        indices = self.nearest(flat.detach())
        codes = F.embedding(indices, self.codebook).view_as(x)
        commitment = F.mse_loss(x, codes.detach())
        loss = self.commitment_weight * commitment
        if not self.ema:
            loss = loss + F.mse_loss(codes, x.detach())
        if self.training and self.defer_updates:
            self._accumulate(flat.detach().float(), indices)
        elif self.training:
            self._update(flat.detach().float(), indices, generator)
        quantized = x + (codes - x).detach()
        return Quantized(quantized, indices.view(x.shape[:-1]), loss, commitment)

    @torch.no_grad()
    def _init_from(self, data: torch.Tensor, generator: torch.Generator | None) -> None:
        """k-means (``kmeans_iters`` Lloyd steps) on ``data (n, dim)``, seeded by a random sample."""
        codes = data[_sample_rows(len(data), self.codebook_size, generator, data.device)]
        for _ in range(self.kmeans_iters):
            assign = torch.cdist(data, codes).argmin(1)
            counts = torch.bincount(assign, minlength=self.codebook_size).to(data.dtype)
            sums = torch.zeros_like(codes).index_add_(0, assign, data)
            codes = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], codes)
        if _world() > 1:  # every rank starts from rank 0's codebook
            dist.broadcast(codes, 0)
        self.codebook.data.copy_(codes)
        self.embed_sum.copy_(codes)
        self.cluster_size.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _accumulate(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        counts = torch.bincount(indices, minlength=self.codebook_size).to(flat.dtype)
        sums = torch.zeros_like(self.embed_sum).index_add_(0, indices, flat)
        if self._pending is None:
            self._pending = {"counts": counts, "sums": sums}
        else:
            self._pending["counts"] += counts
            self._pending["sums"] += sums
        self._pending["flat"] = flat  # dead-code restart draws from the last micro-batch

    @torch.no_grad()
    def apply_updates(self, generator: torch.Generator | None = None) -> None:
        """Apply the EMA statistics accumulated since the last call (summed over ranks)."""
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        flat = pending["flat"]
        if _world() > 1:
            dist.all_reduce(pending["counts"])
            dist.all_reduce(pending["sums"])
        self._update(flat, None, generator, counts=pending["counts"], sums=pending["sums"])

    @torch.no_grad()
    def _update(
        self,
        flat: torch.Tensor,
        indices: torch.Tensor | None,
        generator: torch.Generator | None,
        counts: torch.Tensor | None = None,
        sums: torch.Tensor | None = None,
    ) -> None:
        """EMA usage counts (both modes), EMA codes (``ema=True``), then dead-code restart.
        ``counts``/``sums``: accumulated statistics instead of those of ``flat``/``indices``."""
        if counts is None:
            counts = torch.bincount(indices, minlength=self.codebook_size).to(flat.dtype)
        self.cluster_size.lerp_(counts, 1 - self.decay)
        if self.ema:
            if sums is None:
                sums = torch.zeros_like(self.embed_sum).index_add_(0, indices, flat)
            self.embed_sum.lerp_(sums, 1 - self.decay)
            total = self.cluster_size.sum()
            smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total
            self.codebook.data.copy_(self.embed_sum / smoothed[:, None])
        if self.dead_code_threshold > 0:
            dead = (self.cluster_size < self.dead_code_threshold).nonzero().squeeze(1)
            if len(dead):
                fresh = flat[_sample_rows(len(flat), len(dead), generator, flat.device)]
                if _world() > 1:  # the batch's last rows live on the last rank
                    dist.broadcast(fresh, _world() - 1)
                self.codebook.data[dead] = fresh
                self.cluster_size[dead] = self.dead_code_threshold
                self.embed_sum[dead] = fresh * self.dead_code_threshold


def _sample_rows(n: int, k: int, generator: torch.Generator | None, device) -> torch.Tensor:
    """``k`` row indices out of ``n``: distinct when ``k <= n``, else with replacement."""
    if k <= n:
        rows = torch.randperm(n, generator=generator)[:k]
    else:
        rows = torch.randint(n, (k,), generator=generator)
    return rows.to(device)


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
