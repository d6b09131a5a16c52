"""Masked-modeling pre-training (paper stage 2): :func:`pretrain_mlm` of a ``MaskedLM``, its
masking (:func:`mask_tokens`), the frequency-only baseline (:func:`unigram_loss`) and the
masked-token evaluation. The step loop itself (resume, preemption, checkpoints) is
:class:`vqdna.train.loop.StepLoop`, shared with the VQ-VAE trainer."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from vqdna.core.settings import PretrainConfig
from vqdna.tokenizers.base import N_SPECIAL
from vqdna.train import pretext, scale
from vqdna.train.batches import tokenize_all, trim
from vqdna.train.loop import RunConfig, StepLoop
from vqdna.train.optim import check_finite, make_optimizer


@dataclass(frozen=True)
class MLMTraining:
    """What :func:`pretrain_mlm` trains: the config's ``pretrain`` section
    (:meth:`from_settings`) plus the loop's own knobs. ``masking``: "tokenizer" masks spans of
    the tokenizer's ``mlm_span`` (overlapping k-mers: DNABERT's span masking), "token" masks
    tokens independently. ``micro_batch_size``: rows per forward pass, gradients accumulated to
    the full ``batch_size`` (None: one pass)."""

    steps: int = 300
    batch_size: int = 32
    lr: float = 5e-4
    mask_ratio: float = 0.25
    max_length: int = 128
    warmup_steps: int = 30
    eval_every: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    masking: str = "tokenizer"
    micro_batch_size: int | None = None

    @classmethod
    def from_settings(cls, settings: PretrainConfig) -> "MLMTraining":
        """The config's ``pretrain`` section: ``max_tokens`` is the token cap, a history entry
        every tenth of the steps."""
        return cls(
            steps=settings.steps,
            batch_size=settings.batch_size,
            lr=settings.lr,
            mask_ratio=settings.mask_ratio,
            max_length=settings.max_tokens,
            warmup_steps=settings.warmup_steps,
            eval_every=max(1, settings.steps // 10),
            masking=settings.masking,
            micro_batch_size=settings.micro_batch_size,
        )


def mask_tokens(
    ids: torch.Tensor,
    mask_ratio: float,
    generator: torch.Generator,
    mask_id: int = 4,
    n_special: int = 5,
    span: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask about ``mask_ratio`` of each row's n regular tokens, in contiguous spans of ``span``
    tokens: round(mask_ratio * n / span) span starts (at least one) are drawn uniformly with
    ``generator`` and each covers the next ``span`` regular tokens (spans may overlap, so a
    little less than ``mask_ratio`` can be masked when span > 1). Every chosen position becomes
    [MASK] (the paper's masked code modeling; no BERT 80/10/10, which would also feed random
    code tuples into the frozen-codebook embedding). ``span`` > 1 is DNABERT's scheme for
    overlapping k-mers (``Tokenizer.mlm_span``). Returns (masked ids, bool positions)."""
    regular = ids >= n_special
    scores = torch.rand(ids.shape, generator=generator).masked_fill(~regular, 2.0)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    count = (regular.sum(1, keepdim=True) * mask_ratio / span).round().clamp(min=1)
    starts = (ranks < count) & regular
    positions = starts.clone()
    for shift in range(1, span):
        positions[:, shift:] |= starts[:, :-shift]
    positions &= regular
    return ids.masked_fill(positions, mask_id), positions


def unigram_loss(
    tokenizer,
    train_ids: torch.Tensor,
    val_ids: torch.Tensor,
    val_positions: torch.Tensor,
    smoothing: float = 1.0,
) -> float:
    """The masked-modeling loss of a model that knows only target frequencies: cross-entropy
    (summed over targets, like ``MaskedLM``) of the validation masked targets under the
    add-``smoothing`` frequencies of the training targets. A pre-trained model that learned
    anything from context ends below it."""
    train = tokenizer.mlm_targets(train_ids[train_ids >= N_SPECIAL])
    val = tokenizer.mlm_targets(val_ids[val_positions])
    total = 0.0
    for level, size in enumerate(tokenizer.mlm_target_sizes):
        counts = torch.bincount(train[:, level], minlength=size).double() + smoothing
        log_p = (counts / counts.sum()).log()
        total += float(-log_p[val[:, level]].mean())
    return total


