"""The one resumable step loop that the VQ-VAE trainer (:mod:`vqdna.train.vqvae`) and the
masked-LM trainer (:mod:`vqdna.train.mlm`) share: seeding, device and data-parallel ranks,
precision, resume from a checkpoint, preemption (SIGTERM / SIGUSR1 -> checkpoint, then
:class:`~vqdna.train.scale.Preempted`), periodic checkpoints and the final one.

A trainer builds a :class:`StepLoop` (which seeds first: nothing random happens before), sets up
its model, optimiser and data, calls :meth:`StepLoop.resume` with the state it carries between
steps (history and running sums: what a resume checkpoint stores beside the weights), then
:meth:`StepLoop.run` with a function doing one optimiser step, then :meth:`StepLoop.finish`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm  # plain text: tqdm.auto warns in notebooks without ipywidgets

from vqdna.core.seed import seed_everything
from vqdna.train import scale
from vqdna.train.optim import pick_device


@dataclass(frozen=True)
class RunConfig:
    """How a training run runs, not what it learns: ``device`` (None/"auto": CUDA if available),
    ``progress`` bar, ``precision`` auto|fp32|bf16, and resume checkpoints: written to
    ``resume_path`` every ``checkpoint_every`` steps (0: never) and on SIGTERM/SIGUSR1, deleted on
    success unless ``keep_final`` (then the finished state is kept there, and a later run resumes
    at the last step). ``on_step(step)``: called after every optimiser step (tests interrupt with it)."""

    device: str | None = None
    progress: bool = True
    precision: str = "fp32"
    resume_path: str | Path | None = None
    checkpoint_every: int = 0
    keep_final: bool = False
    on_step: Callable[[int], None] | None = None

    @classmethod
    def from_scale(cls, scale_settings: dict | None, **fields) -> tuple["RunConfig", bool]:
        """(the run of a rule's ``scale`` settings (:func:`vqdna.train.scale.scale_options`) plus
        ``fields``, whether to checkpoint activations)."""
        options = scale.scale_options(scale_settings)
        checkpointing = options.pop("activation_checkpointing")
        return cls(**options, **fields), checkpointing


class StepLoop:
    """One training run's scaffolding around its step function (see the module docstring)."""

    def __init__(self, name: str, seed: int, batch_size: int, run: RunConfig):
        self.name, self.run_config = name, run
        self.generator = seed_everything(seed)
        device = pick_device(run.device)
        self.ranks = scale.DataParallel(device)
        self.ranks.check_batch(batch_size)
        if self.ranks.world > 1 and device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.device = device
        self.precision = scale.resolve_precision(run.precision, device)

    def resume(self, model, optimizer, scheduler, fingerprint: dict, state: dict) -> int:
        """Take up the resume checkpoint of this run if there is one (model, optimiser, scheduler,
        RNG states, and ``state``'s entries, updated in place); wrap the model for the ranks
        (:attr:`train_model`). -> the step to start after (0: a fresh run)."""
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.fingerprint, self.state = fingerprint, state
        start = 0
        resumed = scale.load_resume(self.run_config.resume_path, fingerprint)
        if resumed is not None:
            scale.restore_training(resumed, model, optimizer, scheduler, self.generator, self.ranks.rank)
            start = resumed["step"]
            state.update({key: resumed[key] for key in state})
        self.train_model = self.ranks.wrap(model, self.device)
        return start

    def checkpoint(self, step: int) -> None:
        """Write the resume checkpoint after ``step`` (rank 0 writes every rank's RNG states)."""
        rng = self.ranks.gather(scale.rng_states(self.generator))
        if self.ranks.is_main:
            scale.save_resume(
                self.run_config.resume_path,
                fingerprint=self.fingerprint,
                step=step,
                model=self.model.state_dict(),
                optimizer=self.optimizer.state_dict(),
                scheduler=self.scheduler.state_dict(),
                rng=rng,
                **self.state,
            )

    def run(self, start: int, steps: int, step: Callable[[int], None], desc: str) -> None:
        """``step(n)`` for n in start+1..steps (:attr:`bar` is the progress bar), each followed by
        ``on_step``, the preemption check and the periodic checkpoint."""
        run = self.run_config
        self.bar = tqdm(
            range(start + 1, steps + 1), desc=desc, disable=not run.progress, initial=start, total=steps
        )
        with scale.PreemptionFlag(enabled=run.resume_path is not None) as preemption:
            for n in self.bar:
                step(n)
                if run.on_step is not None:
                    run.on_step(n)
                if run.resume_path is not None and n < steps:
                    if self.ranks.any(preemption.raised is not None):
                        self.checkpoint(n)
                        raise scale.Preempted(
                            f"{self.name} stopped by {preemption.raised or 'a peer rank'} "
                            f"after step {n}; resume checkpoint {run.resume_path}"
                        )
                    if run.checkpoint_every and n % run.checkpoint_every == 0:
                        self.checkpoint(n)

    def finish(self, steps: int) -> None:
        """Keep the finished state (``keep_final``) or delete the resume checkpoint."""
        run = self.run_config
        if run.resume_path is not None and run.keep_final:
            self.checkpoint(steps)
        elif run.resume_path is not None and self.ranks.is_main:
            Path(run.resume_path).unlink(missing_ok=True)
