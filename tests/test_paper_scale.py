"""The paper's model sizes (config/paper.yaml) train on CPU with micro-batches accumulated to the
paper's effective batch: VQ-VAE and HRQ (1024 windows per step) and the BERT-base encoder over
the HRQ's codes (2048 sequences per step), two optimiser steps each.

To fit a CPU test the *sequences* are short (8 bp windows for the tokenizers, 1 bp windows =
3 tokens for the encoder) while widths, depths, codebooks and batch sizes are the paper's; the
compute is still ~1e12 FLOPs per encoder step, hence ``slow``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from vqdna.core.seed import seed_everything
from vqdna.model.vqvae import VQVAE, VQVAEConfig
from vqdna.tokenizers import build_tokenizer
from vqdna.train import stages
from vqdna.train.loop import RunConfig
from vqdna.train.mlm import MLMTraining, pretrain_mlm
from vqdna.train.vqvae_trainer import VQTraining, fit_vqvae
from vqdna.workflow import study

PAPER = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "paper.yaml").read_text())


def _count_forwards(module: torch.nn.Module) -> list:
    """Training-mode forward passes of ``module`` (evaluation passes are not counted)."""
    calls = []
    module.register_forward_hook(lambda m, *_: calls.append(1) if m.training else None)
    return calls


@pytest.mark.slow
def test_paper_size_vqvae_hrq_and_encoder_take_two_accumulated_steps(yeast_chromosome):
    seq = yeast_chromosome
    windows = [seq[i : i + 8] for i in range(0, 8 * 1200, 8)]
    train, val = windows[:1100], windows[1100:1116]
    tokenizers = {}
    for name in ("vq", "hrq"):
        spec = study.tokenizer_spec(PAPER, name)
        assert spec["batch_size"] == 1024 and spec["dim"] == 384 and spec["depth"] == 6
        seed_everything(0)
        model = VQVAE(VQVAEConfig.from_spec(spec))
        forwards = _count_forwards(model)
        history = fit_vqvae(
            model,
            train,
            val,
            VQTraining(
                steps=2, batch_size=spec["batch_size"], lr=spec["lr"], eval_every=2, micro_batch_size=128
            ),
            0,
            run=RunConfig(progress=False),
        )
        assert len(forwards) == 2 * 1024 // 128  # 8 micro-batches per optimiser step
        assert history[-1]["step"] == 2 and torch.isfinite(torch.tensor(history[-1]["loss"]))
        assert model.level_sizes == [512, 1024][: spec["levels"]]
        tokenizers[name] = build_tokenizer(name, model=model.cpu().eval())

    settings = {**PAPER["pretrain"], "steps": 2, "micro_batch_size": 256}
    mlm = stages.build_masked_lm(tokenizers["hrq"], PAPER["encoder"], seed=0)
    assert 85e6 < sum(p.numel() for p in mlm.encoder.parameters() if p.requires_grad) < 87e6  # BERT-base
    before = mlm.heads[0].weight.detach().clone()
    forwards = _count_forwards(mlm)
    history = pretrain_mlm(
        mlm,
        tokenizers["hrq"],
        [seq[i] for i in range(2048)],
        MLMTraining(
            steps=2,
            batch_size=settings["batch_size"],
            lr=settings["lr"],
            mask_ratio=settings["mask_ratio"],
            max_length=settings["max_tokens"],
            micro_batch_size=settings["micro_batch_size"],
        ),
        run=RunConfig(progress=False),
    )
    assert len(forwards) == 2 * 2048 // 256
    assert history[-1]["step"] == 2 and torch.isfinite(torch.tensor(history[-1]["train_loss"]))
    assert not torch.equal(before, mlm.heads[0].weight)
