"""What each workflow notebook does, as plain functions (the notebooks only add tables/plots).

Stage 1 ``train_tokenizer`` / ``tokenizer_statistics``; stage 2 ``build_masked_lm`` /
``pretrain`` / ``save_pretrained``; stage 3 ``finetune`` / ``linear_probe``; and the metrics
records every job writes (schema: :func:`vqdna.records.validate_record`).

Protocol deviations are short, categorical tags so that rows with the same kind of deviation
share one ``protocol`` label in the tables; details (sizes, epochs) live in other fields.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from vqdna import study, training
from vqdna.encoder import EncoderConfig, MaskedLM, SequenceClassifier, TransformerEncoder
from vqdna.tokenizers import N_SPECIAL, CodebookTokenizer, Tokenizer, build_tokenizer
from vqdna.vqvae import VQVAE, VQVAEConfig, fit_vqvae, tokenizer_stats

#: held-out windows scored during training (the final statistics use all of them)
EVAL_WINDOWS = 512
#: profile name of the paper's own settings (config/paper.yaml); any other profile is a deviation
PAPER_PROFILE = "paper"
SMALL_MODEL = "small model and short training"
SHORT_FINETUNE = "short fine-tuning"
#: the paper profile pre-trained without the paper's multi-species corpus (corpus.min_paper_bp)
SMALL_CORPUS = "small pre-training corpus"
#: the paper's corpus: DNABERT-2's 2.75 Gbp human + 32.49 Gbp multi-species; less than this
#: much extra_fasta labels a paper-profile run (config corpus.min_paper_bp overrides)
MIN_PAPER_BP = 1e9
TRUNCATED = "inputs truncated"


def read_windows(path) -> list[str]:
    """A corpus window file (one normalised window per line)."""
    windows = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not windows:
        raise ValueError(f"{path}: no windows")
    return windows


def _spread(windows: list[str], n: int = EVAL_WINDOWS) -> list[str]:
    """At most ``n`` windows evenly spread over the list (which is ordered by genome)."""
    return windows[::max(1, -(-len(windows) // n))]


def _device(device: str | None) -> str | None:
    return None if device in (None, "auto") else device


# ------------------------------------------------------------------------------- corpus

def build_corpus(settings: dict, out_dir, seed: int = 0) -> None:
    """The pre-training corpus of the config's ``corpus`` section: windows of the embedded
    genomes plus any ``extra_fasta``, with a provenance manifest. The manifest's
    ``paper_corpus`` says how many bp ``extra_fasta`` added against ``min_paper_bp``
    (:func:`corpus_deviations`)."""
    from vqdna import corpus

    extra = list(settings.get("extra_fasta", []))
    extra_bp = sum(sum(corpus.contig_lengths(source["fasta"]).values()) for source in extra)
    corpus.write_corpus(corpus.embedded_genomes() + extra, out_dir,
                        length=settings["window"], max_windows=settings["max_windows"],
                        max_n_fraction=settings.get("max_n_fraction", 0.01),
                        val_fraction=settings.get("val_fraction", 0.1), seed=seed,
                        extra={"paper_corpus": {"extra_bp": extra_bp,
                                                "min_bp": float(settings.get("min_paper_bp", MIN_PAPER_BP))}})


def corpus_deviations(corpus_dir, profile: str) -> list[str]:
    """[SMALL_CORPUS] when the paper profile pre-trained on less than ``corpus.min_paper_bp`` of
    ``extra_fasta`` (the embedded genomes alone are about 8 Mbp, the paper's corpus 35 Gbp); the
    other profiles already carry SMALL_MODEL."""
    if profile != PAPER_PROFILE:
        return []
    manifest = json.loads((Path(corpus_dir) / "manifest.json").read_text())
    paper = manifest.get("paper_corpus", {"extra_bp": 0, "min_bp": MIN_PAPER_BP})
    return [SMALL_CORPUS] if paper["extra_bp"] < paper["min_bp"] else []


# ------------------------------------------------------------------------------- stage 1

def train_tokenizer(spec: dict, train_windows: list[str], val_windows: list[str], seed: int = 0,
                    device: str | None = "auto", progress: bool = False,
                    scale: dict | None = None) -> tuple[Tokenizer, list[dict]]:
    """Build (char, k-mer) or train (BPE, VQ, HRQ) the tokenizer a config entry describes.
    -> (tokenizer, training history; empty for tokenizers without training). ``scale``: see
    :func:`scale_options`."""
    kind = spec["type"]
    if kind == "char":
        return build_tokenizer("char"), []
    if kind == "kmer":
        return build_tokenizer("kmer", k=spec["k"], stride=spec.get("stride", 1)), []
    if kind == "bpe":
        return build_tokenizer("bpe", vocab_size=spec["vocab_size"]).train(train_windows), []
    training.seed_everything(seed)
    model = VQVAE(VQVAEConfig.from_spec(spec))
    options = scale_options(scale)
    model.activation_checkpointing = options.pop("activation_checkpointing")
    history = fit_vqvae(model, train_windows, _spread(val_windows), steps=spec["steps"], batch_size=spec["batch_size"],
                        lr=spec["lr"], seed=seed, warmup_steps=spec.get("warmup_steps", 0),
                        eval_every=max(1, spec["steps"] // 10), device=_device(device), progress=progress,
                        micro_batch_size=spec.get("micro_batch_size"), **options)
    return build_tokenizer(kind, model=model.cpu().eval()), history


def usage_counts(tokenizer: Tokenizer, windows: list[str]) -> dict[str, np.ndarray]:
    """How often each regular token (or each code, per codebook level) occurs in ``windows``."""
    if isinstance(tokenizer, CodebookTokenizer):  # per level: never the product vocabulary
        return {f"level {n + 1}": c for n, c in enumerate(tokenizer.level_counts(windows))}
    return {"vocabulary": tokenizer.token_counts(windows)[N_SPECIAL:]}


def tokenizer_statistics(tokenizer: Tokenizer, windows: list[str], counts: dict[str, np.ndarray] | None = None) -> dict:
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
        stats["recon_accuracy"] = tokenizer_stats(tokenizer.model, windows)["recon_accuracy"] / 100.0
    return stats


def ablation_of(name: str) -> dict | None:
    """``hrq~codebook_size=128`` -> ``{"name": "codebook_size", "value": 128}``; None for a base name."""
    _, knob, value = study.parse_variant(name)
    return None if knob is None else {"name": knob, "value": value}


#: data-preparation notes (vqdna.data / vqdna.suites) -> the category that labels table rows
DATA_DEVIATIONS = {"train subsampled": "train subsampled", "reduced-train": "reduced-train",
                   "sequences truncated": TRUNCATED}


def deviation_tags(notes: list[str]) -> list[str]:
    """Detailed data notes ("train subsampled to 3000 of 4904 ...") -> their categories, so
    that every task subsampled the same way shares one protocol label."""
    return sorted({next((tag for key, tag in DATA_DEVIATIONS.items() if key in note), note) for note in notes})


def profile_deviations(profile: str) -> list[str]:
    return [] if profile == PAPER_PROFILE else [SMALL_MODEL]


def world_size(history: list[dict]) -> int:
    """How many data-parallel processes trained a run, from its history (1 when not recorded)."""
    return history[-1].get("world_size", 1) if history else 1


def _world_field(world: int) -> dict:
    """``{"world_size": n}`` for a run trained by n > 1 processes; nothing for one process, so
    single-process records stay as they always were."""
    return {"world_size": world} if world > 1 else {}


def tokenizer_record(name: str, spec: dict, stats: dict, profile: str, seed: int = 0, world: int = 1) -> dict:
    """The metrics JSON of a tokenizer job (``seed``: its training seed; ``world``: how many
    processes trained it, recorded as ``world_size`` when > 1)."""
    return {"stage": "tokenizer", "tokenizer": name, "type": spec["type"], "seed": seed,
            "ablation": ablation_of(name), "deviations": profile_deviations(profile), "profile": profile,
            "spec": spec, **stats, **_world_field(world)}


# ------------------------------------------------------------------------------- stage 2

def build_masked_lm(tokenizer: Tokenizer, encoder: dict, seed: int = 0) -> MaskedLM:
    """A fresh encoder (frozen codebook embedding for VQ/HRQ) with one head per MLM target,
    initialised from ``seed``: the initial weights are part of the run, so they are seeded too."""
    training.seed_everything(seed)
    return MaskedLM(TransformerEncoder.from_tokenizer(tokenizer, EncoderConfig(**encoder)),
                    tokenizer.mlm_target_sizes)


def scale_options(scale: dict | None) -> dict:
    """The training-at-scale settings a rule passes (config keys ``precision``,
    ``activation_checkpointing``, ``checkpoint_every``, and the job's ``resume_path``; the
    ``torchrun`` launch, :mod:`vqdna.launch`, adds ``keep_final``), with the defaults that
    reproduce the plain fp32 loop."""
    scale = scale or {}
    return {"precision": scale.get("precision", "fp32"),
            "activation_checkpointing": bool(scale.get("activation_checkpointing", False)),
            "resume_path": scale.get("resume_path"), "checkpoint_every": scale.get("checkpoint_every") or 0,
            "keep_final": bool(scale.get("keep_final", False))}


def pretrain(model: MaskedLM, tokenizer: Tokenizer, train_windows: list[str], val_windows: list[str],
             settings: dict, seed: int = 0, device: str | None = "auto", progress: bool = False,
             scale: dict | None = None) -> list[dict]:
    """Masked-modeling pre-training with the config's ``pretrain`` section (``scale``: see
    :func:`scale_options`). No tokenizer makes more tokens than bases, so ``max_tokens`` >= the
    longest window + 2 ([CLS]/[SEP]) cuts no window; a smaller cap is an error rather than a
    silent cut."""
    longest = max(map(len, train_windows + val_windows))
    if settings["max_tokens"] < longest + 2:
        cap = settings["max_tokens"]
        raise ValueError(f"pretrain.max_tokens {cap} would cut the {longest} bp corpus windows: set it to "
                         f"at least {longest + 2} (or corpus.window to at most {cap - 2})")
    options = scale_options(scale)
    model.encoder.activation_checkpointing = options.pop("activation_checkpointing")
    return training.pretrain_mlm(
        model, tokenizer, train_windows, steps=settings["steps"], batch_size=settings["batch_size"],
        lr=settings["lr"], mask_ratio=settings["mask_ratio"], max_length=settings["max_tokens"], seed=seed,
        warmup_steps=settings.get("warmup_steps", 0), val_sequences=_spread(val_windows),
        eval_every=max(1, settings["steps"] // 10), device=_device(device), progress=progress,
        masking=settings.get("masking", "tokenizer"), micro_batch_size=settings.get("micro_batch_size"), **options)


def save_pretrained(path, model: MaskedLM, encoder: dict, tokenizer_path, deviations: list[str] = ()) -> None:
    """Encoder weights + its config + which tokenizer it reads (the MLM heads are dropped) + the
    pre-training's deviations (:func:`corpus_deviations`), which every record of the encoder carries."""
    training.save_checkpoint(path, model.encoder, encoder_config=dict(encoder),
                             tokenizer_path=str(tokenizer_path), pretrain_deviations=list(deviations))


