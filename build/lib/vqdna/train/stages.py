"""What the model-training notebooks do, as plain functions (the notebooks only add tables and
plots): stage 1 ``tokenizer_statistics`` (training itself: :func:`vqdna.train.tokenizer.train_tokenizer`);
stage 2 ``build_masked_lm`` / ``pretrain`` /
``save_encoder`` / ``load_encoder``; stage 3 ``finetune_on_task`` / ``linear_probe_on_task`` on a
prepared task, each reading the bases :func:`vqdna.train.coverage.coverage` declares. The loops
they call live in :mod:`vqdna.train.mlm` and :mod:`vqdna.train.classify`; the records the jobs
write in :mod:`vqdna.workflow.records`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vqdna.core.seed import seed_everything
from vqdna.core.settings import FinetuneConfig, PretrainConfig, ProbeConfig
from vqdna.data.corpus import spread_windows
from vqdna.data.tasks import read_task
from vqdna.model.checkpoint import load_checkpoint, save_checkpoint
from vqdna.model.encoder import EncoderConfig, MaskedLM, SequenceClassifier, TransformerEncoder
from vqdna.model.vqvae import heldout_percentages
from vqdna.tokenizers import N_SPECIAL, CodebookTokenizer, Tokenizer
from vqdna.train.classify import FinetuneTraining, embed_sequences, finetune, fit_logistic, linear_probe
from vqdna.train.coverage import coverage, sliding_windows, tokens_needed
from vqdna.train.loop import RunConfig
from vqdna.train.mlm import MLMTraining, pretrain_mlm


def usage_counts(tokenizer: Tokenizer, windows: list[str]) -> dict[str, np.ndarray]:
    """How often each regular token (or each code, per codebook level) occurs in ``windows``."""
    if isinstance(tokenizer, CodebookTokenizer):  # per level: never the product vocabulary
        return {f"level {n + 1}": c for n, c in enumerate(tokenizer.level_counts(windows))}
    return {"vocabulary": tokenizer.token_counts(windows)[N_SPECIAL:]}


def tokenizer_statistics(
    tokenizer: Tokenizer, windows: list[str], counts: dict[str, np.ndarray] | None = None
) -> dict:
    """Held-out statistics as fractions: reconstruction accuracy (1.0 for the rule-based
    tokenizers, which are invertible), usage and perplexity per level (one "level" = the whole
    vocabulary for char/k-mer/BPE), bp per token. ``counts``: :func:`usage_counts` of
    ``windows`` if the caller already has them (encoding VQ/HRQ is the costly part)."""
    counts = usage_counts(tokenizer, windows) if counts is None else counts
    probabilities = [c / max(1, c.sum()) for c in counts.values()]
    stats = {
        "recon_accuracy": 1.0,
        "code_usage": [float((c > 0).mean()) for c in counts.values()],
        "perplexity": [float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum())) for p in probabilities],
        "bp_per_token": sum(map(len, windows)) / int(next(iter(counts.values())).sum()),
        "vocab_size": tokenizer.vocab_size,
        "n_windows": len(windows),
    }
    if isinstance(tokenizer, CodebookTokenizer):
        stats["recon_accuracy"] = heldout_percentages(tokenizer.model, windows)["recon_accuracy"] / 100.0
    return stats


def task_statistics(tokenizer: Tokenizer, task_dirs: dict[str, str]) -> dict[str, dict]:
    """A codebook tokenizer measured on each task's test sequences (prepared task folders, as
    ``{"suite/task": folder}``): reconstruction accuracy, code usage and perplexity per level as
    fractions, as :func:`tokenizer_statistics` gives them on held-out corpus windows. Whole
    sequences, so a task whose sequences differ from the corpus windows can show a loss that
    the corpus hides. Empty for the rule-based tokenizers and BPE (invertible)."""
    if not isinstance(tokenizer, CodebookTokenizer):
        return {}
    out = {}
    for task, folder in task_dirs.items():
        sequences = list(read_task(folder)[0]["test"]["sequence"])
        measured = heldout_percentages(tokenizer.model, sequences)
        out[task] = {
            "recon_accuracy": measured["recon_accuracy"] / 100.0,
            "code_usage": [u / 100.0 for u in measured["code_usage"]],
            "perplexity": list(measured["perplexity"]),
            "n_sequences": len(sequences),
        }
    return out


def build_masked_lm(tokenizer: Tokenizer, encoder: dict, seed: int = 0) -> MaskedLM:
    """A fresh encoder (frozen codebook embedding for VQ/HRQ) with one head per MLM target,
    initialised from ``seed``: the initial weights are part of the run, so they are seeded too."""
    seed_everything(seed)
    return MaskedLM(
        TransformerEncoder.from_tokenizer(tokenizer, EncoderConfig(**encoder)), tokenizer.mlm_target_sizes
    )


def pretrain(
    model: MaskedLM,
    tokenizer: Tokenizer,
    train_windows: list[str],
    val_windows: list[str],
    settings: PretrainConfig | dict,
    seed: int = 0,
    device: str | None = "auto",
    progress: bool = False,
    scale: dict | None = None,
) -> list[dict]:
    """Masked-modeling pre-training with the config's ``pretrain`` section (``scale``: see
    :func:`vqdna.train.scale.scale_options`). No tokenizer makes more tokens than bases, so
    ``max_tokens`` >= the longest window + 2 ([CLS]/[SEP]) cuts no window; a smaller cap is an
    error rather than a silent cut."""
    settings = PretrainConfig.from_dict(settings)
    longest = max(map(len, train_windows + val_windows))
    if settings.max_tokens < longest + 2:
        cap = settings.max_tokens
        raise ValueError(
            f"pretrain.max_tokens {cap} would cut the {longest} bp corpus windows: set it to "
            f"at least {longest + 2} (or corpus.window to at most {cap - 2})"
        )
    run, checkpointing = RunConfig.from_scale(scale, device=device, progress=progress)
    model.encoder.activation_checkpointing = checkpointing
    return pretrain_mlm(
        model,
        tokenizer,
        train_windows,
        MLMTraining.from_settings(settings),
        val_sequences=spread_windows(val_windows),
        seed=seed,
        run=run,
    )


def save_encoder(path, model: MaskedLM, encoder: dict, tokenizer_path, deviations: list[str] = ()) -> None:
    """Encoder weights + its config + which tokenizer it reads (the MLM heads are dropped) + the
    pre-training's deviations (:func:`corpus_deviations`), which every record of the encoder carries."""
    save_checkpoint(
        path,
        model.encoder,
        encoder_config=dict(encoder),
        tokenizer_path=str(tokenizer_path),
        pretrain_deviations=list(deviations),
    )


