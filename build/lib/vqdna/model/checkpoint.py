"""Checkpoint I/O, the one place that writes and reads torch files: model checkpoints
(``save_checkpoint`` / ``load_checkpoint``: a state dict plus JSON-able extras) and the training
loops' resume checkpoints (``vqdna.train.scale.save_resume`` / ``load_resume`` go through
:func:`atomic_save` and :func:`safe_load`). Every write is atomic (temp file + rename); every read
is ``torch.load(weights_only=True)``, so loading a file never runs code from it."""

from __future__ import annotations

from pathlib import Path

import torch


def atomic_save(obj, path: str | Path) -> None:
    """``torch.save(obj)`` to ``path`` through a temp file + rename: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def save_checkpoint(path: str | Path, model: torch.nn.Module, **extra) -> None:
    """Write ``model.state_dict()`` plus JSON-able ``extra`` atomically (temp file + rename)."""
    atomic_save({"state_dict": model.state_dict(), **extra}, path)


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