def pretrain_deviations(path) -> list[str]:
    """The deviations :func:`save_pretrained` stored with an encoder."""
    return list(training.load_checkpoint(path).get("pretrain_deviations", []))


def load_encoder(path, tokenizer: Tokenizer) -> TransformerEncoder:
    payload = training.load_checkpoint(path)
    encoder = TransformerEncoder.from_tokenizer(tokenizer, EncoderConfig(**payload["encoder_config"]))
    encoder.load_state_dict(payload["state_dict"])
    return encoder


def pretrain_record(name: str, tokenizer: Tokenizer, encoder: dict, settings: dict, history: list[dict],
                    profile: str, deviations: list[str] = (), replicate: int = 0) -> dict:
    """The metrics JSON of a pre-training job: final losses and the pretext check, i.e. the
    held-out masked-token loss against the unigram (frequency-only) loss of the same targets
    (``unigram_margin``: nats below it; ``unigram_margin_fraction``: as a share of it), and
    ``world_size`` when more than one process trained it."""
    last = history[-1]
    val, unigram = last.get("val_loss"), last.get("unigram_loss")
    margin = None if val is None or unigram is None else unigram - val
    return {"stage": "pretrain", "tokenizer": name, "seed": replicate, "replicate": replicate,
            "ablation": ablation_of(name), "profile": profile, "tokenizer_type": tokenizer.name,
            "encoder": encoder, "pretrain": settings, "vocab_size": tokenizer.vocab_size,
            "mlm_span": getattr(tokenizer, "mlm_span", 1) if settings.get("masking", "tokenizer") == "tokenizer" else 1,
            "final_train_loss": last["train_loss"], "final_val_loss": val,
            "final_val_accuracy": last.get("val_accuracy"), "unigram_loss": unigram,
            "unigram_margin": margin, "unigram_margin_fraction": None if margin is None else margin / unigram,
            "steps_per_s": last.get("steps_per_s"),
            "deviations": sorted(set(profile_deviations(profile)) | set(deviations)),
            **_world_field(world_size(history))}