def pretrain_deviations(path) -> list[str]:
    """The deviations :func:`save_encoder` stored with an encoder."""
    return list(load_checkpoint(path).get("pretrain_deviations", []))


def load_encoder(path, tokenizer: Tokenizer) -> TransformerEncoder:
    payload = load_checkpoint(path)
    encoder = TransformerEncoder.from_tokenizer(tokenizer, EncoderConfig(**payload["encoder_config"]))
    encoder.load_state_dict(payload["state_dict"])
    return encoder


def _xy(frame) -> tuple[list[str], np.ndarray]:
    return frame["sequence"].tolist(), frame["label"].to_numpy()


#: finetune.select_by -> the dev quantity classify.finetune selects on (None: the task's metric)
SELECT_BY = {"dev_loss": "loss", "dev_metric": None}


def finetune_on_task(
    model_path,
    tokenizer: Tokenizer,
    task: tuple[dict, dict],
    settings: FinetuneConfig | dict,
    seed: int = 0,
    device: str | None = "auto",
    progress: bool = False,
) -> dict:
    """Fine-tune the pre-trained encoder + MLP head on one task (config ``finetune`` section).

    ``settings.protocol == "benchmark"`` takes epochs, lr, batch size and warm-up from the
    task's official protocol (benchmarks/*.yaml); the official caps count BPE tokens and would
    cut the other tokenizers short, so the input is set in bp instead (:func:`coverage`:
    ``max_bp``, ``window``; fine-tuning always reads one fixed window) and each tokenizer's token
    cap is what those bases need. ``select_by``: the checkpoint kept, ``dev_loss`` (default, the
    declared GUE protocol: DNABERT-2 keeps the best dev loss) or ``dev_metric`` (the task's metric).
    """
    splits, meta = task
    if isinstance(settings, dict) and "max_tokens" in settings:
        raise ValueError(
            "finetune.max_tokens is gone: set finetune.max_bp, the bp every tokenizer sees "
            "(token caps now follow from it, README 'Equal coverage')"
        )
    given = settings if isinstance(settings, dict) else dataclasses.asdict(settings)
    settings = FinetuneConfig.from_dict(settings)
    if settings.protocol == "benchmark":
        official = {
            k: meta["protocol"][k]
            for k in ("epochs", "lr", "batch_size", "warmup_steps")
            if k in meta.get("protocol", {})
        }
        settings, given = settings.replace(**official), {**given, **official}
    if settings.select_by not in SELECT_BY:
        raise ValueError(f"finetune.select_by must be one of {sorted(SELECT_BY)}, got {settings.select_by!r}")
    splits, seen = coverage(
        splits, meta, ProbeConfig(max_bp=settings.max_bp, window=settings.window, pooling="fixed")
    )
    seed_everything(seed)
    model = SequenceClassifier(
        load_encoder(model_path, tokenizer),
        meta["num_classes"],
        head="linear" if settings.head_init == "probe" else "mlp",
    )
    max_length = tokens_needed(tokenizer, splits)
    training = FinetuneTraining(
        epochs=settings.epochs,
        lr=settings.lr,
        batch_size=settings.batch_size,
        max_length=max_length,
        lora_rank=settings.lora_rank,
        patience=settings.patience,
        warmup_steps=settings.warmup_steps,
        select_metric=SELECT_BY[settings.select_by] or meta["metric"],
        head_init=settings.head_init,
    )
    result = finetune(
        model,
        tokenizer,
        _xy(splits["train"]),
        _xy(splits["dev"]),
        _xy(splits["test"]),
        training,
        seed=seed,
        device=device,
        progress=progress,
    )
    # the record keeps the settings as given (plus the official protocol's): what the config said
    return {
        **result,
        **seen,
        "max_tokens": max_length,
        "truncated_fraction": 0.0,
        "select_by": settings.select_by,
        "settings": given,
        "pretrain_deviations": pretrain_deviations(model_path),
    }


