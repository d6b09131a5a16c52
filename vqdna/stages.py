"""What each workflow notebook does, as plain functions (the notebooks only add tables/plots).

Stage 1 ``train_tokenizer`` / ``tokenizer_statistics``; stage 2 ``build_masked_lm`` /
``pretrain`` / ``save_pretrained``; stage 3 ``finetune`` / ``linear_probe``; and the metrics
records every job writes (schema: :func:`vqdna.analysis.validate_record`).

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
from vqdna.tokenizers import N_SPECIAL, CodebookTokenizer, Tokenizer, build_tokenizer, load_tokenizer
from vqdna.vqvae import VQVAE, VQVAEConfig, fit_vqvae, tokenizer_stats

#: held-out windows scored during training (the final statistics use all of them)
EVAL_WINDOWS = 512
#: profile name of the paper's own settings (config/paper.yaml); any other profile is a deviation
PAPER_PROFILE = "paper"
SMALL_MODEL = "small model and short training"
SHORT_FINETUNE = "short fine-tuning"
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
    genomes plus any ``extra_fasta``, with a provenance manifest."""
    from vqdna import corpus

    corpus.write_corpus(corpus.embedded_genomes() + list(settings.get("extra_fasta", [])), out_dir,
                        length=settings["window"], max_windows=settings["max_windows"],
                        max_n_fraction=settings.get("max_n_fraction", 0.01),
                        val_fraction=settings.get("val_fraction", 0.1), seed=seed)


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


def tokenizer_record(name: str, spec: dict, stats: dict, profile: str) -> dict:
    """The metrics JSON of a tokenizer job."""
    return {"stage": "tokenizer", "tokenizer": name, "type": spec["type"], "seed": 0,
            "ablation": ablation_of(name), "deviations": profile_deviations(profile), "profile": profile,
            "spec": spec, **stats}


# ------------------------------------------------------------------------------- stage 2

def build_masked_lm(tokenizer: Tokenizer, encoder: dict, seed: int = 0) -> MaskedLM:
    """A fresh encoder (frozen codebook embedding for VQ/HRQ) with one head per MLM target,
    initialised from ``seed``: the initial weights are part of the run, so they are seeded too."""
    training.seed_everything(seed)
    return MaskedLM(TransformerEncoder.from_tokenizer(tokenizer, EncoderConfig(**encoder)),
                    tokenizer.mlm_target_sizes)


def scale_options(scale: dict | None) -> dict:
    """The training-at-scale settings a rule passes (config keys ``precision``,
    ``activation_checkpointing``, ``checkpoint_every``, and the job's ``resume_path``), with
    the defaults that reproduce the plain fp32 loop."""
    scale = scale or {}
    return {"precision": scale.get("precision", "fp32"),
            "activation_checkpointing": bool(scale.get("activation_checkpointing", False)),
            "resume_path": scale.get("resume_path"), "checkpoint_every": scale.get("checkpoint_every") or 0}