# ------------------------------------------------------------------------------- stage 3

def _xy(frame) -> tuple[list[str], np.ndarray]:
    return frame["sequence"].tolist(), frame["label"].to_numpy()


#: where a fixed coverage window sits in a longer sequence
WINDOWS = ("centre", "start")
#: how a sequence longer than the coverage is read: one fixed window, or (linear probe only)
#: every window of the sequence, their embeddings mean-pooled
POOLINGS = ("fixed", "sliding")
#: finetune.select_by -> the dev quantity training.finetune selects on (None: the task's metric)
SELECT_BY = {"dev_loss": "loss", "dev_metric": None}
#: what every fine-tuning / linear-probe record stores about the bases each tokenizer saw
COVERAGE_FIELDS = ("coverage", "coverage_bp", "coverage_window", "coverage_pooling", "bp_seen",
                   "n_sequences", "n_cut", "cut_fraction")


def window_of(sequence: str, max_bp: int | None, window: str = "centre") -> str:
    """The ``max_bp`` bp of ``sequence`` every tokenizer sees: all of it when it fits, else the
    centre (or start) window. The same bases for every tokenizer: equal coverage."""
    if window not in WINDOWS:
        raise ValueError(f"coverage window must be one of {WINDOWS}, got {window!r}")
    if max_bp is None or len(sequence) <= max_bp:
        return sequence
    start = (len(sequence) - max_bp) // 2 if window == "centre" else 0
    return sequence[start:start + max_bp]


