"""What lets a training loop run at paper scale: mixed precision, micro-batches with gradient
accumulation, data-parallel ranks (torch DDP under ``torchrun``), and resumable runs that
survive a scheduler's time limit (checkpoint every N steps and on SIGTERM / SIGUSR1).

The loops (``mlm.pretrain_mlm``, ``vqvae_trainer.fit_vqvae``, through ``loop.StepLoop``) use
these pieces so that with the defaults (fp32, one micro-batch per step, one process, no resume
file) they run exactly the code path they always ran: every micro-batch loss is multiplied by
its share of the batch, which is exactly 1.0 then, so existing results stay bit-identical.

Data parallelism: every rank draws the *same* batch from the same seeded generator and keeps a
contiguous shard of its rows (``DataParallel.shard``), so N ranks at micro-batch m see exactly
the micro-batches one process sees at micro-batch m, and their summed gradients equal its
accumulated gradient up to float summation order.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from vqdna.model.checkpoint import atomic_save, safe_load

PRECISIONS = ("auto", "fp32", "bf16")
#: signals that ask a run to checkpoint and stop (Slurm sends SIGUSR1 with --signal, then SIGTERM)
PREEMPT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


# --------------------------------------------------------------------------- precision


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 on a CUDA device that supports it, else fp32; fp32/bf16 as given."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return "bf16" if cuda_bf16 else "fp32"


def autocast(device: torch.device, precision: str):
    """bf16 autocast for forward passes (weights, gradients and optimiser state stay fp32 masters);
    a no-op context for fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# --------------------------------------------------------------------------- micro-batches


def micro_batches(n_rows: int, micro_batch_size: int | None) -> list[slice]:
    """Row slices of at most ``micro_batch_size`` rows covering ``n_rows`` (None: one slice)."""
    size = micro_batch_size or n_rows
    if size < 1:
        raise ValueError(f"micro_batch_size must be >= 1, got {micro_batch_size}")
    return [slice(start, min(start + size, n_rows)) for start in range(0, n_rows, size)]


# --------------------------------------------------------------------------- data parallel


class DataParallel:
    """The rank / world of this process. ``WORLD_SIZE > 1`` (set by ``torchrun``) starts the
    process group (NCCL on CUDA, gloo on CPU) on first use; one process is world 1, rank 0."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.world:
            raise ValueError(
                f"batch_size {batch_size} is not divisible by the {self.world} data-parallel ranks"
            )

    def shard(self, n_rows: int) -> slice:
        """This rank's contiguous share of a batch of ``n_rows`` (ranks in order = the batch)."""
        per_rank = n_rows // self.world
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """DDP around ``model`` when world > 1. Buffers are not broadcast: the VQ-VAE keeps its
        EMA codebooks equal on every rank by reducing their statistics (``VectorQuantizer``)."""
        if self.world == 1:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)

    def sum(self, value: float) -> float:
        """Sum of a number over ranks."""
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor)

    def any(self, flag: bool) -> bool:
        return self.sum(float(flag)) > 0

    def gather(self, obj) -> list:
        """``obj`` of every rank, in rank order."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def no_sync(model: torch.nn.Module, last: bool):
    """Skip DDP's gradient all-reduce on all but the last micro-batch of a step."""
    if last or not hasattr(model, "no_sync"):
        return contextlib.nullcontext()
    return model.no_sync()


# --------------------------------------------------------------------------- resume


class Preempted(RuntimeError):
    """Raised after a resume checkpoint was written because SIGTERM/SIGUSR1 arrived: the job
    fails (non-zero exit) so the scheduler requeues it, and the rerun resumes."""


class PreemptionFlag:
    """Context manager: while active, SIGTERM / SIGUSR1 set ``self.raised`` instead of killing
    the process (the loop checkpoints at the end of the current step). Handlers are only
    installed in the main thread and restored on exit."""

    def __init__(self, enabled: bool = True):
        self.enabled, self.raised, self._previous = enabled, None, {}

    def _handle(self, signum, frame):
        self.raised = signal.Signals(signum).name

    def __enter__(self):
        if self.enabled:
            try:
                for sig in PREEMPT_SIGNALS:
                    self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handlers
                self._previous = {}
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def rng_states(generator: torch.Generator) -> dict:
    """Every random state a loop draws from: its batch generator, torch (CPU and CUDA), numpy, python.
    Tensors and plain values only (numpy's key as a list of ints), so a resume checkpoint loads
    with ``weights_only=True``: reading one never runs code from it."""
    name, key, pos, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "generator": generator.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": [str(name), [int(k) for k in key], int(pos), int(has_gauss), float(cached_gaussian)],
        "python": random.getstate(),
    }


def restore_training(resumed: dict, model, optimizer, scheduler, generator, rank: int) -> None:
    """Put a resume checkpoint's model, optimiser, scheduler and this rank's RNG states back
    (the loop restores its own step, history and data position)."""
    model.load_state_dict(resumed["model"])
    optimizer.load_state_dict(resumed["optimizer"])
    scheduler.load_state_dict(resumed["scheduler"])
    set_rng_states(resumed["rng"][rank], generator)


def set_rng_states(states: dict, generator: torch.Generator) -> None:
    generator.set_state(states["generator"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, key, pos, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, cached_gaussian))
    random.setstate(states["python"])


def save_resume(path: str | Path, **state) -> None:
    """Write a resume checkpoint atomically (temp file + rename)."""
    atomic_save(state, path)


def load_resume(path: str | Path | None, fingerprint: dict) -> dict | None:
    """The resume checkpoint at ``path`` if one exists, checked against this run's settings
    (``fingerprint``): resuming a different run would silently mix two trainings. A finished
    run's checkpoint (step == steps, kept with ``keep_final``) is taken up by any number of
    ranks: nothing is left to train (how a ``torchrun`` launch hands its result to the notebook)."""
    if path is None or not Path(path).exists():
        return None
    state = safe_load(path, map_location="cpu", what="resume checkpoint")
    if not isinstance(state, dict) or not isinstance(state.get("fingerprint"), dict):
        raise ValueError(f"{path}: not a resume checkpoint of this project (no fingerprint)")
    if state.get("step") == fingerprint.get("steps") and "world" in fingerprint:
        fingerprint = {**fingerprint, "world": state["fingerprint"].get("world")}
    if state["fingerprint"] != fingerprint:
        changed = sorted(
            k
            for k in {**fingerprint, **state["fingerprint"]}
            if fingerprint.get(k) != state["fingerprint"].get(k)
        )
        raise ValueError(
            f"{path}: resume checkpoint of a different run (settings differ: {changed}); "
            f"delete it to start over"
        )
    return state


def scale_options(scale: dict | None) -> dict:
    """The training-at-scale settings a rule passes (config keys ``precision``,
    ``activation_checkpointing``, ``checkpoint_every``, and the job's ``resume_path``; the
    ``torchrun`` launch, :mod:`vqdna.workflow.launch`, adds ``keep_final``), with the defaults that
    reproduce the plain fp32 loop."""
    scale = scale or {}
    return {
        "precision": scale.get("precision", "fp32"),
        "activation_checkpointing": bool(scale.get("activation_checkpointing", False)),
        "resume_path": scale.get("resume_path"),
        "checkpoint_every": scale.get("checkpoint_every") or 0,
        "keep_final": bool(scale.get("keep_final", False)),
    }
