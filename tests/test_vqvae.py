"""VQ-VAE / HRQ tokenizer on real yeast chromosome I windows (tests/conftest.py).

The trainings (100 steps, width 32, K=32, EMA decay 0.9) take 7-22 s each on one thread of a
shared 2-core machine (the whole file: 25-90 s, depending on the load) and clear the bars with
margin: over seeds 0-3, 99.7-99.97% held-out reconstruction and 98-100% code usage per level."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from vqdna.core.seed import seed_everything
from vqdna.core.sequence import to_indices
from vqdna.model.quantizer import VectorQuantizer
from vqdna.model.vqvae import VQVAE, VQVAEConfig, heldout_percentages
from vqdna.train.loop import RunConfig
from vqdna.train.vqvae_trainer import VQTraining, fit_vqvae

TINY = dict(stem_dim=16, dim=16, depth=3, codebook_size=16)
SMALL = dict(stem_dim=32, dim=32, depth=2, codebook_size=32, decay=0.9)
FIT = VQTraining(steps=100, batch_size=32, lr=3e-3, warmup_steps=20, eval_every=50)
QUIET = RunConfig(progress=False)


def batch_of(windows, n=4, length=None) -> torch.Tensor:
    return torch.stack([torch.from_numpy(to_indices(w[:length])).long() for w in windows[:n]])


def model_of(seed=0, **config) -> VQVAE:
    seed_everything(seed)
    return VQVAE(VQVAEConfig(**config))


@pytest.fixture(scope="module")
def trained(genome_windows):
    """One seeded small training per tokenizer: {name: (model, held-out stats, seconds)}."""
    train, val = genome_windows
    out = {}
    for name, levels in (("vq", 1), ("hrq", 2)):
        model = model_of(**SMALL, levels=levels)
        start = time.perf_counter()
        fit_vqvae(model, train, val, FIT, 0, QUIET)
        out[name] = (model, heldout_percentages(model, val, batch_size=256), time.perf_counter() - start)
    return out


@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("stride", [1, 2, 4])
@pytest.mark.parametrize("length", [128, 127])
def test_forward_shapes(genome_windows, levels, stride, length):
    model = model_of(**TINY, levels=levels, stride=stride, code_dim=8)
    idx = batch_of(genome_windows[0], n=3, length=length)
    out = model(idx)
    tokens = -(-length // stride)
    assert out.logits.shape == (3, length, 4)
    assert out.indices.shape == (3, tokens, levels) and out.indices.dtype == torch.long
    assert out.quantized.shape == (3, tokens, 8)
    assert model.level_sizes == [16 * 2**n for n in range(levels)]
    for n, size in enumerate(model.level_sizes):
        assert 0 <= int(out.indices[..., n].min()) and int(out.indices[..., n].max()) < size
    assert torch.isfinite(out.loss) and out.loss > 0
    assert torch.equal(model.tokenize(idx), model.eval()(idx).indices)


def test_hrq_taps_are_evenly_spaced():
    assert model_of(**{**TINY, "depth": 6}, levels=1).taps == [6]
    assert model_of(**{**TINY, "depth": 6}, levels=2).taps == [3, 6]
    assert model_of(**{**TINY, "depth": 6}, levels=3).taps == [2, 4, 6]
    with pytest.raises(ValueError):
        VQVAE(VQVAEConfig(**TINY, levels=4))


def test_hrq_levels_follow_eq6(genome_windows):
    """Level n quantizes 2 Z_n - e(M_{n-1}); the token embedding is the mean of the level codes."""
    model = model_of(**TINY, levels=3, code_dim=8).eval()
    seen = {}
    for n in range(3):
        model.pre_quant[n].register_forward_hook(lambda m, i, out, n=n: seen.__setitem__(("z", n), out))
        model.quantizers[n].register_forward_hook(lambda m, i, out, n=n: seen.__setitem__(("h", n), i[0]))
    out = model(batch_of(genome_windows[0]))
    codes = [model.codebooks()[n][out.indices[..., n]] for n in range(3)]
    torch.testing.assert_close(seen["h", 0], seen["z", 0])
    for n in (1, 2):
        torch.testing.assert_close(seen["h", n], 2 * seen["z", n] - codes[n - 1])
    torch.testing.assert_close(out.quantized, torch.stack(codes).mean(0))


def test_straight_through_gradients_reach_encoder_and_decoder(genome_windows):
    model = model_of(**TINY, levels=2).train()
    model(batch_of(genome_windows[0])).loss.backward()
    for name in (
        "stem.weight",
        "encoder.0.dwconv.weight",
        "pre_quant.0.0.weight",
        "decoder.0.mlp.0.weight",
        "head.weight",
    ):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    # the reconstruction term alone reaches the stem: only possible through the straight-through path
    model.zero_grad()
    model(batch_of(genome_windows[0])).recon_loss.backward()
    assert model.stem.weight.grad.abs().sum() > 0


def test_ema_updates_codebook_without_gradient(genome_windows):
    model = model_of(**TINY).train()
    quantizer = model.quantizers[0]
    assert not quantizer.codebook.requires_grad
    assert all(p is not quantizer.codebook for p in model.parameters())
    idx = batch_of(genome_windows[0], n=8)
    model(idx)  # first training forward: data init
    before = quantizer.codebook.clone()
    model(idx).loss.backward()
    assert not torch.equal(before, quantizer.codebook)
    assert quantizer.codebook.grad is None
    model.eval()(idx)  # eval mode: no update
    after_train = quantizer.codebook.clone()
    model(idx)
    assert torch.equal(after_train, quantizer.codebook)


def test_codebook_loss_mode_trains_codebook_by_gradient(genome_windows):
    model = model_of(**TINY, ema=False).train()
    quantizer = model.quantizers[0]
    assert any(p is quantizer.codebook for p in model.parameters())
    idx = batch_of(genome_windows[0], n=8)
    model(idx)  # data init
    before = quantizer.codebook.detach().clone()
    model(idx).loss.backward()
    assert torch.equal(before, quantizer.codebook.detach())  # no EMA update
    assert quantizer.codebook.grad is not None and quantizer.codebook.grad.abs().sum() > 0


def test_dead_code_restart_replaces_unused_codes(genome_windows):
    torch.manual_seed(0)
    features = torch.randn(512, 8)  # stand-in encoder outputs
    for threshold, replaced in ((0.0, False), (0.5, True)):
        quantizer = VectorQuantizer(16, 8, decay=0.8, dead_code_threshold=threshold).train()
        quantizer(features, torch.Generator().manual_seed(0))  # data init
        quantizer.codebook[:4] = 1e3  # four codes nobody will pick, EMA count 1
        quantizer.embed_sum[:4] = 1e3
        quantizer.cluster_size[:4] = 1.0
        generator = torch.Generator().manual_seed(0)
        for _ in range(4):  # count 0.8**4 < 0.5: restarted at the 4th step
            quantizer(features, generator)
        far = quantizer.codebook[:4].norm(dim=1) > 100
        assert bool((~far).all()) == replaced
        if replaced:  # restarted from actual batch vectors
            assert all((features == code).all(1).any() for code in quantizer.codebook[:4])


def test_n_positions_are_not_scored(genome_windows):
    model = model_of(**TINY).eval()
    window = genome_windows[0][0]
    masked = window[:40] + "N" * 48 + window[88:]
    out = model(batch_of([masked]))
    assert torch.isfinite(out.loss)
    stats = heldout_percentages(model, [masked, window[:100]])
    assert stats["n_tokens"] == 228 and stats["bp_per_token"] == 1.0


@pytest.mark.parametrize("name", ["vq", "hrq"])
def test_small_training_reconstructs_held_out_windows(trained, name):
    model, stats, seconds = trained[name]
    assert stats["recon_accuracy"] >= 95.0, stats
    assert len(stats["code_usage"]) == model.config.levels
    assert min(stats["code_usage"]) >= 50.0, stats
    assert all(p > 1 for p in stats["perplexity"])
    print(f"{name}: {seconds:.1f} s, {stats}")


def test_same_seed_gives_identical_runs(genome_windows):
    train, val = genome_windows
    runs = []
    for _ in range(2):
        model = model_of(**SMALL, levels=2, dead_code_threshold=0.5)  # exercises every random draw
        history = fit_vqvae(
            model, train, val[:64], dataclasses.replace(FIT, steps=20, eval_every=10), 3, QUIET
        )
        runs.append((history, model.state_dict()))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][key], runs[1][1][key]) for key in runs[0][1])


def test_mixed_length_windows_are_grouped(genome_windows):
    train, val = genome_windows
    mixed = [w[:100] for w in train[:50]] + train[50:100]
    model = model_of(**TINY, stride=2)
    history = fit_vqvae(
        model,
        mixed,
        [val[0][:99], val[1]],
        VQTraining(steps=4, batch_size=8, lr=1e-3, eval_every=2),
        0,
        run=RunConfig(progress=False),
    )
    assert [record["step"] for record in history] == [2, 4]
    assert heldout_percentages(model, [val[0][:99], val[1]])["n_tokens"] == 50 + 64


def test_heldout_batches_are_bounded_in_bp_and_give_the_same_numbers(trained, yeast_chromosome):
    """Long held-out sequences (species tasks: 32 kbp) go through in batches of at most
    ``max_batch_bp`` bases; how they are batched changes no number."""
    model = trained["hrq"][0]
    long = [yeast_chromosome[i * 4000 : (i + 1) * 4000] for i in range(6)]
    whole = heldout_percentages(model, long)
    seen = []
    hook = model.register_forward_pre_hook(lambda module, args: seen.append(args[0].numel()))
    try:
        bounded = heldout_percentages(model, long, max_batch_bp=8000)
    finally:
        hook.remove()
    assert seen == [8000, 8000, 8000]
    assert whole == bounded and whole["n_tokens"] == 6 * 4000


def test_save_load_round_trip_and_code_vectors(trained, genome_windows, tmp_path):
    model = trained["hrq"][0]
    idx = batch_of(genome_windows[1], n=16)
    model.save(tmp_path / "hrq.pt")
    loaded = VQVAE.load(tmp_path / "hrq.pt")
    assert loaded.config == model.config
    tokens = model.tokenize(idx)
    assert torch.equal(tokens, loaded.tokenize(idx))
    assert all(torch.equal(a, b) for a, b in zip(model.codebooks(), loaded.codebooks()))
    assert [c.shape for c in loaded.codebooks()] == [(32, 32), (64, 32)]
    # the token embedding is the mean of the levels' code vectors, as the decoder sees it
    torch.testing.assert_close(loaded.codes_to_vectors(tokens), loaded(idx).quantized)