def sliding_windows(sequence: str, max_bp: int | None) -> list[str]:
    """``sequence`` tiled by windows of ``max_bp`` bp that together cover every base; the last
    window ends at the sequence's end (it overlaps its neighbour when the length is not a multiple)."""
    if max_bp is None or len(sequence) <= max_bp:
        return [sequence]
    starts = list(range(0, len(sequence) - max_bp + 1, max_bp))
    if starts[-1] + max_bp < len(sequence):
        starts.append(len(sequence) - max_bp)
    return [sequence[s:s + max_bp] for s in starts]


def coverage(splits: dict, meta: dict, settings: dict | None = None) -> tuple[dict, dict]:
    """Equal coverage in bp: how many bp of each sequence every tokenizer sees.

    ``max_bp`` = the smaller of the task's declared ``coverage_bp`` (meta, benchmarks/*.yaml) and
    ``settings["max_bp"]`` (config; None = no limit). Sequences that fit are seen whole; longer
    ones through their ``window`` (centre | start) of ``max_bp`` bp, or, with ``pooling:
    sliding``, through every window. Token caps then follow per tokenizer from these bases
    (:func:`tokens_needed`), so no tokenizer cuts a sequence. -> (splits with the windows
    applied; for sliding pooling each row holds the whole sequence, the record fields: the
    declared coverage, bp seen per sequence (over all splits), sequences cut and a label)."""
    settings = settings or {}
    window, pooling = settings.get("window", "centre"), settings.get("pooling", "fixed")
    if pooling not in POOLINGS:
        raise ValueError(f"coverage pooling must be one of {POOLINGS}, got {pooling!r}")
    limits = [v for v in (meta.get("coverage_bp"), settings.get("max_bp")) if v is not None]
    max_bp = int(min(limits)) if limits else None
    lengths = np.concatenate([frame["sequence"].str.len().to_numpy() for frame in splits.values()])
    cut = int((lengths > max_bp).sum()) if max_bp is not None else 0
    if pooling == "sliding":
        seen, windowed = lengths, splits
    else:
        seen = np.minimum(lengths, max_bp) if max_bp is not None else lengths
        windowed = {name: frame.assign(sequence=[window_of(s, max_bp, window) for s in frame["sequence"]])
                    for name, frame in splits.items()}
    if cut == 0:
        label = "whole sequences"
    elif pooling == "sliding":
        label = f"whole sequences, {max_bp} bp windows pooled"
    else:
        label = f"{window} {max_bp} bp"
    record = {"coverage_bp": max_bp, "coverage_window": window, "coverage_pooling": pooling,
              "coverage": label, "bp_seen": {"mean": float(seen.mean()), "min": int(seen.min()),
                                             "max": int(seen.max())},
              "n_sequences": int(len(lengths)), "n_cut": cut, "cut_fraction": cut / len(lengths)}
    return windowed, record


