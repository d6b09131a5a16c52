"""Classification on a pre-trained encoder (paper stage 3): :func:`finetune` (full or LoRA, with
LP-FT's probe-initialised head), frozen mean-pooled embeddings (:func:`embed_sequences`) and the
linear probe every frozen-encoder evaluation uses (:func:`fit_logistic`, :func:`linear_probe`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm  # plain text: tqdm.auto warns in notebooks without ipywidgets

from vqdna.core.metrics import classification_metrics, confusion, test_outcomes
from vqdna.core.seed import seed_everything
from vqdna.model.encoder import apply_lora, mean_pool
from vqdna.train.batches import as_xy, tokenize_all, trim
from vqdna.train.optim import EarlyStopping, check_finite, make_optimizer, pick_device

SELECT_METRICS = ("mcc", "macro_f1", "accuracy", "loss")


@dataclass(frozen=True)
class FinetuneTraining:
    """What :func:`finetune` trains. ``lora_rank``: None = full fine-tuning; an int =
    ``apply_lora`` first (in place: encoder frozen, adapters + head train). Dev is evaluated
    every ``eval_every`` steps (None = once per epoch); the trainable weights at the best dev
    ``select_metric`` ("mcc", "macro_f1", "accuracy" or "loss") are kept; ``patience``
    evaluations without improvement stop training early (None = never). ``head_init="probe"``:
    LP-FT, the linear head starts as the linear probe (:func:`init_head_from_probe`)."""

    epochs: int = 3
    lr: float = 1e-4
    batch_size: int = 32
    max_length: int = 128
    lora_rank: int | None = None
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    patience: int | None = None
    eval_every: int | None = None
    select_metric: str = "mcc"
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    head_init: str = "random"

    def __post_init__(self):
        if self.select_metric not in SELECT_METRICS:
            raise ValueError(
                f"select_metric must be mcc, macro_f1, accuracy or loss, got {self.select_metric!r}"
            )
        if self.head_init not in ("random", "probe"):
            raise ValueError(f"head_init must be 'random' or 'probe', got {self.head_init!r}")


def finetune(
    model,
    tokenizer,
    train,
    dev,
    test,
    settings: FinetuneTraining,
    seed: int = 0,
    device: str | None = None,
    progress: bool = True,
) -> dict:
    """Fine-tune a ``SequenceClassifier`` (paper stage 3) and report test metrics at the best dev
    checkpoint.

    ``train``/``dev``/``test``: (sequences, labels) pairs or DataFrames with ``sequence,label``.
    The trainable weights at the best dev metric (:class:`FinetuneTraining`) are kept in memory
    and restored before testing. With ``head_init="probe"`` the probe itself (step 0) is a
    checkpoint candidate, so selection can never keep worse than it on dev. ``train_time_s`` is
    the loop's wall time, dev evaluations included.
    """
    generator = seed_everything(seed)
    device = pick_device(device)
    (x_train, y_train), dev, (x_test, y_test) = as_xy(train), as_xy(dev), as_xy(test)
    if settings.head_init == "probe":
        init_head_from_probe(model, tokenizer, x_train, y_train, settings.max_length, seed, device=device)
    if settings.lora_rank:
        apply_lora(model, settings.lora_rank, settings.lora_alpha, settings.lora_dropout)
    model.to(device).train()
    run = _Finetuning(model, tokenizer, (x_train, y_train), dev, x_test, settings, device)
    run.train(generator, progress)
    with torch.no_grad():
        for name, p in run.trainable:
            p.copy_(run.best["weights"][name])
    test_metrics, predictions = _evaluate(model, *run.test, y_test, settings.batch_size, device)
    return {
        "test": test_metrics,
        "dev": run.best["dev"],
        "best_step": run.best["step"],
        "best_epoch": run.best["epoch"],
        "steps": run.step,
        "stopped_early": run.stop,
        "history": run.history,
        "confusion_matrix": confusion(y_test, predictions, model.num_classes),
        **test_outcomes(y_test, predictions),
        "n_predictions": len(predictions),
        "train_time_s": run.train_time,
        "trainable_params": sum(p.numel() for _, p in run.trainable),
        "total_params": sum(p.numel() for p in model.parameters()),
        "lora_rank": settings.lora_rank,
    }


class _Finetuning:
    """The training phase of :func:`finetune`: optimiser, dev evaluations with checkpoint
    selection (:meth:`evaluate_dev`) and the epochs (:meth:`train`)."""

    def __init__(self, model, tokenizer, train, dev, x_test, settings: FinetuneTraining, device):
        self.model, self.settings, self.device = model, settings, device
        s = settings
        self.ids, self.mask = tokenize_all(tokenizer, train[0], s.max_length)
        self.dev_ids, self.dev_mask = tokenize_all(tokenizer, dev[0], s.max_length)
        self.test = tokenize_all(tokenizer, x_test, s.max_length)
        self.y_dev = dev[1]
        self.labels = torch.tensor(train[1])
        self.steps_per_epoch = math.ceil(len(self.ids) / s.batch_size)
        self.total_steps = s.epochs * self.steps_per_epoch
        self.eval_every = s.eval_every or self.steps_per_epoch
        self.optimizer, self.scheduler = make_optimizer(
            model, s.lr, self.total_steps, s.warmup_steps, s.weight_decay
        )
        self.trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.stopper = EarlyStopping(
            s.patience if s.patience is not None else math.inf,
            mode="min" if s.select_metric == "loss" else "max",
        )
        self.best, self.history, self.losses, self.step, self.stop = None, [], [], 0, False

    def evaluate_dev(self, step: int, epoch: int, **train) -> bool:
        """Dev metrics into the history, the trainable weights kept when they improve;
        -> whether patience has run out."""
        metric = self.settings.select_metric
        dev_metrics, _ = _evaluate(
            self.model, self.dev_ids, self.dev_mask, self.y_dev, self.settings.batch_size, self.device
        )
        self.history.append(
            {"step": step, "epoch": epoch, **train, **{f"dev_{k}": v for k, v in dev_metrics.items()}}
        )
        if self.stopper.improved(dev_metrics[metric]):
            self.best = {
                "step": step,
                "epoch": epoch,
                "dev": dev_metrics,
                "weights": {name: p.detach().clone() for name, p in self.trainable},
            }
        return self.stopper.step(dev_metrics[metric])

    def train(self, generator: torch.Generator, progress: bool) -> None:
        tic = time.perf_counter()
        if self.settings.head_init == "probe":  # the probe itself is the first checkpoint candidate
            self.evaluate_dev(0, 0)
        bar = tqdm(total=self.total_steps, desc="finetune", disable=not progress)
        for epoch in range(1, self.settings.epochs + 1):
            for index in torch.randperm(len(self.ids), generator=generator).split(self.settings.batch_size):
                self.train_step(index, epoch)
                bar.update()
                if self.step % self.eval_every == 0 or self.step == self.total_steps:
                    self.stop = self.evaluate_dev(
                        self.step,
                        epoch,
                        train_loss=float(np.mean(self.losses)),
                        lr=self.scheduler.get_last_lr()[0],
                    )
                    self.losses = []
                    if self.stop:
                        break
            if self.stop:
                break
        bar.close()
        self.train_time = time.perf_counter() - tic

    def train_step(self, index: torch.Tensor, epoch: int) -> None:
        self.step += 1
        device = self.device
        b_ids, b_mask = trim(self.ids[index], self.mask[index])
        logits = self.model(b_ids.to(device), b_mask.to(device))
        loss = F.cross_entropy(logits, self.labels[index].to(device))
        check_finite(loss, f"finetune epoch {epoch} step {self.step} (sequence indices {index.tolist()})")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in self.trainable], self.settings.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.losses.append(loss.item())


@torch.no_grad()
def _predict(model, ids, mask, batch_size: int, device) -> torch.Tensor:
    """Classifier logits for pre-tokenised inputs, in eval mode, on the CPU."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(ids), batch_size):
        b_ids, b_mask = trim(ids[start : start + batch_size], mask[start : start + batch_size])
        out.append(model(b_ids.to(device), b_mask.to(device)).float().cpu())
    model.train(was_training)
    return torch.cat(out)


def _evaluate(model, ids, mask, labels: np.ndarray, batch_size: int, device) -> tuple[dict, np.ndarray]:
    """-> ({loss, mcc, macro_f1, accuracy}, predictions)."""
    logits = _predict(model, ids, mask, batch_size, device)
    loss = float(F.cross_entropy(logits, torch.tensor(labels)))
    predictions = logits.argmax(-1).numpy()
    return {"loss": loss, **classification_metrics(labels, predictions)}, predictions


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
    ids, mask = tokenize_all(tokenizer, sequences, max_length)
    out = []
    for start in range(0, len(ids), batch_size):
        b_ids, b_mask = trim(ids[start : start + batch_size], mask[start : start + batch_size])
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
    (x_train, y_train), (x_test, y_test) = as_xy(train), as_xy(test)
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
