"""Same config, same seed -> the same record, bit for bit, for every stage the workflow runs:
tokenizer training, pre-training (model construction included), fine-tuning, the linear probe,
the k-mer baseline and the summary statistics. Each stage runs twice in one process on small
real inputs; records are compared exactly, timings aside."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from vqdna.analysis import baselines, claims, tables
from vqdna.analysis.compare import TIMING_KEYS, _differences
from vqdna.tokenizers import build_tokenizer
from vqdna.train import stages
from vqdna.train.tokenizer import train_tokenizer
from vqdna.workflow import study
from vqdna.workflow.records import collect_metrics, evaluation_record, pretrain_record, tokenizer_record

TINY_VQVAE = {
    "stem_dim": 16,
    "dim": 16,
    "depth": 2,
    "codebook_size": 8,
    "code_dim": None,
    "codebook_growth": 2,
    "ema": True,
    "decay": 0.9,
    "commitment_weight": 0.5,
    "dead_code_threshold": 1,
    "stride": 1,
    "steps": 8,
    "batch_size": 16,
    "lr": 0.003,
    "warmup_steps": 2,
}
ENCODER = {"layers": 1, "dim": 32, "heads": 2, "mlp_ratio": 2, "dropout": 0.0}
PRETRAIN = {"steps": 6, "batch_size": 8, "lr": 0.002, "warmup_steps": 2, "mask_ratio": 0.25, "max_tokens": 66}
FINETUNE = {"epochs": 1, "lr": 0.001, "batch_size": 16, "lora_rank": None, "patience": 1, "max_bp": 64}


def same(a: dict, b: dict) -> None:
    """Two records are equal in every field but timings."""
    assert _differences(json.loads(json.dumps(a, default=str)), json.loads(json.dumps(b, default=str))) == []


@pytest.fixture(scope="module")
def windows(genome_windows):
    train, val = genome_windows
    return [w[:64] for w in train[:200]], [w[:64] for w in val[:40]]


@pytest.fixture(scope="module")
def task(genome_windows):
    """A real two-class task: yeast windows with high vs low GC content."""
    train, val = genome_windows
    seqs = [w[:64] for w in train[200:600]] + [w[:64] for w in val[40:200]]
    gc = np.array([(s.count("G") + s.count("C")) / len(s) for s in seqs])
    labels = (gc > np.median(gc)).astype(int)
    frame = pd.DataFrame({"sequence": seqs, "label": labels})
    splits = {"train": frame.iloc[:300], "dev": frame.iloc[300:400], "test": frame.iloc[400:]}
    meta = {
        "suite": "test",
        "task": "gc",
        "metric": "mcc",
        "num_classes": 2,
        "deviations": [],
        "max_length": 64,
    }
    return splits, meta


@pytest.mark.parametrize("kind", ["vq", "hrq", "bpe"])
def test_tokenizer_training_repeats(kind, windows):
    spec = (
        {"type": kind, **TINY_VQVAE, "levels": 2 if kind == "hrq" else 1}
        if kind != "bpe"
        else {"type": "bpe", "vocab_size": 64}
    )
    records, ids = [], []
    for _ in range(2):
        tokenizer, _ = train_tokenizer(spec, *windows, seed=3)
        records.append(
            tokenizer_record(kind, spec, stages.tokenizer_statistics(tokenizer, windows[1]), "test", seed=3)
        )
        ids.append(tokenizer.encode_batch(windows[1])["input_ids"])
    same(*records)
    assert torch.equal(*ids)


def _pretrained(tokenizer, windows, tmp_path, name, seed=1):
    model = stages.build_masked_lm(tokenizer, ENCODER, seed=seed)
    history = stages.pretrain(model, tokenizer, *windows, PRETRAIN, seed=seed, device="cpu")
    path = tmp_path / f"{name}.pt"
    stages.save_encoder(path, model, ENCODER, "unused")
    return path, pretrain_record(
        tokenizer.name, tokenizer, ENCODER, PRETRAIN, history, "test", replicate=seed
    )


def test_pretraining_repeats_from_model_construction_on(windows, tmp_path):
    tokenizer = build_tokenizer("kmer", k=6, stride=1)
    (path_a, record_a), (path_b, record_b) = (
        _pretrained(tokenizer, windows, tmp_path, n) for n in ("a", "b")
    )
    same(record_a, record_b)
    a, b = torch.load(path_a)["state_dict"], torch.load(path_b)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a different replicate is a different run
    _, record_c = _pretrained(tokenizer, windows, tmp_path, "c", seed=2)
    assert record_c["final_val_loss"] != record_a["final_val_loss"]


def test_finetune_probe_and_baseline_repeat(windows, task, tmp_path):
    tokenizer = build_tokenizer("char")
    path, _ = _pretrained(tokenizer, windows, tmp_path, "char")
    seed = study.finetune_seed(1, 0)
    runs = [
        evaluation_record(
            "finetune",
            task,
            "char",
            0,
            stages.finetune_on_task(path, tokenizer, task, FINETUNE, seed=seed, device="cpu"),
            "test",
            FINETUNE,
            replicate=1,
        )
        for _ in range(2)
    ]
    same(*runs)
    probes = [
        evaluation_record(
            "linear_probe",
            task,
            "char",
            0,
            stages.linear_probe_on_task(path, tokenizer, task, {"max_bp": 64}, device="cpu"),
            "test",
            replicate=1,
        )
        for _ in range(2)
    ]
    same(*probes)
    same(baselines.kmer_baseline_record(task, "test"), baselines.kmer_baseline_record(task, "test"))
    low, high = runs[0]["test_interval"]["mcc"]
    assert low <= runs[0]["mcc"] <= high and high - low > 0


def test_summary_statistics_repeat(tmp_path):
    """Tables, intervals, variance shares and verdicts of the same records are identical."""
    rng = np.random.default_rng(0)
    paths = []
    for t in ("hrq", "vq", "bpe"):
        for replicate in range(3):
            for seed in range(2):
                cm = rng.integers(20, 60, size=(2, 2)).tolist()
                record = {
                    "stage": "finetune",
                    "suite": "s",
                    "task": "t",
                    "tokenizer": t,
                    "seed": seed,
                    "replicate": replicate,
                    "metric": "mcc",
                    "mcc": 0.3,
                    "macro_f1": 0.6,
                    "accuracy": 0.6,
                    "deviations": [],
                    "confusion_matrix": cm,
                    "coverage": "whole sequences",
                    "bp_seen": {"mean": 70.0, "min": 70, "max": 70},
                    "n_cut": 0,
                }
                paths.append(tmp_path / f"{t}{replicate}{seed}.json")
                paths[-1].write_text(json.dumps(record))
    outputs = []
    for _ in range(2):
        df = collect_metrics(paths)
        outputs.append(
            (tables.summary_table(df, "finetune"), tables.variance_table(df), claims.claim_verdicts(df))
        )
    for a, b in zip(*outputs):
        pd.testing.assert_frame_equal(a, b)
    table = outputs[0][0]
    assert (table["n_replicates"] == 3).all() and (table["n_runs"] == 6).all()
    assert not table["ci_low"].isna().any()


def test_timing_fields_are_the_only_ones_skipped():
    assert "steps_per_s" in TIMING_KEYS
    assert _differences({"mcc": 0.5, "steps_per_s": 1.0}, {"mcc": 0.5, "steps_per_s": 2.0}) == []
    assert _differences(
        {"mcc": 0.5, "history": [{"loss": 1.0}]}, {"mcc": 0.5, "history": [{"loss": 1.1}]}
    ) == [("history.0.loss", 1.0, 1.1)]