def tokens_needed(tokenizer: Tokenizer, splits: dict, max_bp: int | None = None, batch: int = 256) -> int:
    """Tokens (+[CLS]/[SEP]) of the longest input over ALL rows of every split, so that the
    cap cuts nothing; with ``max_bp`` the rows are read in sliding windows of that size."""
    sequences = [s for frame in splits.values() for s in frame["sequence"]]
    if max_bp is not None:
        sequences = [w for s in sequences for w in sliding_windows(s, max_bp)]
    longest = 0
    for start in range(0, len(sequences), batch):
        mask = tokenizer.encode_batch(sequences[start:start + batch], truncation=False)["attention_mask"]
        longest = max(longest, int(mask.sum(1).max()))
    return longest


def finetune(model_path, tokenizer: Tokenizer, task: tuple[dict, dict], settings: dict, seed: int = 0,
             device: str | None = "auto", progress: bool = False) -> dict:
    """Fine-tune the pre-trained encoder + MLP head on one task (config ``finetune`` section).

    ``settings["protocol"] == "benchmark"`` takes epochs, lr, batch size and warm-up from the
    task's official protocol (benchmarks/*.yaml); the official caps count BPE tokens and would
    cut the other tokenizers short, so the input is set in bp instead (:func:`coverage`:
    ``max_bp``, ``window``; fine-tuning always reads one fixed window) and each tokenizer's token
    cap is what those bases need. ``select_by``: the checkpoint kept, ``dev_loss`` (default, the
    declared GUE protocol: DNABERT-2 keeps the best dev loss) or ``dev_metric`` (the task's metric).
    """
    splits, meta = task
    if "max_tokens" in settings:
        raise ValueError("finetune.max_tokens is gone: set finetune.max_bp, the bp every tokenizer sees "
                         "(token caps now follow from it, README 'Equal coverage')")
    if settings.get("protocol") == "benchmark":
        official = {k: meta["protocol"][k] for k in ("epochs", "lr", "batch_size", "warmup_steps")
                    if k in meta.get("protocol", {})}
        settings = {**settings, **official}
    select_by = settings.get("select_by", "dev_loss")
    if select_by not in SELECT_BY:
        raise ValueError(f"finetune.select_by must be one of {sorted(SELECT_BY)}, got {select_by!r}")
    splits, seen = coverage(splits, meta, {**settings, "pooling": "fixed"})
    training.seed_everything(seed)
    head_init = settings.get("head_init", "random")
    model = SequenceClassifier(load_encoder(model_path, tokenizer), meta["num_classes"],
                               head="linear" if head_init == "probe" else "mlp")
    max_length = tokens_needed(tokenizer, splits)
    result = training.finetune(
        model, tokenizer, _xy(splits["train"]), _xy(splits["dev"]), _xy(splits["test"]),
        epochs=settings["epochs"], lr=settings["lr"], batch_size=settings["batch_size"],
        max_length=max_length, seed=seed, lora_rank=settings.get("lora_rank"),
        patience=settings.get("patience"),
        warmup_steps=settings.get("warmup_steps", 50), select_metric=SELECT_BY[select_by] or meta["metric"],
        head_init=head_init, device=_device(device), progress=progress)
    return {**result, **seen, "max_tokens": max_length, "truncated_fraction": 0.0, "select_by": select_by,
            "settings": settings, "pretrain_deviations": pretrain_deviations(model_path)}


