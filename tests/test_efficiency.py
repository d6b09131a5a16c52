"""Parameters, FLOPs, tokens per sequence and throughput on modules with hand-known answers."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vqdna.analysis import efficiency as ef


class Tiny(nn.Module):
    """Embedding(5, 4) -> Conv1d(4, 8, k=5) -> Linear(8, 16) -> single-head self-attention."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.conv = nn.Conv1d(4, 8, kernel_size=5, padding=2)
        self.proj = nn.Linear(8, 16)

    def forward(self, ids):
        x = self.conv(self.embed(ids).transpose(1, 2)).transpose(1, 2)  # (1, T, 8)
        h = self.proj(x)[:, None]  # (1, 1, T, 16)
        return F.scaled_dot_product_attention(h, h, h)


def test_count_parameters():
    model = Tiny()
    assert ef.count_parameters(model) == 5 * 4 + (4 * 8 * 5 + 8) + (8 * 16 + 16)
    model.embed.weight.requires_grad_(False)
    assert ef.count_parameters(model, trainable_only=True) == (4 * 8 * 5 + 8) + (8 * 16 + 16)


@pytest.mark.parametrize("length", [10, 64])
def test_estimate_flops_matches_hand_count(length):
    conv = 2 * length * 8 * 4 * 5
    linear = 2 * length * 8 * 16
    attention = 4 * length * length * 16
    model = Tiny()
    assert ef.estimate_flops(model, length) == conv + linear + attention
    assert ef.estimate_flops(model, length, macs=True) == (conv + linear + attention) // 2
    assert model.training  # mode restored


def test_estimate_flops_transposed_conv_and_custom_input():
    model = nn.ConvTranspose1d(6, 4, kernel_size=3, stride=2, groups=2)
    flops = ef.estimate_flops(model, 20, make_input=lambda n: torch.zeros(1, 6, n))
    assert flops == 2 * 20 * 6 * (4 // 2) * 3


def test_tokens_per_sequence_with_encode_and_callable():
    class Kmer:
        def encode(self, seq):
            return [0] * (len(seq) - 2)  # overlapping 3-mers

    stats = ef.tokens_per_sequence(Kmer(), ["ACGTAC", "ACGTACGTAC"])
    assert stats["mean"] == 6 and stats["min"] == 4 and stats["max"] == 8 and stats["n_sequences"] == 2
    assert stats["bp_per_token"] == pytest.approx(16 / 12)
    assert ef.tokens_per_sequence(lambda s: list(s), ["ACG"])["bp_per_token"] == 1


def test_measure_throughput_with_a_fake_clock():
    ticks = itertools.count(0, 0.25)
    calls = []
    result = ef.measure_throughput(
        lambda: calls.append(1), n_items=10, min_seconds=1.0, warmup=2, clock=lambda: next(ticks)
    )
    assert result["calls"] == 4 and len(calls) == 6
    assert result["items_per_s"] == pytest.approx(40.0) and result["seconds_per_call"] == pytest.approx(0.25)


def test_no_dense_convention_reproduces_the_papers_table2_flops():
    """The paper's FLOPs (0.5 / 0.6 / 1.1 G at 512 bp for 16 M / 17 M / 86 M parameters) give the
    encoder 2.4-2.8x fewer FLOPs per parameter than the tokenizers: no one convention fits all three."""
    from vqdna.analysis.efficiency import CONVENTIONS, paper_conventions

    rows = paper_conventions()
    assert len(rows) == 3 * len(CONVENTIONS)
    for convention in CONVENTIONS:
        mine = [r for r in rows if r["convention"] == convention]
        assert not all(r["within"] for r in mine), convention
    lengths = {r["model"]: r["length_for_paper_2NL"] for r in rows if r["convention"].endswith("(ours)")}
    assert round(lengths["VQ-VAE tokenizer"]) == 16 and round(lengths["Transformer encoder"]) == 6
    assert lengths["HRQ tokenizer"] / lengths["Transformer encoder"] > 2.4


def test_two_n_l_matches_the_counted_flops_of_a_convolutional_tokenizer():
    """2·N·L (the paper-size conventions above) is what estimate_flops counts for the VQ-VAE,
    whose parameters all act once per position (norms and biases aside)."""
    from vqdna.analysis.efficiency import count_parameters, estimate_flops
    from vqdna.model.vqvae import VQVAE, VQVAEConfig

    model = VQVAE(VQVAEConfig(stem_dim=32, dim=48, depth=2, codebook_size=16))
    counted = estimate_flops(model, 256)
    assert abs(counted / (2 * count_parameters(model) * 256) - 1) < 0.05