def _pooled_embeddings(
    encoder, tokenizer: Tokenizer, sequences: list[str], max_bp: int | None, max_length: int, device
) -> np.ndarray:
    """Each sequence's embedding: the mean over its ``max_bp`` windows (:func:`sliding_windows`;
    one window for a sequence that fits) of the encoder's mean-pooled window embeddings. A window
    that recurs (overlapping long sequences cut from one genome share most of theirs) is embedded
    once: the species tasks' 32 kbp windows every 8 kbp hold each window 4 times."""
    windows = [sliding_windows(s, max_bp) for s in sequences]
    flat = [w for ws in windows for w in ws]
    unique, where = np.unique(np.array(flat, dtype=object), return_inverse=True)
    embedded = embed_sequences(encoder, tokenizer, list(unique), max_length=max_length, device=device)
    owner = np.repeat(np.arange(len(sequences)), [len(ws) for ws in windows])
    pooled = np.zeros((len(sequences), embedded.shape[1]), dtype=embedded.dtype)
    np.add.at(pooled, owner, embedded[where])
    return pooled / np.bincount(owner)[:, None]


def linear_probe_on_task(
    model_path,
    tokenizer: Tokenizer,
    task: tuple[dict, dict],
    coverage_settings: ProbeConfig | dict | None = None,
    seed: int = 0,
    device: str | None = "auto",
) -> dict:
    """Frozen pre-trained encoder -> logistic regression on the task's train split, scored on test.

    ``coverage_settings`` (config ``linear_probe``: ``max_bp``, ``window``, ``pooling``) sets the
    bases every tokenizer sees (:func:`coverage`). Also measures the vocabulary usage on the
    task's training sequences (paper Table 1: share of the vocabulary, per codebook level, that
    the task's data uses)."""
    splits, meta = task
    splits, seen = coverage(splits, meta, coverage_settings)
    encoder = load_encoder(model_path, tokenizer)
    if seen["coverage_pooling"] == "sliding" and seen["n_cut"]:
        max_bp = seen["coverage_bp"]
        max_length = tokens_needed(tokenizer, splits, max_bp)
        result = _pooled_probe(
            encoder, tokenizer, splits, meta["num_classes"], max_bp, max_length, seed, device
        )
    else:
        max_length = tokens_needed(tokenizer, splits)
        result = linear_probe(
            encoder,
            tokenizer,
            _xy(splits["train"]),
            _xy(splits["test"]),
            seed=seed,
            max_length=max_length,
            device=device,
        )
    counts = usage_counts(tokenizer, list(splits["train"]["sequence"]))
    out = {
        **result,
        **seen,
        "max_tokens": max_length,
        "truncated_fraction": 0.0,
        "vocab_usage": [float((c > 0).mean()) for c in counts.values()],
        "pretrain_deviations": pretrain_deviations(model_path),
    }
    if isinstance(tokenizer, CodebookTokenizer):  # reconstruction on the task's held-out sequences too
        out["task_recon_accuracy"] = (
            heldout_percentages(tokenizer.model, list(splits["test"]["sequence"]))["recon_accuracy"] / 100.0
        )
    return out


def _pooled_probe(
    encoder,
    tokenizer: Tokenizer,
    splits: dict,
    num_classes: int,
    max_bp: int,
    max_length: int,
    seed: int,
    device,
) -> dict:
    """:func:`~vqdna.train.classify.linear_probe` on window-pooled embeddings (the same standardised logistic
    regression, so fixed and sliding probes differ only in what they embed)."""
    from vqdna.core.metrics import classification_metrics, confusion, test_outcomes

    (x_train, y_train), (x_test, y_test) = _xy(splits["train"]), _xy(splits["test"])
    e_train, e_test = (
        _pooled_embeddings(encoder, tokenizer, x, max_bp, max_length, device) for x in (x_train, x_test)
    )
    predictions = fit_logistic(e_train, y_train, seed).predict(e_test)
    return {
        "test": classification_metrics(y_test, predictions),
        "confusion_matrix": confusion(y_test, predictions, num_classes),
        **test_outcomes(y_test, predictions),
        "n_train": len(y_train),
        "n_test": len(y_test),
    }
