"""The efficiency columns of the paper's Table 2: parameters, FLOPs, tokens per sequence and
measured throughput. torch is imported only inside the functions that need a model.

FLOPs convention: 2 x the multiply-accumulates of every matrix product, convolution and
attention product in one forward pass (counted by PyTorch's analytic per-operator formulas):
a ``Linear(i, o)`` over T positions costs 2·T·i·o, a ``Conv1d`` 2·L_out·C_out·(C_in/groups)·k
(``ConvTranspose1d`` 2·L_in·C_in·(C_out/groups)·k), and attention over T tokens of width d
4·T²·d (QKᵀ and the weighted sum of V; projections are Linear layers). Biases, norms,
activations, softmax and embedding look-ups are not counted. Tools that report multiply-
accumulates as "FLOPs" (fvcore, thop) give half of this: pass ``macs=True`` to compare.

The paper's Table 2 convention (:func:`paper_conventions`): its FLOPs (tokenizers 0.5 G / 0.6 G,
encoder 1.1 G at 512 bp, for 16 M / 17 M / 86 M parameters) cannot be reproduced from its
sizes by any one convention. Every dense convention is proportional to the parameters that
act per position (2·N·L per sequence, 2·N per token, 6·N per training token, or half of these
as MACs), so it gives the same FLOPs per parameter to all three models, while the paper's
numbers give the encoder 2.4-2.8 times fewer per parameter than the tokenizers (1.1/86 against
0.5/16 and 0.6/17); attention only adds to the encoder. The length at which each paper number
would follow from 2·N·L is 16 positions (VQ), 18 (HRQ) and 6 (encoder). Our convention at the
paper's sizes gives 16.4 / 17.4 / 88 GFLOPs per 512 bp sequence (counted: 14.9 / 15.3 / 97).
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    from vqdna.tokenizers import Tokenizer


def count_parameters(model, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once)."""
    params = {id(p): p for p in model.parameters() if p.requires_grad or not trainable_only}
    return sum(p.numel() for p in params.values())


