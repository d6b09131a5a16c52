"""Training utilities shared by every stage (seeding, device, AdamW with warm-up + cosine decay,
finite-loss checks, early stopping, checkpoints) and the loops: masked-modeling pre-training,
fine-tuning (full or LoRA), frozen embeddings and a linear probe.

Why one file of ~500 lines: the three loops share the seeding, optimizer, early-stopping and
checkpoint helpers above them, and reading them side by side is how one checks that every stage
seeds, schedules and checkpoints the same way (as nanoGPT keeps its loop in one train.py)."""

from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm  # plain text: tqdm.auto warns in notebooks without ipywidgets

from vqdna.core.metrics import classification_metrics, confusion, test_outcomes
from vqdna.model.encoder import apply_lora, mean_pool
from vqdna.tokenizers import N_SPECIAL
from vqdna.train import pretext, scale


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch.Generator for explicit sampling.

    Also asks torch for deterministic kernels so that one seed gives the same metrics on CPU.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.Generator().manual_seed(seed)


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given (``"auto"`` = not given), else CUDA when available, else CPU."""
    if device and device != "auto":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_optimizer(
    model: torch.nn.Module,
    lr: float,
    total_steps: int,
    warmup_steps: int = 0,
    weight_decay: float = 0.01,
    min_lr_ratio: float = 0.0,
):
    """AdamW over trainable parameters with linear warm-up then cosine decay to ``min_lr_ratio*lr``.

    Biases and norm weights (1-D parameters) get no weight decay. Returns (optimizer, scheduler);
    call ``scheduler.step()`` once per optimizer step.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
    )
    total_steps = max(1, total_steps)

    def schedule(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def check_finite(loss: torch.Tensor, where: str) -> None:
    """Stop training with an error that says where, instead of silently training on NaN/inf."""
    if not torch.isfinite(loss).all():
        raise FloatingPointError(f"non-finite loss {loss.detach().cpu().tolist()} at {where}")


class EarlyStopping:
    """Track the best value of a dev metric; ``step(value)`` returns True when patience ran out."""

    def __init__(self, patience: int = 3, mode: str = "max", min_delta: float = 0.0):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.patience, self.mode, self.min_delta = patience, mode, min_delta
        self.best: float | None = None
        self.bad_rounds = 0

    def improved(self, value: float) -> bool:
        if self.best is None:
            return True
        delta = value - self.best if self.mode == "max" else self.best - value
        return delta > self.min_delta

    def step(self, value: float) -> bool:
        if self.improved(value):
            self.best, self.bad_rounds = value, 0
        else:
            self.bad_rounds += 1
        return self.bad_rounds > self.patience


def save_checkpoint(path: str | Path, model: torch.nn.Module, **extra) -> None:
    """Write ``model.state_dict()`` plus JSON-able ``extra`` atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"state_dict": model.state_dict(), **extra}, tmp)
    tmp.replace(path)


def safe_load(path: str | Path, map_location="cpu", what: str = "checkpoint"):
    """``torch.load(path, weights_only=True)``: tensors and plain Python values only, so loading
    a file never runs code from it. A file that needs more (an old-format or foreign checkpoint
    holding pickled objects) is refused with a ``ValueError`` naming it; nothing of it ran."""
    import pickle

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        detail = str(error).strip().splitlines()
        reason = next((line for line in detail if "GLOBAL" in line or "Unsupported" in line), detail[0])
        raise ValueError(
            f"{path}: refused to load this {what}: it holds pickled Python objects beyond tensors "
            f"and plain values ({reason.strip()[:200]}). Loading it would run code from the file; "
            f"nothing was run. A checkpoint written by an older version or by someone else: "
            f"re-create it with this version"
        ) from None


def load_checkpoint(path: str | Path, model: torch.nn.Module | None = None, map_location="cpu") -> dict:
    """Load a checkpoint (tensors and plain values only, :func:`safe_load`); if ``model`` is
    given its weights are restored in place."""
    payload = safe_load(path, map_location=map_location)
    if not isinstance(payload, dict) or not isinstance(payload.get("state_dict"), dict):
        raise ValueError(f"{path}: not a checkpoint of this project (no state_dict)")
    if model is not None:
        model.load_state_dict(payload["state_dict"])
    return payload


# ----------------------------------------------------------------------------------------------
# Loops: masked-modeling pre-training, fine-tuning (full or LoRA), frozen embeddings + linear probe


def _tokenize(tokenizer, sequences, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenise once, up front: (input_ids int32, attention_mask bool) on the CPU, compact so that
    a large corpus fits in memory; ``_trim`` makes each batch long again."""
    batch = tokenizer.encode_batch(list(sequences), max_length=max_length, truncation=True)
    ids = torch.as_tensor(batch["input_ids"])
    ids = ids.int() if tokenizer.vocab_size <= torch.iinfo(torch.int32).max else ids.long()  # 4-level HRQ
    return ids, torch.as_tensor(batch["attention_mask"]).bool()


def _trim(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the all-padding columns of a (right-padded) batch, since short batches run faster;
    -> LongTensors."""
    length = int(mask.sum(1).max())
    return ids[:, :length].long(), mask[:, :length].long()


def _as_xy(split) -> tuple[list[str], np.ndarray]:
    """(sequences, labels) pair or a DataFrame with ``sequence,label`` -> (list[str], int array)."""
    if hasattr(split, "columns"):
        return split["sequence"].tolist(), split["label"].to_numpy(dtype=np.int64)
    sequences, labels = split
    return list(sequences), np.asarray(labels, dtype=np.int64)


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
        b_ids, b_mask = _trim(ids[start : start + batch_size], mask[start : start + batch_size])
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
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 5e-4,
    mask_ratio: float = 0.25,
    max_length: int = 128,
    seed: int = 0,
    warmup_steps: int = 30,
    val_sequences: list[str] | None = None,
    eval_every: int = 50,
    weight_decay: float = 0.01,
    grad_clip: float = 1.0,
    device: str | None = None,
    progress: bool = True,
    masking: str = "tokenizer",
    micro_batch_size: int | None = None,
    precision: str = "fp32",
    resume_path: str | Path | None = None,
    checkpoint_every: int = 0,
    keep_final: bool = False,
    on_step=None,
) -> list[dict]:
    """Masked-modeling pre-training of a ``MaskedLM`` (paper stage 2: 25% masking, AdamW, cosine).

    Sequences are tokenised once; batches are drawn epoch-wise without replacement from a seeded
    generator. The validation set is masked once (fixed) so its numbers are comparable across
    evaluations. A codebook embedding stays frozen (its code vectors are buffers). ``masking``:
    "tokenizer" masks spans of the tokenizer's ``mlm_span`` (overlapping k-mers: DNABERT's
    span masking), "token" masks tokens independently. Returns the history: one dict per
    ``eval_every`` steps (and the last step) with step, train_loss (mean since the previous
    entry), lr, steps_per_s (training only) and, given ``val_sequences``, val_loss /
    val_accuracy, unigram_loss (the frequency-only baseline on the same masked targets) and the
    position-aware and neighbour baselines of :mod:`vqdna.train.pretext`.

    Scale (``vqdna.train.scale``): ``micro_batch_size`` rows per forward pass, gradients accumulated to
    the full ``batch_size`` (each micro-batch's loss weighted by its share of the batch's masked
    tokens, so the step's gradient is the full batch's); ``precision`` auto|fp32|bf16 (bf16
    autocast, fp32 master weights); under ``torchrun`` (WORLD_SIZE > 1) each rank trains on its
    shard of every batch (DDP). ``resume_path``: a resume checkpoint is written there every
    ``checkpoint_every`` steps (0: never) and when SIGTERM/SIGUSR1 arrives (then
    :class:`~vqdna.train.scale.Preempted` is raised), and a later call with the same path resumes from
    it, giving the same weights and history as an uninterrupted run; it is deleted on success,
    unless ``keep_final``: then the finished state is written there and kept, and a later call
    (in any number of processes) resumes at the last step. With world > 1 every history entry
    carries ``world_size``. ``on_step(step)``: called after every optimiser step (tests use it to interrupt).
    """
    generator = seed_everything(seed)
    device = pick_device(device)
    ranks = scale.DataParallel(device)
    ranks.check_batch(batch_size)
    if ranks.world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    precision = scale.resolve_precision(precision, device)
    model.to(device).train()
    ids, mask = _tokenize(tokenizer, sequences, max_length)
    span = getattr(tokenizer, "mlm_span", 1) if masking == "tokenizer" else 1
    val, baselines = None, {}
    if val_sequences:
        v_ids, v_mask = _tokenize(tokenizer, val_sequences, max_length)
        v_masked, v_positions = mask_tokens(
            v_ids, mask_ratio, torch.Generator().manual_seed(seed + 1), span=span
        )
        val = (v_masked, v_mask, _mlm_labels(tokenizer, v_ids, v_positions))
        baselines = {
            "unigram_loss": unigram_loss(tokenizer, ids, v_ids, v_positions),
            "position_loss": pretext.position_loss(tokenizer, ids, v_ids, v_positions),
            "neighbour_loss": pretext.neighbour_loss(
                tokenizer, _masked_copies(ids, mask_ratio, span, seed), (v_ids, v_masked, v_positions)
            ),
        }
    optimizer, scheduler = make_optimizer(model, lr, steps, warmup_steps, weight_decay)
    history, losses, order, eval_time = [], [], torch.empty(0, dtype=torch.long), 0.0
    fingerprint = {
        "stage": "pretrain_mlm",
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "mask_ratio": mask_ratio,
        "max_length": max_length,
        "seed": seed,
        "warmup_steps": warmup_steps,
        "eval_every": eval_every,
        "n_sequences": len(ids),
        "world": ranks.world,
        "span": span,
    }
    start = 0
    resumed = scale.load_resume(resume_path, fingerprint)
    if resumed is not None:
        scale.restore_training(resumed, model, optimizer, scheduler, generator, ranks.rank)
        start, history = resumed["step"], resumed["history"]
        losses, order = resumed["losses"], resumed["order"]
    train_model = ranks.wrap(model, device)

    def checkpoint(step):
        rng = ranks.gather(scale.rng_states(generator))
        if ranks.is_main:
            scale.save_resume(
                resume_path,
                fingerprint=fingerprint,
                step=step,
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                rng=rng,
                history=history,
                losses=losses,
                order=order,
            )

    tic = time.perf_counter()
    with scale.PreemptionFlag(enabled=resume_path is not None) as preemption:
        for step in tqdm(
            range(start + 1, steps + 1), desc="pretrain", disable=not progress, initial=start, total=steps
        ):
            if len(order) < batch_size:
                order = torch.cat([order, torch.randperm(len(ids), generator=generator)])
            index, order = order[:batch_size], order[batch_size:]
            b_ids, b_mask = _trim(ids[index], mask[index])
            masked, positions = mask_tokens(b_ids, mask_ratio, generator, span=span)
            labels = _mlm_labels(tokenizer, b_ids, positions)
            n_masked = int(positions.sum())  # the batch's loss is a mean over its masked tokens
            shard = ranks.shard(len(index))
            chunks = scale.micro_batches(shard.stop - shard.start, micro_batch_size)
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for k, chunk in enumerate(chunks):
                rows = slice(shard.start + chunk.start, shard.start + chunk.stop)
                m_ids, m_mask = _trim(masked[rows], b_mask[rows])
                m_labels = labels[rows, : m_ids.shape[1]]
                weight = int(positions[rows].sum()) / n_masked
                with scale.no_sync(train_model, last=k == len(chunks) - 1):
                    with scale.autocast(device, precision):
                        _, loss = train_model(m_ids.to(device), m_mask.to(device), m_labels.to(device))
                    check_finite(loss, f"pretrain step {step} (sequence indices {index[rows].tolist()})")
                    (loss * (weight * ranks.world)).backward()
                step_loss += loss.item() * weight
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            scheduler.step()
            losses.append(ranks.sum(step_loss))
            if step % eval_every == 0 or step == steps:
                entry = {
                    "step": step,
                    "train_loss": float(np.mean(losses)),
                    "lr": scheduler.get_last_lr()[0],
                    "steps_per_s": (step - start) / (time.perf_counter() - tic - eval_time),
                }
                if ranks.world > 1:
                    entry["world_size"] = ranks.world
                if val is not None:
                    eval_tic = time.perf_counter()
                    with scale.autocast(device, precision):
                        entry.update(_mlm_evaluate(model, *val, batch_size, device), **baselines)
                    eval_time += time.perf_counter() - eval_tic
                history.append(entry)
                losses = []
            if on_step is not None:
                on_step(step)
            if resume_path is not None and step < steps:
                if ranks.any(preemption.raised is not None):
                    checkpoint(step)
                    raise scale.Preempted(
                        f"pretrain_mlm stopped by {preemption.raised or 'a peer rank'} "
                        f"after step {step}; resume checkpoint {resume_path}"
                    )
                if checkpoint_every and step % checkpoint_every == 0:
                    checkpoint(step)
    if resume_path is not None and keep_final:
        checkpoint(steps)
    elif resume_path is not None and ranks.is_main:
        Path(resume_path).unlink(missing_ok=True)
    return history


@torch.no_grad()
def _predict(model, ids, mask, batch_size: int, device) -> torch.Tensor:
    """Classifier logits for pre-tokenised inputs, in eval mode, on the CPU."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(ids), batch_size):
        b_ids, b_mask = _trim(ids[start : start + batch_size], mask[start : start + batch_size])
        out.append(model(b_ids.to(device), b_mask.to(device)).float().cpu())
    model.train(was_training)
    return torch.cat(out)


def _evaluate(model, ids, mask, labels: np.ndarray, batch_size: int, device) -> tuple[dict, np.ndarray]:
    """-> ({loss, mcc, macro_f1, accuracy}, predictions)."""
    logits = _predict(model, ids, mask, batch_size, device)
    loss = float(F.cross_entropy(logits, torch.tensor(labels)))
    predictions = logits.argmax(-1).numpy()
    return {"loss": loss, **classification_metrics(labels, predictions)}, predictions


def finetune(
    model,
    tokenizer,
    train,
    dev,
    test,
    epochs: int = 3,
    lr: float = 1e-4,
    batch_size: int = 32,
    max_length: int = 128,
    seed: int = 0,
    lora_rank: int | None = None,
    lora_alpha: float = 16.0,
    lora_dropout: float = 0.05,
    patience: int | None = None,
    eval_every: int | None = None,
    select_metric: str = "mcc",
    warmup_steps: int = 50,
    weight_decay: float = 0.01,
    grad_clip: float = 1.0,
    head_init: str = "random",
    device: str | None = None,
    progress: bool = True,
) -> dict:
    """Fine-tune a ``SequenceClassifier`` (paper stage 3) and report test metrics at the best dev
    checkpoint.

    ``train``/``dev``/``test``: (sequences, labels) pairs or DataFrames with ``sequence,label``.
    ``lora_rank``: None = full fine-tuning; an int = ``apply_lora`` first (in place: encoder
    frozen, adapters + head train). Dev is evaluated every ``eval_every`` steps (None = once per
    epoch); the trainable weights at the best dev ``select_metric`` ("mcc", "macro_f1",
    "accuracy" or "loss") are kept in memory and restored before testing; ``patience`` evaluations
    without improvement stop training early (None = never). ``head_init="probe"``: LP-FT, the
    linear head starts as the linear probe (:func:`init_head_from_probe`) and the probe itself
    (step 0) is a checkpoint candidate, so selection can never keep worse than it on dev.
    ``train_time_s`` is the loop's wall time, dev evaluations included.
    """
    if select_metric not in ("mcc", "macro_f1", "accuracy", "loss"):
        raise ValueError(f"select_metric must be mcc, macro_f1, accuracy or loss, got {select_metric!r}")
    if head_init not in ("random", "probe"):
        raise ValueError(f"head_init must be 'random' or 'probe', got {head_init!r}")
    generator = seed_everything(seed)
    device = pick_device(device)
    (x_train, y_train), (x_dev, y_dev), (x_test, y_test) = _as_xy(train), _as_xy(dev), _as_xy(test)
    if head_init == "probe":
        init_head_from_probe(model, tokenizer, x_train, y_train, max_length, seed, device=device)
    if lora_rank:
        apply_lora(model, lora_rank, lora_alpha, lora_dropout)
    model.to(device).train()
    ids, mask = _tokenize(tokenizer, x_train, max_length)
    dev_ids, dev_mask = _tokenize(tokenizer, x_dev, max_length)
    test_ids, test_mask = _tokenize(tokenizer, x_test, max_length)
    labels = torch.tensor(y_train)

    steps_per_epoch = math.ceil(len(ids) / batch_size)
    total_steps = epochs * steps_per_epoch
    eval_every = eval_every or steps_per_epoch
    optimizer, scheduler = make_optimizer(model, lr, total_steps, warmup_steps, weight_decay)
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    stopper = EarlyStopping(
        patience if patience is not None else math.inf, mode="min" if select_metric == "loss" else "max"
    )
    best, history, losses, step, stop = None, [], [], 0, False

    def evaluate_dev(step: int, epoch: int, **train) -> bool:
        """Dev metrics into the history, the trainable weights kept when they improve;
        -> whether patience has run out."""
        nonlocal best
        dev_metrics, _ = _evaluate(model, dev_ids, dev_mask, y_dev, batch_size, device)
        history.append(
            {"step": step, "epoch": epoch, **train, **{f"dev_{k}": v for k, v in dev_metrics.items()}}
        )
        if stopper.improved(dev_metrics[select_metric]):
            best = {
                "step": step,
                "epoch": epoch,
                "dev": dev_metrics,
                "weights": {name: p.detach().clone() for name, p in trainable},
            }
        return stopper.step(dev_metrics[select_metric])

    tic = time.perf_counter()
    if head_init == "probe":  # the probe itself is the first checkpoint candidate
        evaluate_dev(0, 0)
    bar = tqdm(total=total_steps, desc="finetune", disable=not progress)
    for epoch in range(1, epochs + 1):
        for index in torch.randperm(len(ids), generator=generator).split(batch_size):
            step += 1
            b_ids, b_mask = _trim(ids[index], mask[index])
            logits = model(b_ids.to(device), b_mask.to(device))
            loss = F.cross_entropy(logits, labels[index].to(device))
            check_finite(loss, f"finetune epoch {epoch} step {step} (sequence indices {index.tolist()})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in trainable], grad_clip)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            bar.update()
            if step % eval_every == 0 or step == total_steps:
                stop = evaluate_dev(
                    step, epoch, train_loss=float(np.mean(losses)), lr=scheduler.get_last_lr()[0]
                )
                losses = []
                if stop:
                    break
        if stop:
            break
    bar.close()
    train_time = time.perf_counter() - tic
    with torch.no_grad():
        for name, p in trainable:
            p.copy_(best["weights"][name])
    test_metrics, predictions = _evaluate(model, test_ids, test_mask, y_test, batch_size, device)
    return {
        "test": test_metrics,
        "dev": best["dev"],
        "best_step": best["step"],
        "best_epoch": best["epoch"],
        "steps": step,
        "stopped_early": stop,
        "history": history,
        "confusion_matrix": confusion(y_test, predictions, model.num_classes),
        **test_outcomes(y_test, predictions),
        "n_predictions": len(predictions),
        "train_time_s": train_time,
        "trainable_params": sum(p.numel() for _, p in trainable),
        "total_params": sum(p.numel() for p in model.parameters()),
        "lora_rank": lora_rank,
    }


@torch.no_grad()
def embed_sequences(
    encoder,
    tokenizer,
    sequences: list[str],
    batch_size: int = 64,
    max_length: int = 512,
    device: str | None = None,
) -> np.ndarray:
    """(N, dim) float32 embeddings: encoder hidden states mean-pooled over non-pad tokens."""
    device = pick_device(device)
    was_training = encoder.training
    encoder.to(device).eval()
    ids, mask = _tokenize(tokenizer, sequences, max_length)
    out = []
    for start in range(0, len(ids), batch_size):
        b_ids, b_mask = _trim(ids[start : start + batch_size], mask[start : start + batch_size])
        b_ids, b_mask = b_ids.to(device), b_mask.to(device)
        out.append(mean_pool(encoder(b_ids, b_mask), b_mask).float().cpu())
    encoder.train(was_training)
    return torch.cat(out).numpy()


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, seed: int = 0, C: float = 1.0, max_iter: int = 2000
):
    """The probe every frozen-encoder evaluation uses: standardised features -> logistic
    regression. Returns the fitted sklearn pipeline.

    Portable across CPUs: numpy's BLAS (OpenBLAS) picks its kernel by CPU, and lbfgs fits on two
    kernels differ by about 1e-8 relative (measured, Haswell vs Prescott kernels), enough to
    change a LP-FT fine-tuning run that starts from the probe. So the fit is Newton's method
    (``newton-cholesky``, float64, ``tol`` 1e-10: it lands on the unique L2-regularised optimum,
    the two kernels then differ by about 1e-14), and its parameters (scaler mean and scale,
    coefficients, intercepts) are rounded to :data:`PROBE_BITS` significant bits, which absorbs
    what is left: predictions and the LP-FT head are the same bits on either CPU vendor."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    logistic = LogisticRegression(
        C=C, max_iter=max_iter, random_state=seed, solver="newton-cholesky", tol=1e-10
    )
    probe = make_pipeline(StandardScaler(), logistic)
    probe.fit(np.asarray(features, dtype=np.float64), labels)
    scaler = probe[0]
    for owner, name in ((scaler, "mean_"), (scaler, "scale_"), (logistic, "coef_"), (logistic, "intercept_")):
        setattr(owner, name, round_significant(getattr(owner, name), PROBE_BITS))
    return probe


#: significant bits the probe's fitted parameters keep (float32 keeps 24): see fit_logistic
PROBE_BITS = 16


def round_significant(values: np.ndarray, bits: int) -> np.ndarray:
    """``values`` rounded to ``bits`` significant bits (ties to even), as float64."""
    mantissa, exponent = np.frexp(np.asarray(values, dtype=np.float64))
    return np.ldexp(np.round(mantissa * 2.0**bits), exponent - bits)


def linear_probe(
    encoder,
    tokenizer,
    train,
    test,
    seed: int = 0,
    max_length: int = 512,
    batch_size: int = 64,
    C: float = 1.0,
    max_iter: int = 2000,
    device: str | None = None,
) -> dict:
    """Frozen-encoder evaluation: mean-pooled embeddings -> :func:`fit_logistic`.
    ``train``/``test`` as in ``finetune``. -> test metrics + confusion matrix + sizes."""
    (x_train, y_train), (x_test, y_test) = _as_xy(train), _as_xy(test)
    e_train = embed_sequences(encoder, tokenizer, x_train, batch_size, max_length, device)
    e_test = embed_sequences(encoder, tokenizer, x_test, batch_size, max_length, device)
    predictions = fit_logistic(e_train, y_train, seed, C, max_iter).predict(e_test)
    return {
        "test": classification_metrics(y_test, predictions),
        "confusion_matrix": confusion(y_test, predictions, int(max(y_train.max(), y_test.max())) + 1),
        **test_outcomes(y_test, predictions),
        "n_train": len(y_train),
        "n_test": len(y_test),
    }


@torch.no_grad()
def init_head_from_probe(
    model,
    tokenizer,
    sequences: list[str],
    labels: np.ndarray,
    max_length: int,
    seed: int = 0,
    batch_size: int = 64,
    device: str | None = None,
) -> None:
    """LP-FT (Kumar et al., ICLR 2022): fit :func:`fit_logistic` on the frozen encoder's mean-pooled
    train embeddings and load it into the classifier's linear head, scaler folded in, so
    fine-tuning starts from the linear probe instead of a random head that first distorts the
    pre-trained features."""
    if not isinstance(model.head, torch.nn.Linear) or model.pooling != "mean":
        raise ValueError("init_head_from_probe needs SequenceClassifier(head='linear', pooling='mean')")
    features = embed_sequences(model.encoder, tokenizer, sequences, batch_size, max_length, device)
    probe = fit_logistic(features, labels, seed)
    scaler, logistic = probe[0], probe[-1]
    coef = torch.as_tensor(logistic.coef_ / scaler.scale_, dtype=torch.float32)
    bias = torch.as_tensor(
        logistic.intercept_ - logistic.coef_ @ (scaler.mean_ / scaler.scale_), dtype=torch.float32
    )
    weight = torch.zeros_like(model.head.weight)
    full_bias = torch.zeros_like(model.head.bias)
    rows = torch.as_tensor(logistic.classes_, dtype=torch.long)
    if len(logistic.classes_) == 2:  # sklearn's binary model: one logit for the second class
        rows = rows[1:]
    weight[rows], full_bias[rows] = coef.to(weight.dtype), bias.to(weight.dtype)
    model.head.weight.copy_(weight)
    model.head.bias.copy_(full_bias)