def _pooled_embeddings(encoder, tokenizer: Tokenizer, sequences: list[str], max_bp: int | None,
                       max_length: int, device) -> np.ndarray:
    """Each sequence's embedding: the mean over its ``max_bp`` windows (:func:`sliding_windows`;
    one window for a sequence that fits) of the encoder's mean-pooled window embeddings."""
    windows = [sliding_windows(s, max_bp) for s in sequences]
    flat = training.embed_sequences(encoder, tokenizer, [w for ws in windows for w in ws],
                                    max_length=max_length, device=device)
    owner = np.repeat(np.arange(len(sequences)), [len(ws) for ws in windows])
    pooled = np.zeros((len(sequences), flat.shape[1]), dtype=flat.dtype)
    np.add.at(pooled, owner, flat)
    return pooled / np.bincount(owner)[:, None]


def linear_probe(model_path, tokenizer: Tokenizer, task: tuple[dict, dict],
                 coverage_settings: dict | None = None, seed: int = 0, device: str | None = "auto") -> dict:
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
        result = _pooled_probe(encoder, tokenizer, splits, meta["num_classes"], max_bp, max_length, seed,
                               _device(device))
    else:
        max_length = tokens_needed(tokenizer, splits)
        result = training.linear_probe(encoder, tokenizer, _xy(splits["train"]), _xy(splits["test"]),
                                       seed=seed, max_length=max_length, device=_device(device))
    counts = usage_counts(tokenizer, list(splits["train"]["sequence"]))
    out = {**result, **seen, "max_tokens": max_length, "truncated_fraction": 0.0,
           "vocab_usage": [float((c > 0).mean()) for c in counts.values()],
           "pretrain_deviations": pretrain_deviations(model_path)}
    if isinstance(tokenizer, CodebookTokenizer):  # reconstruction on the task's held-out sequences too
        out["task_recon_accuracy"] = tokenizer_stats(tokenizer.model, list(splits["test"]["sequence"]))[
            "recon_accuracy"] / 100.0
    return out


def _pooled_probe(encoder, tokenizer: Tokenizer, splits: dict, num_classes: int, max_bp: int, max_length: int,
                  seed: int, device) -> dict:
    """``training.linear_probe`` on window-pooled embeddings (the same standardised logistic
    regression, so fixed and sliding probes differ only in what they embed)."""
    from vqdna.metrics import classification_metrics, confusion

    (x_train, y_train), (x_test, y_test) = _xy(splits["train"]), _xy(splits["test"])
    e_train, e_test = (_pooled_embeddings(encoder, tokenizer, x, max_bp, max_length, device)
                       for x in (x_train, x_test))
    predictions = training.fit_logistic(e_train, y_train, seed).predict(e_test)
    return {"test": classification_metrics(y_test, predictions), "confusion_matrix":
            confusion(y_test, predictions, num_classes), "n_train": len(y_train), "n_test": len(y_test)}


def kmer_baseline_record(task: tuple[dict, dict], profile: str) -> dict:
    """The classical reference row: k-mer (3-6) spectrum + logistic regression on the task's
    train split, scored on test. Deterministic (lbfgs), so one run stands for every seed."""
    from vqdna.baselines import BASELINE_NAME, kmer_spectrum_baseline

    splits, meta = task
    from vqdna.uncertainty import METRICS, bootstrap_interval

    result = kmer_spectrum_baseline(splits["train"], splits["test"], seed=0)
    return {"stage": "baseline", "suite": meta["suite"], "task": meta["task"], "tokenizer": BASELINE_NAME,
            "seed": 0, "replicate": 0, "metric": meta["metric"],
            **{k: float(result[k]) for k in ("mcc", "macro_f1", "accuracy")},
            "confusion_matrix": result["confusion_matrix"],
            "test_interval": {m: bootstrap_interval(result["confusion_matrix"], m) for m in METRICS},
            "deviations": deviation_tags(meta.get("deviations", [])), "deviation_details": meta.get("deviations", []),
            "paper": meta.get("paper", {}),
            "ablation": None, "profile": profile}