def estimate_flops(
    model, seq_len: int, make_input: Callable[[int], Any] | None = None, macs: bool = False
) -> int:
    """Forward-pass FLOPs of ``model`` on one sequence of ``seq_len`` positions (see the module
    docstring for the formula). ``make_input(seq_len)`` builds the model's input (default: a
    (1, seq_len) LongTensor of zeros, i.e. token / nucleotide ids); ``macs`` halves the count."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    # PyTorch has no formula for the fused CPU attention kernel: the same one as on GPU
    cpu_attention = {
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: lambda q, k, v, *args, **kwargs: (
            sdpa_flop_count(q, k, v)
        )
    }
    inputs = make_input(seq_len) if make_input else torch.zeros((1, seq_len), dtype=torch.long)
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=cpu_attention) as counter:
            model(*inputs)
    finally:
        model.train(was_training)
    total = counter.get_total_flops()
    return total // 2 if macs else total


def tokens_per_sequence(tokenizer, sequences: Iterable[str]) -> dict:
    """Regular tokens per sequence (no [CLS]/[SEP]) for a tokenizer with ``encode`` or a
    callable: mean, median, min, max, and bp per token over all sequences."""
    encode = tokenizer.encode if hasattr(tokenizer, "encode") else tokenizer
    counts, bases = [], 0
    for seq in sequences:
        counts.append(len(encode(seq)))
        bases += len(seq)
    if not counts:
        raise ValueError("no sequences")
    return {
        "mean": statistics.fmean(counts),
        "median": statistics.median(counts),
        "min": min(counts),
        "max": max(counts),
        "bp_per_token": bases / sum(counts) if sum(counts) else float("nan"),
        "n_sequences": len(counts),
    }


def measure_throughput(
    fn: Callable[[], Any],
    n_items: int,
    min_seconds: float = 1.0,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict:
    """Items per second of ``fn`` (one call processes ``n_items``): ``warmup`` untimed calls,
    then repeated calls until ``min_seconds`` have passed. ``fn`` must block until its work is
    done (on a GPU: end with ``torch.cuda.synchronize()``)."""
    for _ in range(warmup):
        fn()
    calls, start = 0, clock()
    while True:
        fn()
        calls += 1
        elapsed = clock() - start
        if elapsed >= min_seconds:
            break
    return {"items_per_s": calls * n_items / elapsed, "seconds_per_call": elapsed / calls, "calls": calls}


#: the paper's Table 2 (Li et al., ICML 2024): parameters (millions) and GFLOPs at 512 bp
PAPER_TABLE2 = {"VQ-VAE tokenizer": (16, 0.5), "HRQ tokenizer": (17, 0.6), "Transformer encoder": (86, 1.1)}
#: dense FLOPs conventions from a parameter count ``n`` and a sequence length ``length``
CONVENTIONS = {
    "forward FLOPs per sequence, 2NL (ours)": lambda n, length: 2 * n * length,
    "forward MACs per sequence, NL": lambda n, length: n * length,
    "forward FLOPs per token, 2N": lambda n, length: 2 * n,
    "forward MACs per token, N": lambda n, length: n,
    "training FLOPs per token, 6N": lambda n, length: 6 * n,
}


def paper_conventions(table: dict = PAPER_TABLE2, length: int = 512, tolerance: float = 0.1) -> list[dict]:
    """Each convention of :data:`CONVENTIONS` applied to the paper's sizes: GFLOPs beside the
    published number, their ratio, whether it lands within ``tolerance``, and the sequence
    length at which 2·N·L would give the published number. One row per convention x model."""
    rows = []
    for convention, flops in CONVENTIONS.items():
        for model, (millions, published) in table.items():
            ours = flops(millions * 1e6, length) / 1e9
            ratio = ours / published
            rows.append(
                {
                    "convention": convention,
                    "model": model,
                    "params_M": millions,
                    "paper_gflops": published,
                    "gflops": ours,
                    "ratio": ratio,
                    "within": abs(ratio - 1) <= tolerance,
                    "length_for_paper_2NL": published * 1e9 / (2 * millions * 1e6),
                }
            )
    return rows


def efficiency_row(
    name: str,
    model_path,
    tokenizer: Tokenizer,
    sequences: list[str],
    seq_len: int = 512,
    batch_size: int = 32,
    min_seconds: float = 1.0,
    n_sequences: int = 128,
) -> dict:
    """The paper's Table 2 columns for one tokenizer + encoder: parameters and forward FLOPs of
    each at ``seq_len`` bp (the encoder sees as many tokens as the tokenizer makes of ``seq_len``
    bp), tokens per sequence (over ``n_sequences`` sequences spread over the input), and
    measured throughput (tokenizer bp/s, encoder sequences/s)."""
    import torch

    from vqdna.data.corpus import spread_windows
    from vqdna.tokenizers import CodebookTokenizer
    from vqdna.train.stages import load_encoder

    windows = spread_windows([s[:seq_len] for s in sequences if len(s) >= seq_len] or sequences, n_sequences)
    encoder = load_encoder(model_path, tokenizer).eval()
    tokens = tokens_per_sequence(tokenizer, windows)
    n_tokens = int(round(tokens["mean"])) + 2
    row = {
        "tokenizer": name,
        "encoder_params": count_parameters(encoder),
        "encoder_trainable_params": count_parameters(encoder, trainable_only=True),
        "encoder_gflops": estimate_flops(encoder, n_tokens) / 1e9,
        "tokenizer_params": 0,
        "tokenizer_gflops": 0.0,
        "seq_len_bp": len(windows[0]),
        "tokens_per_seq": tokens["mean"],
        "bp_per_token": tokens["bp_per_token"],
    }
    if isinstance(tokenizer, CodebookTokenizer):
        row["tokenizer_params"] = count_parameters(tokenizer.model)
        row["tokenizer_gflops"] = estimate_flops(tokenizer.model, len(windows[0])) / 1e9
    batch = windows[:batch_size]
    row["tokenizer_bp_per_s"] = measure_throughput(
        lambda: tokenizer.encode_batch(batch), sum(map(len, batch)), min_seconds
    )["items_per_s"]
    encoded = tokenizer.encode_batch(batch)
    with torch.no_grad():
        row["encoder_seqs_per_s"] = measure_throughput(
            lambda: encoder(encoded["input_ids"], encoded["attention_mask"]), len(batch), min_seconds
        )["items_per_s"]
    row["total_params"] = row["encoder_params"] + row["tokenizer_params"]
    row["total_gflops"] = row["encoder_gflops"] + row["tokenizer_gflops"]
    # the same counts under the other conventions (vqdna.analysis.efficiency: paper_conventions)
    row["total_gmacs"] = row["total_gflops"] / 2
    row["encoder_gflops_per_token"] = row["encoder_gflops"] / n_tokens
    return row
