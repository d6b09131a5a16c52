"""What every training loop shares: the device, AdamW with linear warm-up + cosine decay,
finite-loss checks and early stopping."""

from __future__ import annotations

import math

import torch


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
