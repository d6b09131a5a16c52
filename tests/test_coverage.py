"""Equal coverage in bp (vqdna.train.coverage.coverage): every tokenizer of a task sees the same bases,
token caps follow from them over all rows, and the records say how many bp were seen and cut."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vqdna.analysis import tables
from vqdna.core.protocol import FULL_PROTOCOL, SMALL_CORPUS
from vqdna.data import corpus
from vqdna.model.vqvae import VQVAE, VQVAEConfig
from vqdna.tokenizers import build_tokenizer
from vqdna.train import coverage, stages
from vqdna.workflow.records import evaluation_record, validate_record

TINY_ENCODER = {"layers": 1, "dim": 16, "heads": 2, "mlp_ratio": 2}


@pytest.fixture(scope="module")
def long_task(yeast_chromosome):
    """A real two-class task of variable-length yeast pieces (150-400 bp; class = strand), so that
    a 200 bp coverage cuts some rows and leaves others whole."""
    rng = np.random.default_rng(0)
    frames = {}
    for split, (start, n) in {"train": (0, 48), "dev": (100_000, 16), "test": (150_000, 24)}.items():
        rows, pos = [], start
        for i in range(n):
            length = int(rng.integers(150, 401))
            piece = yeast_chromosome[pos : pos + length]
            pos += length
            label = i % 2
            if label:
                piece = piece[::-1].translate(str.maketrans("ACGTN", "TGCAN"))
            rows.append((piece, label))
        frames[split] = pd.DataFrame(rows, columns=["sequence", "label"])
    meta = {
        "suite": "embedded",
        "task": "strand",
        "num_classes": 2,
        "metric": "mcc",
        "deviations": [],
        "protocol": {},
        "paper": {},
    }
    return frames, meta


@pytest.fixture(scope="module")
def tokenizers(genome_windows):
    train, _ = genome_windows
    vq = VQVAE(VQVAEConfig(stem_dim=8, dim=8, depth=1, codebook_size=8, levels=1))
    return {
        "char": build_tokenizer("char"),
        "kmer6": build_tokenizer("kmer", k=6, stride=1),
        "kmer6_nonoverlap": build_tokenizer("kmer", k=6, stride=6),
        "bpe": build_tokenizer("bpe", vocab_size=64).train(train[:300]),
        "vq": build_tokenizer("vq", model=VQVAE.eval(vq)),
    }


def test_window_and_sliding_windows_cover_the_declared_bases():
    seq = "ACGT" * 25 + "TTTT"  # 104 bp
    assert coverage.window_of(seq, 200) == seq
    assert coverage.window_of(seq, 10) == seq[47:57] and coverage.window_of(seq, 10, "start") == seq[:10]
    tiles = coverage.sliding_windows(seq, 30)
    assert [len(t) for t in tiles] == [30, 30, 30, 30] and tiles[-1] == seq[-30:]
    assert "".join(tiles[:3]) + tiles[3][-(104 - 90) :] == seq
    with pytest.raises(ValueError, match="window"):
        coverage.window_of(seq, 10, "middle")


def test_coverage_counts_every_row_and_takes_the_smaller_declared_limit(long_task):
    splits, meta = long_task
    lengths = np.concatenate([f["sequence"].str.len() for f in splits.values()])
    windowed, seen = coverage.coverage(splits, {**meta, "coverage_bp": 250}, {"max_bp": 300})
    assert seen["coverage_bp"] == 250 and seen["n_cut"] == int((lengths > 250).sum()) > 0
    assert seen["n_sequences"] == len(lengths) == 88
    assert seen["bp_seen"]["max"] == 250 and seen["bp_seen"]["min"] == lengths.min()
    assert max(windowed["test"]["sequence"].str.len()) == 250 and seen["coverage"] == "centre 250 bp"
    _, whole = coverage.coverage(splits, meta, {"max_bp": 1000})
    assert whole["n_cut"] == 0 and whole["coverage"] == "whole sequences"


def test_token_cap_comes_from_all_rows_not_the_first_ones(tokenizers):
    """The old cap looked at 200 rows per split; a long row after them was cut silently."""
    splits = {"train": pd.DataFrame({"sequence": ["ACGTACGTAC"] * 250 + ["ACGT" * 30], "label": 0})}
    char = tokenizers["char"]
    assert coverage.tokens_needed(char, splits) == 122
    assert coverage.tokens_needed(char, splits, max_bp=50) == 52


def test_every_tokenizer_of_a_task_records_the_same_bp_coverage(long_task, tokenizers, tmp_path):
    """Real linear-probe and fine-tuning runs (tiny encoders) of five tokenizers on one task:
    the records agree on the bases seen and nothing is cut in tokens."""
    records = []
    for name, tokenizer in tokenizers.items():
        model = stages.build_masked_lm(tokenizer, TINY_ENCODER, seed=0)
        path = tmp_path / f"{name}.pt"
        stages.save_encoder(path, model, TINY_ENCODER, tmp_path / name)
        probe = stages.linear_probe_on_task(path, tokenizer, long_task, {"max_bp": 200}, device="cpu")
        records.append(evaluation_record("linear_probe", long_task, name, 0, probe, "test"))
        for split in long_task[0].values():  # the cap holds every windowed row whole
            tokenizer.encode_batch(
                [coverage.window_of(s, 200) for s in split["sequence"]],
                max_length=probe["max_tokens"],
                truncation=False,
            )
    settings = {
        "epochs": 1,
        "lr": 1e-3,
        "batch_size": 16,
        "max_bp": 200,
        "select_by": "dev_loss",
        "warmup_steps": 1,
    }
    tuned = stages.finetune_on_task(
        tmp_path / "char.pt", tokenizers["char"], long_task, settings, device="cpu"
    )
    records.append(evaluation_record("finetune", long_task, "char", 0, tuned, "test", settings))
    for record in records:
        validate_record(record)
    fields = {(r["coverage"], r["coverage_bp"], tuple(r["bp_seen"].values()), r["n_cut"]) for r in records}
    assert len(fields) == 1, fields
    assert records[0]["bp_seen"]["max"] == 200 and records[0]["n_cut"] > 0
    assert all("sequences longer than 200 bp" in r["notes"][0] for r in records)
    assert records[-1]["select_by"] == "dev_loss" and {r["truncated_fraction"] for r in records} == {0.0}


def test_sliding_pooling_reads_every_base(long_task, tokenizers, tmp_path):
    char = tokenizers["char"]
    model = stages.build_masked_lm(char, TINY_ENCODER, seed=0)
    stages.save_encoder(tmp_path / "m.pt", model, TINY_ENCODER, tmp_path / "char")
    result = stages.linear_probe_on_task(
        tmp_path / "m.pt", char, long_task, {"max_bp": 100, "pooling": "sliding"}, device="cpu"
    )
    lengths = np.concatenate([f["sequence"].str.len() for f in long_task[0].values()])
    assert result["bp_seen"]["max"] == lengths.max() and result["max_tokens"] == 102
    assert result["coverage"] == "whole sequences, 100 bp windows pooled" and result["n_test"] == 24


def test_summary_never_ranks_rows_of_different_coverage_together():
    def rec(tokenizer, score, coverage):
        return {
            "stage": "finetune",
            "suite": "s",
            "task": "t",
            "tokenizer": tokenizer,
            "seed": 0,
            "metric": "mcc",
            "mcc": score,
            "macro_f1": score,
            "accuracy": score,
            "deviations": [],
            "coverage": coverage,
            "ablation_name": None,
            "score": score,
            "notes": [],
            "paper": {},
        }

    df = pd.DataFrame(
        [
            rec("char", 0.5, "centre 200 bp"),
            rec("bpe", 0.6, "whole sequences"),
            rec("vq", 0.4, "centre 200 bp"),
        ]
    )
    df["protocol"] = FULL_PROTOCOL
    table = tables.summary_table(df, "finetune")
    ranks = dict(zip(table["tokenizer"], table["rank"]))
    assert ranks == {"char": 1.0, "vq": 2.0, "bpe": 1.0}


def test_species_table_sets_ours_beside_the_papers_table6():
    def rec(task, tokenizer, seed, accuracy):
        return {
            "stage": "linear_probe",
            "suite": "embedded",
            "task": task,
            "tokenizer": tokenizer,
            "seed": seed,
            "metric": "mcc",
            "mcc": 0.0,
            "macro_f1": 0.0,
            "accuracy": accuracy,
            "deviations": [],
            "coverage": "whole sequences",
            "ablation_name": None,
            "protocol": "p",
        }

    df = pd.DataFrame(
        [
            rec("species_1k", "hrq", 0, 0.5),
            rec("species_1k", "hrq", 1, 0.7),
            rec("species_32k", "hrq", 0, 0.9),
            rec("species_1k", "char", 0, 0.4),
            rec("coding", "hrq", 0, 1),
        ]
    )
    table = tables.species_length_table(df).set_index("tokenizer")
    assert table.loc["hrq", "1k bp acc"] == "60.00 ± 14.14" and table.loc["hrq", "32k bp acc"] == "90.00"
    assert table.loc["hrq", "paper 32k"] == "99.46" and table.loc["char", "paper 1k"] == "61.13"
    assert table.loc["char", "32k bp acc"] != table.loc["char", "32k bp acc"]  # NaN: not run
    assert tables.species_length_table(df[df["task"] == "coding"]).empty


def test_species_table_gives_intervals_and_the_kmer_reference_row():
    """Accuracy with its 95% interval over replicates and test set; the k-mer-spectrum reference
    (which reads whole sequences) sits in the table; a reference row alone is no table."""
    base = {
        "suite": "embedded",
        "task": "species_1k",
        "metric": "mcc",
        "ablation_name": None,
        "protocol": "p",
    }
    right = [[40, 10], [10, 40]]  # 80% correct out of 100
    df = pd.DataFrame(
        [
            {**base, "stage": "linear_probe", "tokenizer": "vq", "replicate": r, "accuracy": 0.8,
             "coverage": "whole sequences, 125 bp windows pooled", "confusion_matrix": right}
            for r in range(3)
        ]
        + [{**base, "stage": "baseline", "tokenizer": "kmer-spectrum LR", "replicate": 0, "accuracy": 0.8,
            "confusion_matrix": right}]
    )  # fmt: skip
    table = tables.species_length_table(df).set_index("tokenizer")
    low, high = (float(v) for v in table.loc["vq", "1k bp acc"].split("[")[1].rstrip("]").split(","))
    assert low < 80 < high and high - low < 25  # the test set (100 sequences) is the only noise
    assert table.loc["kmer-spectrum LR", "1k bp coverage"] == "whole sequences (k-mer counts)"
    assert tables.species_length_table(df[df["stage"] == "baseline"]).empty


def test_paper_profile_without_the_papers_corpus_is_labelled(tmp_path, genome_windows, long_task):
    """The paper study on the embedded genomes alone (~8 Mbp) is not 'full protocol'."""
    import json

    fasta = tmp_path / "extra.fa"
    fasta.write_text(">c1\n" + genome_windows[0][0] * 40 + "\n")
    settings = {
        "window": 256,
        "max_windows": 20,
        "extra_fasta": [{"fasta": str(fasta), "species": "x"}],
        "min_paper_bp": 10_000,
    }
    corpus.build_corpus(settings, tmp_path / "enough", seed=0)
    manifest = json.loads((tmp_path / "enough" / "manifest.json").read_text())
    assert manifest["paper_corpus"] == {"extra_bp": 128 * 40, "min_bp": 10_000.0}
    assert corpus.corpus_deviations(tmp_path / "enough", "paper") == [SMALL_CORPUS]
    assert corpus.corpus_deviations(tmp_path / "enough", "cpu-default") == []
    manifest["paper_corpus"]["extra_bp"] = 10_000
    (tmp_path / "enough" / "manifest.json").write_text(json.dumps(manifest))
    assert corpus.corpus_deviations(tmp_path / "enough", "paper") == []
    # the tag travels with the encoder into every record of it
    char = build_tokenizer("char")
    model = stages.build_masked_lm(char, TINY_ENCODER, seed=0)
    stages.save_encoder(tmp_path / "m.pt", model, TINY_ENCODER, tmp_path / "char", [SMALL_CORPUS])
    result = stages.linear_probe_on_task(tmp_path / "m.pt", char, long_task, {"max_bp": 100}, device="cpu")
    record = evaluation_record("linear_probe", long_task, "char", 0, result, "paper")
    assert record["deviations"] == [SMALL_CORPUS]


def test_pretraining_refuses_a_token_cap_that_would_cut_windows(genome_windows):
    char = build_tokenizer("char")
    model = stages.build_masked_lm(char, TINY_ENCODER, seed=0)
    settings = {"steps": 1, "batch_size": 4, "lr": 1e-3, "mask_ratio": 0.25, "max_tokens": 100}
    with pytest.raises(
        ValueError, match="max_tokens 100 would cut the 128 bp corpus windows: set it to at le"
    ):
        stages.pretrain(model, char, genome_windows[0][:8], genome_windows[1][:4], settings, device="cpu")


def test_a_model_record_without_its_coverage_is_invalid():
    record = {
        "stage": "linear_probe",
        "suite": "s",
        "task": "t",
        "tokenizer": "char",
        "seed": 0,
        "metric": "mcc",
        "mcc": 0.1,
        "macro_f1": 0.2,
        "accuracy": 0.5,
        "deviations": [],
    }
    with pytest.raises(ValueError, match="invalid metrics record"):
        validate_record(record)
    validate_record({**record, "stage": "baseline"})
    validate_record(
        {**record, "coverage": "whole sequences", "n_cut": 0, "bp_seen": {"mean": 70.0, "min": 70, "max": 70}}
    )


def test_pooled_embeddings_embed_a_shared_window_once(tokenizers, yeast_chromosome, monkeypatch):
    """Overlapping long sequences (the species tasks) share windows: each distinct window is
    embedded once, and every sequence still gets the mean of all of its windows."""
    char = tokenizers["char"]
    encoder = stages.build_masked_lm(char, TINY_ENCODER, seed=0).encoder
    sequences = [
        yeast_chromosome[start : start + 400] for start in (0, 200, 400, 1000)
    ]  # windows 200-500 bp shared
    embedded = []
    real = stages.embed_sequences
    monkeypatch.setattr(
        stages, "embed_sequences", lambda e, t, s, **kw: embedded.append(len(s)) or real(e, t, s, **kw)
    )
    pooled = stages._pooled_embeddings(encoder, char, sequences, 100, 102, "cpu")
    assert embedded == [4 * 4 - 2 * 2]  # 16 windows, 4 of them repeats
    for sequence, row in zip(sequences, pooled):
        alone = real(encoder, char, coverage.sliding_windows(sequence, 100), max_length=102, device="cpu")
        np.testing.assert_allclose(row, alone.mean(axis=0), rtol=1e-5, atol=1e-6)
