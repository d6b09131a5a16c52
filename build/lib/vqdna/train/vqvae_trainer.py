"""Training of the stage-1 tokenizer network: :func:`fit_vqvae` trains a
:class:`vqdna.model.vqvae.VQVAE` (VQ or HRQ) in place. The step loop (resume, preemption,
checkpoints) is :class:`vqdna.train.loop.StepLoop`, shared with the masked-LM trainer."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from vqdna.core.sequence import N_INDEX
from vqdna.model.vqvae import VQVAE, heldout_percentages, windows_by_length
from vqdna.train import scale
from vqdna.train.loop import RunConfig, StepLoop
from vqdna.train.optim import check_finite, make_optimizer


@dataclass(frozen=True)
class VQTraining:
    """What :func:`fit_vqvae` trains: steps, batch, AdamW with warm-up + cosine, a history record
    every ``eval_every`` steps scored with batches of ``eval_batch_size`` held-out windows;
    ``micro_batch_size``: rows per forward pass (gradients accumulated; None: one pass)."""

    steps: int
    batch_size: int
    lr: float
    warmup_steps: int = 0
    eval_every: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    eval_batch_size: int = 256
    micro_batch_size: int | None = None

    @classmethod
    def from_spec(cls, spec: dict) -> "VQTraining":
        """The training keys of a vq/hrq tokenizer entry, a record every tenth of the steps."""
        return cls(
            steps=spec["steps"],
            batch_size=spec["batch_size"],
            lr=spec["lr"],
            warmup_steps=spec.get("warmup_steps", 0),
            eval_every=max(1, spec["steps"] // 10),
            micro_batch_size=spec.get("micro_batch_size"),
        )


def fit_vqvae(
    model: VQVAE,
    train_windows: list[str],
    val_windows: list[str],
    settings: VQTraining,
    seed: int,
    run: RunConfig = RunConfig(),
) -> list[dict]:
    """Train ``model`` in place on normalised windows (AdamW, warm-up + cosine, gradient clipping).

    One seeded ``torch.Generator`` (from ``seed_everything(seed)``) draws every batch and every
    random choice of the quantizers, so one seed gives bitwise identical histories on CPU (seed
    the model's construction too). Windows of mixed length are grouped by length (see
    :func:`~vqdna.model.vqvae.windows_by_length`). Every ``eval_every`` steps and at the end a
    record is appended: ``step, lr, loss, recon_loss, commit_loss`` (means over the steps since
    the last record) and ``val_recon_accuracy, val_code_usage, val_perplexity`` (from
    :func:`~vqdna.model.vqvae.heldout_percentages`, in %). The model is left in eval mode.

    Scale, as in :func:`vqdna.train.mlm.pretrain_mlm`: micro-batches with gradient accumulation
    (the reconstruction loss weighted by each micro-batch's share of scored bases, the quantizer
    loss by its share of rows; the EMA codebook update is deferred to the end of the step, see
    ``VectorQuantizer``), precision, DDP ranks under ``torchrun`` (every record then carries
    ``world_size``) and resume checkpoints (``run``: :class:`~vqdna.train.loop.RunConfig`).
    """
    loop = StepLoop("fit_vqvae", seed, settings.batch_size, run)
    model.to(loop.device)
    groups = windows_by_length(train_windows)
    optimizer, scheduler = make_optimizer(
        model, settings.lr, settings.steps, settings.warmup_steps, weight_decay=settings.weight_decay
    )
    state = {"history": [], "sums": {"loss": 0.0, "recon_loss": 0.0, "commit_loss": 0.0}, "n_summed": 0}
    n_chunks = len(scale.micro_batches(settings.batch_size // loop.ranks.world, settings.micro_batch_size))
    for quantizer in model.quantizers:  # one forward per step: update at once, as always
        quantizer.defer_updates = n_chunks * loop.ranks.world > 1
    fingerprint = {
        "stage": "fit_vqvae",
        "steps": settings.steps,
        "batch_size": settings.batch_size,
        "lr": settings.lr,
        "seed": seed,
        "warmup_steps": settings.warmup_steps,
        "eval_every": settings.eval_every,
        "n_windows": len(train_windows),
        "world": loop.ranks.world,
        "config": asdict(model.config),
    }
    start = loop.resume(model, optimizer, scheduler, fingerprint, state)
    steps = _VQSteps(loop, model, groups, val_windows, settings)
    loop.run(start, settings.steps, steps.step, desc="fit_vqvae")
    for quantizer in model.quantizers:
        quantizer.defer_updates = False
    loop.finish(settings.steps)
    model.eval()
    return state["history"]


def _sample_batch(
    groups: dict[int, torch.Tensor], batch_size: int, generator: torch.Generator
) -> torch.Tensor:
    """A length group chosen with probability proportional to its size, then ``batch_size`` rows
    of it drawn uniformly with replacement."""
    tensors = list(groups.values())
    if len(tensors) > 1:
        sizes = torch.tensor([len(t) for t in tensors], dtype=torch.float)
        tensors = [tensors[int(torch.multinomial(sizes, 1, generator=generator))]]
    rows = torch.randint(len(tensors[0]), (batch_size,), generator=generator)
    return tensors[0][rows]


class _VQSteps:
    """One optimiser step of :func:`fit_vqvae` (:meth:`step`) and its history records
    (:meth:`record`); the running sums live in the loop's ``state`` (saved on checkpoint)."""

    def __init__(self, loop: StepLoop, model: VQVAE, groups, val_windows, settings: VQTraining):
        self.loop, self.model, self.groups, self.val_windows = loop, model, groups, val_windows
        self.settings = settings

    def step(self, step: int) -> None:
        loop, model, s, state = self.loop, self.model, self.settings, self.loop.state
        ranks = loop.ranks
        model.train()
        batch = _sample_batch(self.groups, s.batch_size, loop.generator)
        n_scored = int((batch != N_INDEX).sum().clamp(min=1))
        shard = ranks.shard(s.batch_size)
        chunks = scale.micro_batches(s.batch_size // ranks.world, s.micro_batch_size)
        loop.optimizer.zero_grad(set_to_none=True)
        step_sums = dict.fromkeys(state["sums"], 0.0)
        for k, chunk in enumerate(chunks):
            rows = batch[shard][chunk]
            accumulating = len(chunks) * ranks.world > 1
            w_recon = int((rows != N_INDEX).sum().clamp(min=1)) / n_scored if accumulating else 1.0
            w_rows = len(rows) / s.batch_size
            with scale.no_sync(loop.train_model, last=k == len(chunks) - 1):
                with scale.autocast(loop.device, loop.precision):
                    out = loop.train_model(rows.to(loop.device), generator=loop.generator)
                check_finite(out.loss, f"fit_vqvae step {step}")
                loss = out.recon_loss * w_recon + out.quant_loss * w_rows
                (loss * ranks.world if ranks.world > 1 else loss).backward()
            step_sums["loss"] += loss.item()
            step_sums["recon_loss"] += out.recon_loss.item() * w_recon
            step_sums["commit_loss"] += out.commit_loss.item() * w_rows
        for quantizer in model.quantizers:
            quantizer.apply_updates(loop.generator)
        torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        loop.optimizer.step()
        loop.scheduler.step()
        for key in state["sums"]:
            state["sums"][key] += ranks.sum(step_sums[key])
        state["n_summed"] += 1
        if step % s.eval_every == 0 or step == s.steps:
            self.record(step)

    def record(self, step: int) -> None:
        loop, state = self.loop, self.loop.state
        with scale.autocast(loop.device, loop.precision):
            stats = heldout_percentages(self.model, self.val_windows, self.settings.eval_batch_size)
        state["history"].append(
            {
                "step": step,
                "lr": loop.scheduler.get_last_lr()[0],
                **{key: value / state["n_summed"] for key, value in state["sums"].items()},
                "val_recon_accuracy": stats["recon_accuracy"],
                "val_code_usage": stats["code_usage"],
                "val_perplexity": stats["perplexity"],
                **({"world_size": loop.ranks.world} if loop.ranks.world > 1 else {}),
            }
        )
        state["sums"], state["n_summed"] = dict.fromkeys(state["sums"], 0.0), 0
        loop.bar.set_postfix(
            loss=f"{state['history'][-1]['loss']:.3f}",
            acc=f"{stats['recon_accuracy']:.1f}",
            usage="/".join(f"{u:.0f}" for u in stats["code_usage"]),
        )