def _masked_copies(ids: torch.Tensor, mask_ratio: float, span: int, seed: int, copies: int = 4):
    """(ids, masked ids, positions) of ``copies`` independent maskings of the training windows,
    stacked: the training side of :func:`vqdna.train.pretext.neighbour_loss`."""
    drawn = [
        mask_tokens(ids.long(), mask_ratio, torch.Generator().manual_seed(seed + 100 + c), span=span)
        for c in range(copies)
    ]
    return (
        torch.cat([ids.long()] * copies),
        torch.cat([m for m, _ in drawn]),
        torch.cat([p for _, p in drawn]),
    )


def _mlm_labels(tokenizer, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(B, T, n_targets) targets of the original ids at masked positions, -100 elsewhere."""
    targets = torch.as_tensor(tokenizer.mlm_targets(ids)).long()
    return targets.masked_fill(~positions[..., None], -100)


@torch.no_grad()
def _mlm_evaluate(model, ids, mask, labels, batch_size: int, device) -> dict[str, float]:
    """Masked-token loss and accuracy (mean over targets) on a fixed, pre-masked set."""
    model.eval()
    loss_sum, correct, count = 0.0, 0.0, 0
    for start in range(0, len(ids), batch_size):
        b_ids, b_mask = trim(ids[start : start + batch_size], mask[start : start + batch_size])
        b_labels = labels[start : start + batch_size, : b_ids.shape[1]].to(device)
        logits, loss = model(b_ids.to(device), b_mask.to(device), b_labels)
        selected = b_labels[..., 0] != -100
        targets = b_labels[selected]
        hits = torch.stack([(lg.argmax(-1) == targets[:, i]).float() for i, lg in enumerate(logits)]).mean(0)
        loss_sum, correct, count = (
            loss_sum + float(loss) * len(hits),
            correct + float(hits.sum()),
            count + len(hits),
        )
    model.train()
    return {"val_loss": loss_sum / max(1, count), "val_accuracy": correct / max(1, count)}


def pretrain_mlm(
    model,
    tokenizer,
    sequences: list[str],
    settings: MLMTraining,
    val_sequences: list[str] | None = None,
    seed: int = 0,
    run: RunConfig = RunConfig(),
) -> list[dict]:
    """Masked-modeling pre-training of a ``MaskedLM`` (paper stage 2: 25% masking, AdamW, cosine).

    Sequences are tokenised once; batches are drawn epoch-wise without replacement from a seeded
    generator. The validation set is masked once (fixed) so its numbers are comparable across
    evaluations. A codebook embedding stays frozen (its code vectors are buffers). Returns the
    history: one dict per ``eval_every`` steps (and the last step) with step, train_loss (mean
    since the previous entry), lr, steps_per_s (training only) and, given ``val_sequences``,
    val_loss / val_accuracy, unigram_loss (the frequency-only baseline on the same masked
    targets) and the position-aware and neighbour baselines of :mod:`vqdna.train.pretext`.

    Scale (``vqdna.train.scale``): each micro-batch's loss is weighted by its share of the batch's
    masked tokens, so the step's gradient is the full batch's; bf16 autocast keeps fp32 master
    weights; under ``torchrun`` (WORLD_SIZE > 1) each rank trains on its shard of every batch
    (DDP) and every history entry carries ``world_size``. ``run``: device, precision and resume
    checkpoints (:class:`~vqdna.train.loop.RunConfig`); a resumed run gives the same weights
    and history as an uninterrupted one.
    """
    loop = StepLoop("pretrain_mlm", seed, settings.batch_size, run)
    model.to(loop.device).train()
    ids, mask = tokenize_all(tokenizer, sequences, settings.max_length)
    span = getattr(tokenizer, "mlm_span", 1) if settings.masking == "tokenizer" else 1
    val, baselines = _validation(tokenizer, ids, val_sequences, settings, span, seed)
    optimizer, scheduler = make_optimizer(
        model, settings.lr, settings.steps, settings.warmup_steps, settings.weight_decay
    )
    state = {"history": [], "losses": [], "order": torch.empty(0, dtype=torch.long)}
    fingerprint = _fingerprint(settings, seed, len(ids), loop.ranks.world, span)
    start = loop.resume(model, optimizer, scheduler, fingerprint, state)
    steps = _PretrainSteps(loop, tokenizer, (ids, mask), settings, span, (val, baselines), start)
    loop.run(start, settings.steps, steps.step, desc="pretrain")
    loop.finish(settings.steps)
    return state["history"]


def _validation(tokenizer, ids, val_sequences, settings: MLMTraining, span: int, seed: int):
    """(the validation set masked once: masked ids, attention mask, labels; the baselines'
    losses on its masked targets), or (None, {}) without ``val_sequences``."""
    if not val_sequences:
        return None, {}
    v_ids, v_mask = tokenize_all(tokenizer, val_sequences, settings.max_length)
    v_masked, v_positions = mask_tokens(
        v_ids, settings.mask_ratio, torch.Generator().manual_seed(seed + 1), span=span
    )
    val = (v_masked, v_mask, _mlm_labels(tokenizer, v_ids, v_positions))
    baselines = {
        "unigram_loss": unigram_loss(tokenizer, ids, v_ids, v_positions),
        "position_loss": pretext.position_loss(tokenizer, ids, v_ids, v_positions),
        "neighbour_loss": pretext.neighbour_loss(
            tokenizer,
            _masked_copies(ids, settings.mask_ratio, span, seed),
            (v_ids, v_masked, v_positions),
        ),
    }
    return val, baselines


def _fingerprint(settings: MLMTraining, seed: int, n_sequences: int, world: int, span: int) -> dict:
    """What a resume checkpoint must match: resuming a different run would mix two trainings."""
    return {
        "stage": "pretrain_mlm",
        "steps": settings.steps,
        "batch_size": settings.batch_size,
        "lr": settings.lr,
        "mask_ratio": settings.mask_ratio,
        "max_length": settings.max_length,
        "seed": seed,
        "warmup_steps": settings.warmup_steps,
        "eval_every": settings.eval_every,
        "n_sequences": n_sequences,
        "world": world,
        "span": span,
    }


class _PretrainSteps:
    """One optimiser step of :func:`pretrain_mlm` (:meth:`step`) and its history entries
    (:meth:`record`); the running state lives in the loop's ``state`` (saved on checkpoint)."""

    def __init__(self, loop: StepLoop, tokenizer, data, settings: MLMTraining, span, validation, start):
        self.loop, self.tokenizer, self.settings = loop, tokenizer, settings
        self.span, self.start = span, start
        (self.ids, self.mask), (self.val, self.baselines) = data, validation
        self.eval_time, self.tic = 0.0, time.perf_counter()

    def step(self, step: int) -> None:
        loop, s, state = self.loop, self.settings, self.loop.state
        if len(state["order"]) < s.batch_size:
            state["order"] = torch.cat(
                [state["order"], torch.randperm(len(self.ids), generator=loop.generator)]
            )
        index, state["order"] = state["order"][: s.batch_size], state["order"][s.batch_size :]
        b_ids, b_mask = trim(self.ids[index], self.mask[index])
        masked, positions = mask_tokens(b_ids, s.mask_ratio, loop.generator, span=self.span)
        labels = _mlm_labels(self.tokenizer, b_ids, positions)
        n_masked = int(positions.sum())  # the batch's loss is a mean over its masked tokens
        shard = loop.ranks.shard(len(index))
        chunks = scale.micro_batches(shard.stop - shard.start, s.micro_batch_size)
        loop.optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for k, chunk in enumerate(chunks):
            rows = slice(shard.start + chunk.start, shard.start + chunk.stop)
            m_ids, m_mask = trim(masked[rows], b_mask[rows])
            m_labels = labels[rows, : m_ids.shape[1]]
            weight = int(positions[rows].sum()) / n_masked
            with scale.no_sync(loop.train_model, last=k == len(chunks) - 1):
                with scale.autocast(loop.device, loop.precision):
                    _, loss = loop.train_model(
                        m_ids.to(loop.device), m_mask.to(loop.device), m_labels.to(loop.device)
                    )
                check_finite(loss, f"pretrain step {step} (sequence indices {index[rows].tolist()})")
                (loss * (weight * loop.ranks.world)).backward()
            step_loss += loss.item() * weight
        torch.nn.utils.clip_grad_norm_(loop.model.parameters(), s.grad_clip)
        loop.optimizer.step()
        loop.scheduler.step()
        state["losses"].append(loop.ranks.sum(step_loss))
        if step % s.eval_every == 0 or step == s.steps:
            self.record(step)

    def record(self, step: int) -> None:
        loop, state = self.loop, self.loop.state
        entry = {
            "step": step,
            "train_loss": float(np.mean(state["losses"])),
            "lr": loop.scheduler.get_last_lr()[0],
            "steps_per_s": (step - self.start) / (time.perf_counter() - self.tic - self.eval_time),
        }
        if loop.ranks.world > 1:
            entry["world_size"] = loop.ranks.world
        if self.val is not None:
            eval_tic = time.perf_counter()
            with scale.autocast(loop.device, loop.precision):
                entry.update(
                    _mlm_evaluate(loop.model, *self.val, self.settings.batch_size, loop.device),
                    **self.baselines,
                )
            self.eval_time += time.perf_counter() - eval_tic
        state["history"].append(entry)
        state["losses"] = []