def pretrain(model: MaskedLM, tokenizer: Tokenizer, train_windows: list[str], val_windows: list[str],
             settings: dict, seed: int = 0, device: str | None = "auto", progress: bool = False,
             scale: dict | None = None) -> list[dict]:
    """Masked-modeling pre-training with the config's ``pretrain`` section (``scale``: see
    :func:`scale_options`)."""
    options = scale_options(scale)
    model.encoder.activation_checkpointing = options.pop("activation_checkpointing")
    return training.pretrain_mlm(
        model, tokenizer, train_windows, steps=settings["steps"], batch_size=settings["batch_size"],
        lr=settings["lr"], mask_ratio=settings["mask_ratio"], max_length=settings["max_tokens"], seed=seed,
        warmup_steps=settings.get("warmup_steps", 0), val_sequences=_spread(val_windows),
        eval_every=max(1, settings["steps"] // 10), device=_device(device), progress=progress,
        micro_batch_size=settings.get("micro_batch_size"), **options)


def save_pretrained(path, model: MaskedLM, encoder: dict, tokenizer_path) -> None:
    """Encoder weights + its config + which tokenizer it reads (the MLM heads are dropped)."""
    training.save_checkpoint(path, model.encoder, encoder_config=dict(encoder), tokenizer_path=str(tokenizer_path))


def load_encoder(path, tokenizer: Tokenizer) -> TransformerEncoder:
    payload = training.load_checkpoint(path)
    encoder = TransformerEncoder.from_tokenizer(tokenizer, EncoderConfig(**payload["encoder_config"]))
    encoder.load_state_dict(payload["state_dict"])
    return encoder


def pretrain_record(name: str, tokenizer: Tokenizer, encoder: dict, settings: dict, history: list[dict],
                    profile: str) -> dict:
    last = history[-1]
    return {"stage": "pretrain", "tokenizer": name, "ablation": ablation_of(name), "profile": profile,
            "encoder": encoder, "pretrain": settings, "vocab_size": tokenizer.vocab_size,
            "final_train_loss": last["train_loss"], "final_val_loss": last.get("val_loss"),
            "final_val_accuracy": last.get("val_accuracy"), "steps_per_s": last.get("steps_per_s"),
            "deviations": profile_deviations(profile)}


# ------------------------------------------------------------------------------- stage 3

def _xy(frame) -> tuple[list[str], np.ndarray]:
    return frame["sequence"].tolist(), frame["label"].to_numpy()


def _max_tokens(tokenizer: Tokenizer, splits: dict, cap: int) -> tuple[int, float]:
    """Tokens needed for the longest sequence (+[CLS]/[SEP]), capped; and the fraction of
    sequences the cap truncates."""
    sample = [s for frame in splits.values() for s in frame["sequence"].head(200)]
    lengths = np.array([len(tokenizer.encode(s)) + 2 for s in sample])
    needed = int(lengths.max())
    return min(needed, cap), float((lengths > cap).mean())


def finetune(model_path, tokenizer: Tokenizer, task: tuple[dict, dict], settings: dict, seed: int = 0,
             device: str | None = "auto", progress: bool = False) -> dict:
    """Fine-tune the pre-trained encoder + MLP head on one task (config ``finetune`` section).

    ``settings["protocol"] == "benchmark"`` takes epochs, lr, batch size and warm-up from the
    task's official protocol (benchmarks/*.yaml); the token cap stays ``settings["max_tokens"]``
    because the official caps count BPE tokens and would cut the other tokenizers short.
    """
    splits, meta = task
    if settings.get("protocol") == "benchmark":
        official = {k: meta["protocol"][k] for k in ("epochs", "lr", "batch_size", "warmup_steps")
                    if k in meta.get("protocol", {})}
        settings = {**settings, **official}
    training.seed_everything(seed)
    model = SequenceClassifier(load_encoder(model_path, tokenizer), meta["num_classes"])
    max_length, truncated = _max_tokens(tokenizer, splits, settings.get("max_tokens", 512))
    result = training.finetune(
        model, tokenizer, _xy(splits["train"]), _xy(splits["dev"]), _xy(splits["test"]),
        epochs=settings["epochs"], lr=settings["lr"], batch_size=settings["batch_size"], max_length=max_length,
        seed=seed, lora_rank=settings.get("lora_rank"), patience=settings.get("patience"),
        warmup_steps=settings.get("warmup_steps", 50), select_metric=meta["metric"], device=_device(device),
        progress=progress)
    return {**result, "max_tokens": max_length, "truncated_fraction": truncated, "settings": settings}


def linear_probe(model_path, tokenizer: Tokenizer, task: tuple[dict, dict], max_tokens: int = 512,
                 seed: int = 0, device: str | None = "auto") -> dict:
    """Frozen pre-trained encoder -> logistic regression on the task's train split, scored on test.
    Also measures the vocabulary usage on the task's training sequences (paper Table 1: share
    of the vocabulary, per codebook level, that the task's data uses)."""
    splits, _ = task
    max_length, truncated = _max_tokens(tokenizer, splits, max_tokens)
    result = training.linear_probe(load_encoder(model_path, tokenizer), tokenizer, _xy(splits["train"]),
                                   _xy(splits["test"]), seed=seed, max_length=max_length, device=_device(device))
    usage = [float((counts > 0).mean()) for counts in usage_counts(tokenizer, list(splits["train"]["sequence"])).values()]
    return {**result, "max_tokens": max_length, "truncated_fraction": truncated, "vocab_usage": usage}


def kmer_baseline_record(task: tuple[dict, dict], profile: str) -> dict:
    """The classical reference row: k-mer (3-6) spectrum + logistic regression on the task's
    train split, scored on test. Deterministic (lbfgs), so one run stands for every seed."""
    from vqdna.analysis import BASELINE_NAME, kmer_spectrum_baseline

    splits, meta = task
    result = kmer_spectrum_baseline(splits["train"], splits["test"], seed=0)
    return {"stage": "baseline", "suite": meta["suite"], "task": meta["task"], "tokenizer": BASELINE_NAME,
            "seed": 0, "metric": meta["metric"], **{k: float(result[k]) for k in ("mcc", "macro_f1", "accuracy")},
            "deviations": deviation_tags(meta.get("deviations", [])), "deviation_details": meta.get("deviations", []),
            "paper": meta.get("paper", {}),
            "ablation": None, "profile": profile}


def write_kmer_baseline(task_dir, out_path, profile: str) -> None:
    """The baseline job: prepared task folder -> metrics JSON."""
    from vqdna import data

    record = kmer_baseline_record(data.read_task(task_dir), profile)
    Path(out_path).write_text(json.dumps(record, indent=2))


def evaluation_record(stage: str, task: tuple[dict, dict], name: str, seed: int, result: dict, profile: str,
                      settings: dict | None = None) -> dict:
    """The metrics JSON of a fine-tuning / linear-probe job: test scores (fractions), the task's
    primary metric, the paper's published numbers and every protocol deviation."""
    _, meta = task
    deviations = deviation_tags(meta.get("deviations", [])) + profile_deviations(profile)
    if stage == "finetune" and (settings or {}).get("protocol") != "benchmark":
        deviations.append(SHORT_FINETUNE)
    notes = []  # tokenizer-specific conditions: shown beside the score, not a protocol group
    if result["truncated_fraction"] > 0:
        notes.append(f"{TRUNCATED} to {result['max_tokens']} tokens")
    return {
        "stage": stage, "suite": meta["suite"], "task": meta["task"], "tokenizer": name, "seed": seed,
        "metric": meta["metric"], **{k: float(result["test"][k]) for k in ("mcc", "macro_f1", "accuracy")},
        "deviations": sorted(set(deviations)), "deviation_details": meta.get("deviations", []),
        "notes": notes, "paper": meta.get("paper", {}), "ablation": ablation_of(name),
        "profile": profile, "settings": result.get("settings", settings), "max_tokens": result["max_tokens"],
        "truncated_fraction": result["truncated_fraction"], "confusion_matrix": result["confusion_matrix"],
        "vocab_usage": result.get("vocab_usage"),
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
             "- [Summary notebook](summary/summary.html) · [Efficiency](summary/efficiency.html)"]
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
