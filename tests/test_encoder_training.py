"""Encoder, heads, LoRA and the training loops on real sequence: yeast chromosome I windows for
masked modeling, a subsample of GUE prom_core_tata (human core promoters) for fine-tuning."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from vqdna.core.metrics import classification_metrics, confusion
from vqdna.core.seed import seed_everything
from vqdna.model.checkpoint import load_checkpoint, save_checkpoint
from vqdna.model.encoder import (
    CodebookEmbedding,
    EncoderConfig,
    LoRALinear,
    MaskedLM,
    SequenceClassifier,
    TransformerEncoder,
    apply_lora,
    sinusoidal_positions,
)
from vqdna.tokenizers import build_tokenizer
from vqdna.train.classify import FinetuneTraining, embed_sequences, finetune, linear_probe
from vqdna.train.loop import RunConfig
from vqdna.train.mlm import MLMTraining, mask_tokens, pretrain_mlm

TINY = EncoderConfig(layers=1, dim=32, heads=2)


@pytest.fixture(scope="module")
def char():
    return build_tokenizer("char")


@pytest.fixture(scope="module")
def tata(shared_data):
    """Real GUE task, subsampled (seeded) to keep the tests short: 384 train, 128 dev, 128 test."""
    folder = shared_data / "GUE" / "prom" / "prom_core_tata"
    return tuple(
        pd.read_csv(folder / f"{split}.csv").sample(n=n, random_state=0).reset_index(drop=True)
        for split, n in (("train", 384), ("dev", 128), ("test", 128))
    )


def classifier(tokenizer, seed=0, config=TINY, num_classes=2):
    seed_everything(seed)
    return SequenceClassifier(TransformerEncoder.from_tokenizer(tokenizer, config), num_classes)


def test_forward_shapes_and_padding(char, genome_windows):
    train, _ = genome_windows
    kmer = build_tokenizer("kmer", k=3, stride=3)
    for tok in (char, kmer):
        batch = tok.encode_batch([train[0], train[1][:50]], max_length=128)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        encoder = TransformerEncoder.from_tokenizer(tok, TINY)
        assert encoder(ids, mask).shape == (2, ids.shape[1], TINY.dim)
        mlm = MaskedLM(encoder, tok.mlm_target_sizes)
        logits, loss = mlm(ids, mask)
        assert loss is None and logits[0].shape == (2, ids.shape[1], tok.vocab_size)
        for pooling in ("mean", "cls"):
            model = SequenceClassifier(encoder, 3, pooling=pooling).eval()
            out = model(ids, mask)
            assert out.shape == (2, 3)
            # padding must not change a row's result: the short row alone vs. in the padded batch
            alone = tok.encode_batch([train[1][:50]], max_length=128)
            torch.testing.assert_close(out[1], model(alone["input_ids"], alone["attention_mask"])[0])
    assert sinusoidal_positions(5000, 32).isfinite().all()


def test_mask_tokens_ratio_and_specials(char, genome_windows):
    ids = char.encode_batch(genome_windows[0][:8], max_length=130)["input_ids"]
    masked, positions = mask_tokens(ids, 0.25, torch.Generator().manual_seed(0))
    assert (positions.sum(1) == 32).all()  # 25% of 128 regular tokens per row
    assert not positions[ids < 5].any() and (masked[positions] == 4).all()
    assert torch.equal(masked[~positions], ids[~positions])
    again, _ = mask_tokens(ids, 0.25, torch.Generator().manual_seed(0))
    assert torch.equal(masked, again)


def test_pretrain_loss_decreases(char, genome_windows):
    train, held_out = genome_windows
    seed_everything(0)
    model = MaskedLM(TransformerEncoder.from_tokenizer(char, TINY), char.mlm_target_sizes)
    history = pretrain_mlm(
        model,
        char,
        train[:512],
        MLMTraining(steps=60, batch_size=16, lr=2e-3, warmup_steps=5, eval_every=20),
        val_sequences=held_out[:64],
        run=RunConfig(progress=False),
    )
    assert [h["step"] for h in history] == [20, 40, 60]
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.2
    assert 0.2 < history[-1]["val_accuracy"] < 1


def test_pretraining_learns_beyond_frequencies_given_position(char):
    """Learning from context, shown against the best predictor that ignores the sequence: on
    windows of one 160 bp genome region (which context pins down), 400 steps end clearly below
    the position baseline of the same held-out targets. A model at chance (ln 4 = 1.386 nats) or
    at the base frequencies (about 1.23 here) fails this; the old check (< 1.45) did not."""
    import random

    from vqdna.data.genomes import embedded_genomes, read_contigs

    region = "".join(read_contigs(embedded_genomes()[0]["fasta"]).values()).upper()[5000:5160]
    rng = random.Random(0)
    windows = [region[s : s + 64] for s in (rng.randrange(0, len(region) - 64) for _ in range(600))]
    seed_everything(0)
    model = MaskedLM(TransformerEncoder.from_tokenizer(char, TINY), char.mlm_target_sizes)
    history = pretrain_mlm(
        model,
        char,
        windows[:500],
        MLMTraining(steps=400, batch_size=32, lr=5e-3, warmup_steps=5, eval_every=100),
        val_sequences=windows[500:],
        run=RunConfig(progress=False),
    )
    last = history[-1]
    assert last["position_loss"] <= last["unigram_loss"]
    assert last["val_loss"] < last["position_loss"] - 0.05, last


def test_finetune_uses_best_dev_checkpoint(char, tata):
    from vqdna.train.batches import tokenize_all
    from vqdna.train.classify import _evaluate

    train, dev, test = tata
    model = classifier(char)
    result = finetune(
        model,
        char,
        train,
        dev,
        test,
        FinetuneTraining(epochs=3, lr=3e-3, batch_size=32, max_length=80, eval_every=4, warmup_steps=4),
        progress=False,
    )
    assert len(result["history"]) == 9
    for value in (*result["test"].values(), *result["dev"].values()):
        assert math.isfinite(value)
    assert result["dev"]["mcc"] == max(h["dev_mcc"] for h in result["history"])
    assert result["n_predictions"] == 128 and np.sum(result["confusion_matrix"]) == 128
    # the returned model carries the best-dev weights: re-evaluating reproduces both reports
    for split, report in ((dev, result["dev"]), (test, result["test"])):
        ids, mask = tokenize_all(char, split["sequence"], 80)
        again, _ = _evaluate(model, ids, mask, split["label"].to_numpy(), 32, next(model.parameters()).device)
        assert again == pytest.approx(report)


def test_lora_trains_only_adapters_and_head(char, tata):
    train, dev, test = tata
    model = classifier(char).eval()
    ids = char.encode_batch(train["sequence"][:4].tolist())["input_ids"]
    before = model(ids)
    torch.testing.assert_close(apply_lora(classifier(char), rank=4).eval()(ids), before)  # B starts at 0
    base = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    head = {k: v.clone() for k, v in model.head.state_dict().items()}
    result = finetune(
        model,
        char,
        train,
        dev,
        test,
        FinetuneTraining(epochs=1, lr=3e-3, lora_rank=4, warmup_steps=2),
        progress=False,
    )
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name or name.startswith("head.") for name in trainable)
    assert sum(isinstance(m, LoRALinear) for m in model.modules()) == 4 * TINY.layers
    assert result["trainable_params"] < result["total_params"]
    after = model.encoder.state_dict()
    for name, value in base.items():  # frozen base weights: the same tensors under .base
        key = (
            name if name in after else name.replace(".weight", ".base.weight").replace(".bias", ".base.bias")
        )
        assert torch.equal(after[key], value), name
    assert any(not torch.equal(model.head.state_dict()[k], v) for k, v in head.items())
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_b" in n)


def test_same_seed_same_metrics(char, tata, genome_windows):
    train, dev, test = tata
    runs = [
        finetune(
            classifier(char, seed=3),
            char,
            train,
            dev,
            test,
            FinetuneTraining(epochs=1, lr=3e-3, warmup_steps=2),
            seed=3,
            device="cpu",
            progress=False,
        )
        for _ in range(2)
    ]
    assert runs[0]["test"] == runs[1]["test"] and runs[0]["history"] == runs[1]["history"]
    histories = []
    for _ in range(2):
        seed_everything(5)
        model = MaskedLM(TransformerEncoder.from_tokenizer(char, TINY), char.mlm_target_sizes)
        histories.append(
            pretrain_mlm(
                model,
                char,
                genome_windows[0][:64],
                MLMTraining(steps=6, batch_size=8, eval_every=3),
                seed=5,
                run=RunConfig(device="cpu", progress=False),
            )
        )
    assert [h["train_loss"] for h in histories[0]] == [h["train_loss"] for h in histories[1]]


def test_non_finite_loss_names_the_step(char, tata, genome_windows):
    model = MaskedLM(TransformerEncoder.from_tokenizer(char, TINY), char.mlm_target_sizes)
    with torch.no_grad():
        model.heads[0].bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"pretrain step 1 \(sequence indices"):
        pretrain_mlm(
            model,
            char,
            genome_windows[0][:32],
            MLMTraining(steps=3, batch_size=8),
            run=RunConfig(progress=False),
        )
    train, dev, test = tata
    model = classifier(char)
    with torch.no_grad():
        model.head[-1].bias.fill_(float("inf"))
    with pytest.raises(FloatingPointError, match=r"finetune epoch 1 step 1"):
        finetune(model, char, train, dev, test, FinetuneTraining(epochs=1), progress=False)


def test_codebook_embedding_stays_frozen(genome_windows, tmp_path):
    vqvae = pytest.importorskip("vqdna.model.vqvae")
    seed_everything(0)
    config = vqvae.VQVAEConfig(stem_dim=32, dim=32, depth=2, codebook_size=16, code_dim=24, levels=2)
    tokenizer = build_tokenizer("hrq", model=vqvae.VQVAE(config))
    encoder = TransformerEncoder.from_tokenizer(tokenizer, TINY)
    model = MaskedLM(encoder, tokenizer.mlm_target_sizes)
    assert [h.out_features for h in model.heads] == [16, 32]  # one head per level
    codebooks = [c.clone() for c in tokenizer.codebooks()]
    buffers = {k: v.clone() for k, v in encoder.embed.named_buffers()}
    proj = encoder.embed.proj.weight.clone()
    assert len(buffers) == 2 and {f"encoder.embed.{k}" for k in buffers} <= set(model.state_dict())
    history = pretrain_mlm(
        model,
        tokenizer,
        genome_windows[0][:64],
        MLMTraining(steps=5, batch_size=8, eval_every=5),
        run=RunConfig(progress=False),
    )
    assert math.isfinite(history[-1]["train_loss"])
    assert all(torch.equal(v, dict(encoder.embed.named_buffers())[k]) for k, v in buffers.items())
    assert all(torch.equal(a, b.cpu()) for a, b in zip(codebooks, tokenizer.codebooks()))
    assert not torch.equal(proj, encoder.embed.proj.weight)  # the projection does train
    # the model's token vectors are the mean of the levels' (standardised) code vectors, projected
    ids = tokenizer.encode_batch(genome_windows[1][:2], max_length=40)["input_ids"][:, 1:-1]
    levels = tokenizer.ids_to_levels(ids)
    with torch.no_grad():
        mean_code = sum(encoder.embed.codebook(level)[levels[..., level]] for level in range(2)) / 2
        torch.testing.assert_close(encoder.embed(ids), encoder.embed.norm(encoder.embed.proj(mean_code)))
    # checkpoints are self-contained: another tokenizer's codebooks are overwritten on load
    save_checkpoint(tmp_path / "encoder.pt", encoder)
    seed_everything(1)
    other = TransformerEncoder.from_tokenizer(build_tokenizer("hrq", model=vqvae.VQVAE(config)), TINY)
    assert not torch.equal(other.embed.codebook0, encoder.embed.codebook0)
    load_checkpoint(tmp_path / "encoder.pt", other)
    with torch.no_grad():
        torch.testing.assert_close(other.eval()(ids), encoder.eval()(ids))


def test_embeddings_and_linear_probe(char, tata):
    train, _, test = tata
    encoder = TransformerEncoder.from_tokenizer(char, TINY)
    emb = embed_sequences(encoder, char, test["sequence"].tolist()[:10], batch_size=4, max_length=80)
    assert emb.shape == (10, TINY.dim) and emb.dtype == np.float32 and np.isfinite(emb).all()
    result = linear_probe(encoder, char, (train["sequence"], train["label"]), test, max_length=80)
    assert all(math.isfinite(v) for v in result["test"].values())
    assert np.sum(result["confusion_matrix"]) == len(test)


def test_classification_metrics():
    metrics = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1])
    assert metrics["accuracy"] == 0.75
    assert metrics["mcc"] == pytest.approx(1 / math.sqrt(3))
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert classification_metrics([0, 1, 1], [1, 1, 1])["mcc"] == 0.0
    assert confusion([0, 1], [1, 1], num_classes=3) == [[0, 1, 0], [0, 1, 0], [0, 0, 0]]


def test_codebook_standardisation_ignores_a_common_offset():
    """Trained codebooks share a large offset; the encoder must read the same tokens either way."""
    seed_everything(0)
    codebooks = [torch.randn(8, 6), torch.randn(16, 6)]
    shifted = [c * 3 + 10 for c in codebooks]
    embed = CodebookEmbedding(codebooks, 12)
    other = CodebookEmbedding(shifted, 12)
    other.load_state_dict(
        {k: v for k, v in embed.state_dict().items() if not k.startswith("codebook")}, strict=False
    )
    ids = torch.arange(0, 5 + 8 * 16)
    with torch.no_grad():
        torch.testing.assert_close(embed(ids), other(ids))
        for level in range(2):
            table = embed.codebook(level)
            torch.testing.assert_close(table.mean(0), torch.zeros(6), atol=1e-6, rtol=0)
            assert table.norm(dim=1).mean().item() == pytest.approx(1.0)
    raw = CodebookEmbedding(shifted, 12, standardize=False)
    assert torch.equal(raw.codebook(0), shifted[0])


@pytest.mark.parametrize("num_classes", [2, 3])
def test_lp_ft_head_starts_as_the_linear_probe(char, tata, num_classes):
    """LP-FT: the linear head loaded from the probe predicts what the probe predicts, and the
    probe (step 0) stays a checkpoint candidate, so dev loss never ends above it."""
    from vqdna.train.classify import fit_logistic, init_head_from_probe

    train, dev, test = tata
    if num_classes == 3:  # a third class, so the multinomial path is exercised too
        train = train.assign(label=[i % 3 for i in range(len(train))])
        dev, test = (f.assign(label=[i % 3 for i in range(len(f))]) for f in (dev, test))
    seed_everything(0)
    model = SequenceClassifier(TransformerEncoder.from_tokenizer(char, TINY), num_classes, head="linear")
    init_head_from_probe(model, char, train["sequence"].tolist(), train["label"].to_numpy(), max_length=80)
    features = embed_sequences(model.encoder, char, test["sequence"].tolist(), max_length=80)
    probe = fit_logistic(
        embed_sequences(model.encoder, char, train["sequence"].tolist(), max_length=80),
        train["label"].to_numpy(),
    )
    ids = char.encode_batch(test["sequence"].tolist(), max_length=80)
    with torch.no_grad():
        logits = model.eval()(ids["input_ids"], ids["attention_mask"])
    assert (logits.argmax(-1).numpy() == probe.predict(features)).mean() > 0.99
    np.testing.assert_allclose(torch.softmax(logits, -1).numpy(), probe.predict_proba(features), atol=1e-4)

    seed_everything(0)
    model = SequenceClassifier(TransformerEncoder.from_tokenizer(char, TINY), num_classes, head="linear")
    result = finetune(
        model,
        char,
        train,
        dev,
        test,
        FinetuneTraining(
            epochs=2,
            lr=3e-3,
            batch_size=32,
            max_length=80,
            warmup_steps=4,
            select_metric="loss",
            head_init="probe",
        ),
        progress=False,
    )
    start = result["history"][0]
    assert start["step"] == 0 and result["dev"]["loss"] <= start["dev_loss"]
    assert result["dev"]["loss"] == min(h["dev_loss"] for h in result["history"])
    with pytest.raises(ValueError, match="head='linear'"):
        finetune(
            classifier(char),
            char,
            train,
            dev,
            test,
            FinetuneTraining(epochs=1, head_init="probe"),
            progress=False,
        )