def write_kmer_baseline(task_dir, out_path, profile: str) -> None:
    """The baseline job: prepared task folder -> metrics JSON."""
    from vqdna import data
    from vqdna.records import write_record

    write_record(kmer_baseline_record(data.read_task(task_dir), profile), out_path)


def evaluation_record(stage: str, task: tuple[dict, dict], name: str, seed: int, result: dict, profile: str,
                      settings: dict | None = None, replicate: int = 0) -> dict:
    """The metrics JSON of a fine-tuning / linear-probe job: test scores (fractions), each with
    its 95% test-set bootstrap interval (``test_interval``, from the confusion matrix), the
    task's primary metric, the paper's published numbers and every protocol deviation.
    ``replicate``: the full-pipeline replicate; ``seed``: the fine-tuning seed within it."""
    from vqdna.uncertainty import METRICS, bootstrap_interval

    _, meta = task
    deviations = (deviation_tags(meta.get("deviations", [])) + profile_deviations(profile)
                  + list(result.get("pretrain_deviations", [])))
    if stage == "finetune" and (settings or {}).get("protocol") != "benchmark":
        deviations.append(SHORT_FINETUNE)
    notes = list(meta.get("notes", []))  # conditions shown beside the score, not a protocol group
    if result.get("n_cut"):
        how = ("read in pooled windows" if result["coverage_pooling"] == "sliding"
               else f"cut to the {result['coverage']} window")
        notes.append(f"{result['n_cut']} of {result['n_sequences']} sequences longer than "
                     f"{result['coverage_bp']} bp, {how}")
    return {
        "stage": stage, "suite": meta["suite"], "task": meta["task"], "tokenizer": name, "seed": seed,
        "replicate": replicate,
        "test_interval": {m: bootstrap_interval(result["confusion_matrix"], m, seed=seed) for m in METRICS},
        "metric": meta["metric"], **{k: float(result["test"][k]) for k in ("mcc", "macro_f1", "accuracy")},
        "deviations": sorted(set(deviations)), "deviation_details": meta.get("deviations", []),
        "notes": notes, "paper": meta.get("paper", {}), "ablation": ablation_of(name),
        "profile": profile, "settings": result.get("settings", settings), "max_tokens": result["max_tokens"],
        "truncated_fraction": result["truncated_fraction"], "confusion_matrix": result["confusion_matrix"],
        "vocab_usage": result.get("vocab_usage"), "task_recon_accuracy": result.get("task_recon_accuracy"),
        "select_by": result.get("select_by"), "best_step": result.get("best_step"),
        **{k: result.get(k) for k in COVERAGE_FIELDS},
    }




# ------------------------------------------------------------------------------- efficiency

