"""The pretext baselines (vqdna.train.pretext) on real genome windows: what position alone and what
the visible neighbours explain of the masked targets."""

import pytest
import torch

from vqdna.data.genomes import embedded_genomes, read_contigs
from vqdna.tokenizers.char import CharTokenizer
from vqdna.tokenizers.kmer import KmerTokenizer
from vqdna.train import mlm, pretext
from vqdna.train.batches import tokenize_all


@pytest.fixture(scope="module")
def windows():
    genome = embedded_genomes()[0]
    sequence = "".join(read_contigs(genome["fasta"]).values()).upper()
    sequence = "".join(c for c in sequence if c in "ACGT")
    return [sequence[i : i + 128] for i in range(0, 128 * 1200, 128)]


def _baselines(tokenizer, windows, span=1, mask_ratio=0.25):
    ids, _ = tokenize_all(tokenizer, windows[:1000], 140)
    v_ids, _ = tokenize_all(tokenizer, windows[1000:], 140)
    v_masked, v_at = mlm.mask_tokens(v_ids, mask_ratio, torch.Generator().manual_seed(1), span=span)
    return (
        mlm.unigram_loss(tokenizer, ids, v_ids, v_at),
        pretext.position_loss(tokenizer, ids, v_ids, v_at),
        pretext.neighbour_loss(
            tokenizer, mlm._masked_copies(ids, mask_ratio, span, 0), (v_ids, v_masked, v_at)
        ),
    )


def test_position_explains_the_tail_slot_of_non_overlapping_kmers(windows):
    unigram, position, _ = _baselines(KmerTokenizer(k=6, stride=6), windows)
    assert position < unigram - 0.05  # 21 6-mers and 2 single nucleotides per 128 bp window


def test_neighbours_fix_overlapping_kmers_unless_the_span_hides_them(windows):
    tokenizer = KmerTokenizer(k=6, stride=1)
    unigram, position, token_masked = _baselines(tokenizer, windows, span=1)
    assert token_masked < 0.5 * unigram  # a visible neighbour shares 5 of the 6 bases
    _, _, span_masked = _baselines(tokenizer, windows, span=6)
    assert token_masked < span_masked <= unigram + 1e-9


def test_baselines_are_never_above_the_unigram_loss(windows):
    unigram, position, neighbour = _baselines(CharTokenizer(), windows)
    assert position <= unigram + 1e-9 and neighbour <= unigram + 1e-9
    assert neighbour < unigram  # neighbouring bases are not independent in a real genome
