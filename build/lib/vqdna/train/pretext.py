"""Baselines for the masked-modeling pretext: what an encoder must beat to have learned anything.

An encoder sees more than the sequence: the position of every token, [CLS]/[SEP], the padding
mask (so the token count) and which positions are masked. The unigram loss
(``mlm.unigram_loss``) ignores all of that, so a margin below it can come from position
alone: the tail slot of a non-overlapping 6-mer row holds a single nucleotide, the first and
last BPE tokens of a window are shorter. Two frequency models of the same held-out masked
targets close those gaps:

- :func:`position_loss`: the best *context-free* predictor, the target's frequency given its
  slot (first/last few positions), its absolute position and the row's token count. An encoder
  that does not end below it has shown no use of the sequence.
- :func:`neighbour_loss`: the *local leak*, the target's frequency given the visible token on
  each side (or [MASK] where that one is masked too). VQ/HRQ codes share the VQ-VAE's receptive
  field (about 17 bp) and overlapping k-mers share bases, so a masked code is largely fixed by
  its neighbours; an encoder that learned more than that ends below this one.

Both are Dirichlet-smoothed chains (coarse key -> fine key, each level's estimate the prior of
the next), fitted on the training windows and scored as the mean cross-entropy of the held-out
targets, summed over target levels like ``MaskedLM``'s loss. Each level's smoothing strength is
the best of :data:`SMOOTHING` on the held-out targets themselves (or the level is skipped): that
favours the baseline, so an encoder said to beat it has beaten its best version, and neither
baseline is ever above the unigram loss.
"""

from __future__ import annotations

import numpy as np
import torch

#: smoothing strengths tried at every chain level (the best one is kept)
SMOOTHING = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
#: the first and last few positions of a row are told apart (slot type), the rest are "middle"
EDGE = 3


def _counts(train: np.ndarray, query: np.ndarray) -> np.ndarray:
    """How often each value of ``query`` occurs in ``train`` (int64 arrays)."""
    values, counts = np.unique(train, return_counts=True)
    where = np.clip(np.searchsorted(values, query), 0, len(values) - 1)
    return np.where(values[where] == query, counts[where], 0)


def _chain_loss(
    train_keys: list[np.ndarray],
    train_targets: np.ndarray,
    val_keys: list[np.ndarray],
    val_targets: np.ndarray,
    size: int,
) -> float:
    """Mean cross-entropy of ``val_targets`` under add-one unigram frequencies refined by each
    key of the chain in turn, p <- (c(key, t) + beta p) / (c(key) + beta), with each level's
    beta the best of :data:`SMOOTHING` (or the level skipped, if that is better)."""
    p = (_counts(train_targets, val_targets) + 1.0) / (len(train_targets) + size)
    for k_train, k_val in zip(train_keys, val_keys):
        joint = _counts(k_train * size + train_targets, k_val * size + val_targets)
        total = _counts(k_train, k_val)
        candidates = [p] + [(joint + beta * p) / (total + beta) for beta in SMOOTHING]
        p = min(candidates, key=lambda q: -np.log(q).mean())
    return float(-np.log(p).mean())


def _best_chain_loss(tokenizer, train_ids, train_at, val_ids, val_at, train_keys, val_keys) -> float:
    """Sum over target levels of the chain loss (targets of ``*_ids`` at the boolean positions
    ``*_at``; keys given per selected position)."""
    train_targets = np.asarray(tokenizer.mlm_targets(train_ids[train_at])).reshape(int(train_at.sum()), -1)
    val_targets = np.asarray(tokenizer.mlm_targets(val_ids[val_at])).reshape(int(val_at.sum()), -1)
    return sum(
        _chain_loss(
            train_keys,
            train_targets[:, level].astype(np.int64),
            val_keys,
            val_targets[:, level].astype(np.int64),
            size,
        )
        for level, size in enumerate(tokenizer.mlm_target_sizes)
    )


def _position_keys(ids: torch.Tensor, at: torch.Tensor, n_special: int) -> list[np.ndarray]:
    """Per selected position: slot (first/last EDGE positions or middle) then (position, count)."""
    regular = (ids >= n_special).numpy()
    count = np.broadcast_to(regular.sum(1, keepdims=True), regular.shape)
    column = np.broadcast_to(np.arange(ids.shape[1]), regular.shape)
    at = at.numpy()
    position, n = column[at].astype(np.int64), count[at].astype(np.int64)
    from_end = n + 1 - position  # [CLS] is column 0, [SEP] column n + 1
    slot = np.minimum(position, EDGE + 1) * (EDGE + 2) + np.minimum(from_end, EDGE + 1)
    return [slot, position * (ids.shape[1] + 1) + n]


def position_loss(
    tokenizer, train_ids: torch.Tensor, val_ids: torch.Tensor, val_positions: torch.Tensor, n_special: int = 5
) -> float:
    """Held-out loss of the target's frequency given its slot, absolute position and the row's
    token count (no token identity): the best context-free predictor (module docstring)."""
    train_at = train_ids >= n_special
    return _best_chain_loss(
        tokenizer,
        train_ids,
        train_at,
        val_ids,
        val_positions,
        _position_keys(train_ids, train_at, n_special),
        _position_keys(val_ids, val_positions, n_special),
    )


def _neighbour_keys(visible: torch.Tensor, at: torch.Tensor, width: int) -> list[np.ndarray]:
    """Per selected position: the visible left token, then (left, right) ([MASK] where masked,
    [CLS]/[SEP]/padding at the edges); ``width``: the vocabulary size."""
    ids = visible.long().numpy()
    padded = np.pad(ids, ((0, 0), (1, 1)))
    rows, cols = np.nonzero(at.numpy())
    left, right = padded[rows, cols], padded[rows, cols + 2]
    return [left, left * width + right]


def neighbour_loss(
    tokenizer,
    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> float:
    """Held-out loss of the target's frequency given its visible neighbours (module docstring).
    ``train`` and ``val``: (ids, masked ids, masked positions), the training windows masked as
    the held-out ones were (same ratio and span) so that a neighbour is [MASK] as often."""
    (t_ids, t_masked, t_at), (v_ids, v_masked, v_at) = train, val
    return _best_chain_loss(
        tokenizer,
        t_ids.long(),
        t_at,
        v_ids.long(),
        v_at,
        _neighbour_keys(t_masked, t_at, tokenizer.vocab_size),
        _neighbour_keys(v_masked, v_at, tokenizer.vocab_size),
    )