def efficiency_row(name: str, model_path, tokenizer: Tokenizer, sequences: list[str], seq_len: int = 512,
                   batch_size: int = 32, min_seconds: float = 1.0, n_sequences: int = 128) -> dict:
    """The paper's Table 2 columns for one tokenizer + encoder: parameters and forward FLOPs of
    each at ``seq_len`` bp (the encoder sees as many tokens as the tokenizer makes of ``seq_len``
    bp), tokens per sequence (over ``n_sequences`` sequences spread over the input), and
    measured throughput (tokenizer bp/s, encoder sequences/s)."""
    from vqdna import efficiency

    windows = _spread([s[:seq_len] for s in sequences if len(s) >= seq_len] or sequences, n_sequences)
    encoder = load_encoder(model_path, tokenizer).eval()
    tokens = efficiency.tokens_per_sequence(tokenizer, windows)
    n_tokens = int(round(tokens["mean"])) + 2
    row = {"tokenizer": name, "encoder_params": efficiency.count_parameters(encoder),
           "encoder_trainable_params": efficiency.count_parameters(encoder, trainable_only=True),
           "encoder_gflops": efficiency.estimate_flops(encoder, n_tokens) / 1e9,
           "tokenizer_params": 0, "tokenizer_gflops": 0.0, "seq_len_bp": len(windows[0]),
           "tokens_per_seq": tokens["mean"], "bp_per_token": tokens["bp_per_token"]}
    if isinstance(tokenizer, CodebookTokenizer):
        row["tokenizer_params"] = efficiency.count_parameters(tokenizer.model)
        row["tokenizer_gflops"] = efficiency.estimate_flops(tokenizer.model, len(windows[0])) / 1e9
    batch = windows[:batch_size]
    row["tokenizer_bp_per_s"] = efficiency.measure_throughput(
        lambda: tokenizer.encode_batch(batch), sum(map(len, batch)), min_seconds)["items_per_s"]
    encoded = tokenizer.encode_batch(batch)
    with torch.no_grad():
        row["encoder_seqs_per_s"] = efficiency.measure_throughput(
            lambda: encoder(encoded["input_ids"], encoded["attention_mask"]), len(batch), min_seconds)["items_per_s"]
    row["total_params"] = row["encoder_params"] + row["tokenizer_params"]
    row["total_gflops"] = row["encoder_gflops"] + row["tokenizer_gflops"]
    # the same counts under the other conventions (vqdna.efficiency: paper_conventions)
    row["total_gmacs"] = row["total_gflops"] / 2
    row["encoder_gflops_per_token"] = row["encoder_gflops"] / n_tokens
    return row


# ------------------------------------------------------------------------------- SARS-CoV-2

def genome_codes(tokenizer: CodebookTokenizer, genome: str) -> np.ndarray:
    """Per-token codes (T, levels) of a whole genome (one token per base at stride 1)."""
    return tokenizer.ids_to_levels(torch.as_tensor(tokenizer.encode(genome))).numpy()


def token_profiles(tokenizer: Tokenizer, genomes: list[str]) -> dict[str, np.ndarray]:
    """Tokenizer-level per-genome embeddings: square-root token frequencies over the genome,
    one matrix (genomes x vocabulary) per codebook level ("vocabulary" for char/k-mer/BPE).
    Needs no encoder, so it shows what each vocabulary level itself separates."""
    profiles: dict[str, list[np.ndarray]] = {}
    for genome in genomes:
        for level, counts in usage_counts(tokenizer, [genome]).items():
            profiles.setdefault(level, []).append(np.sqrt(counts / max(1, counts.sum())))
    return {level: np.stack(rows) for level, rows in profiles.items()}


# ------------------------------------------------------------------------------- index page

def write_index(workdir, out_path, profile: str) -> None:
    """A Markdown page linking the gathered results and every rendered notebook of the run
    (per-job notebooks are local files: git tracks only the summary ones)."""
    workdir, out_path = Path(workdir), Path(out_path)
    lines = [f"# vqdna results — profile `{profile}`", "",
             "- [Results tables (Markdown)](summary/results.md) · [CSV](summary/results.csv)",
             "- [Claim verdicts](summary/claims.md) · [Pretext learned](summary/pretext.md) · "
             "[Variance: replicates vs fine-tuning](summary/variance.md)",
             "- [Summary notebook](summary/summary.html) · [Efficiency](summary/efficiency.html)",
             "- [Provenance of this run](provenance.json) (commit, config hash, libraries, machine)"]
    if (workdir / "sarscov2" / "sarscov2.html").exists():
        lines.append("- [SARS-CoV-2 analysis (paper Fig. 5)](sarscov2/sarscov2.html)")
    lines += ["", "## Rendered job notebooks (present after a local run)", ""]
    for stage in ("tokenizers", "models", "finetune", "linear_probe"):
        pages = sorted(workdir.glob(f"{stage}/**/*.html"))
        if pages:
            lines.append(f"### {stage} ({len(pages)})\n")
            lines += [f"- [{page.parent.relative_to(workdir / stage)}]({page.relative_to(workdir)})" for page in pages]
            lines.append("")
    out_path.write_text("\n".join(lines) + "\n")
