"""Loaders, the input policy on files, malformed input, splits and the prepared-task folder.
Small inputs are written per test; real GUE tasks are read from ../shared/data when present."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from vqdna.core import files
from vqdna.data import splitting, tasks
from vqdna.data.suites import load_suites

GUE_TASKS = {name: spec for name, spec in load_suites()["gue"]["tasks"].items()}


def write(path, text, compress=False, newline="\n"):
    raw = text.replace("\n", newline).encode()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def gue_folder(
    root,
    train="sequence,label\nACGT,0\nGGCC,1\n",
    dev="sequence,label\nACGA,0\nTTGC,1\n",
    test="sequence,label\nCCGA,0\nTAGC,1\n",
):
    root.mkdir(parents=True, exist_ok=True)
    for name, text in (("train", train), ("dev", dev), ("test", test)):
        if text is not None:
            write(root / f"{name}.csv", text)
    return root


# ---------------------------------------------------------------- CSV: malformed input


def test_missing_column_named(tmp_path):
    with pytest.raises(ValueError, match=r"missing column.*'label'"):
        tasks.load_csv_split(write(tmp_path / "a.csv", "sequence,lab\nACGT,0\n"))


def test_misnamed_sequence_column(tmp_path):
    with pytest.raises(
        ValueError, match=r"a.csv line 1: missing column.*'sequence'.*found \['seq', 'label'\]"
    ):
        tasks.load_csv_split(write(tmp_path / "a.csv", "seq,label\nACGT,0\n"))


def test_non_integer_label(tmp_path):
    with pytest.raises(ValueError, match=r"a.csv line 3: label '0.5'"):
        tasks.load_csv_split(write(tmp_path / "a.csv", "sequence,label\nACGT,0\nACGT,0.5\n"))


def test_text_label(tmp_path):
    with pytest.raises(ValueError, match=r"line 2: label 'pos'"):
        tasks.load_csv_split(write(tmp_path / "a.csv", "sequence,label\nACGT,pos\n"))


def test_negative_and_empty_label(tmp_path):
    with pytest.raises(ValueError, match=r"line 2: label '-1'"):
        tasks.load_csv_split(write(tmp_path / "a.csv", "sequence,label\nACGT,-1\n"))
    with pytest.raises(ValueError, match=r"line 3: label ''"):
        tasks.load_csv_split(write(tmp_path / "b.csv", "sequence,label\nACGT,1\nACGT,\n"))


def test_integer_valued_float_label_accepted(tmp_path):
    frame = tasks.load_csv_split(write(tmp_path / "a.csv", "sequence,label\nACGT,1.0\nACGT,0\n"))
    assert frame["label"].tolist() == [1, 0] and frame["label"].dtype == "int64"


def test_empty_file(tmp_path):
    with pytest.raises(ValueError, match="empty file"):
        tasks.load_csv_split(write(tmp_path / "a.csv", ""))


def test_header_only_is_empty_split(tmp_path):
    with pytest.raises(ValueError, match="no rows"):
        tasks.load_csv_split(write(tmp_path / "a.csv", "sequence,label\n"))


def test_invalid_character_names_file_and_line(tmp_path):
    path = write(tmp_path / "a.csv", "sequence,label\nACGT,0\nACXT,1\n")
    with pytest.raises(ValueError, match=r"a.csv line 3: invalid character 'X' at position 3"):
        tasks.load_csv_split(path)


def test_gap_character_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"line 2: invalid character '-'"):
        tasks.load_csv_split(write(tmp_path / "a.csv", "sequence,label\nAC-T,0\n"))


def test_empty_sequence_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"line 3: empty sequence"):
        tasks.load_csv_split(write(tmp_path / "a.csv", "sequence,label\nACGT,0\n,1\n"))


def test_lowercase_rna_and_iupac_normalised(tmp_path):
    frame = tasks.load_csv_split(write(tmp_path / "a.csv", "sequence,label\nacgu,0\nAC GRY,1\n"))
    assert frame["sequence"].tolist() == ["ACGT", "ACGNN"]


def test_gzip_windows_line_endings_and_other_columns(tmp_path):
    text = "id,sequence,label\nx,ACGT,0\ny,ttgg,1\n"
    plain = tasks.load_csv_split(write(tmp_path / "a.csv", text, newline="\r\n"))
    zipped = tasks.load_csv_split(write(tmp_path / "b.csv", text, compress=True, newline="\r\n"))
    assert plain.equals(zipped) and plain["sequence"].tolist() == ["ACGT", "TTGG"]
    assert list(plain.columns) == ["sequence", "label"]


def test_truncated_gzip_is_a_clean_error(tmp_path):
    blob = gzip.compress(("sequence,label\n" + "ACGTACGTAC,0\n" * 5000).encode())
    path = tmp_path / "a.csv.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="truncated gzip"):
        tasks.load_csv_split(path)


# ---------------------------------------------------------------- labels across splits


def frames(train, dev, test):
    def make(labels):
        return pd.DataFrame({"sequence": ["ACGT"] * len(labels), "label": labels})

    return {"train": make(train), "dev": make(dev), "test": make(test)}


def test_label_unseen_in_train():
    with pytest.raises(ValueError, match=r"'test': labels \[2\] do not occur in train"):
        splitting.check_labels(frames([0, 1, 0], [0, 1], [1, 2]))


def test_label_outside_declared_classes():
    with pytest.raises(ValueError, match=r"labels \[2\] outside 0..1"):
        splitting.check_labels(frames([0, 1, 2], [0], [1]), num_classes=2)


def test_train_missing_a_class():
    with pytest.raises(ValueError, match=r"train lacks classes \[1\]"):
        splitting.check_labels(frames([0, 2], [0], [2]))


def test_empty_split():
    with pytest.raises(ValueError, match="split 'dev' is empty"):
        splitting.check_labels(frames([0, 1], [], [0]))


# ---------------------------------------------------------------- FASTA: malformed input


def test_fasta_duplicate_header(tmp_path):
    with pytest.raises(ValueError, match=r"a.fa line 5: duplicate FASTA header 'x'"):
        files.read_fasta(write(tmp_path / "a.fa", ">x one\nACGT\n>y\nAC\n>x two\nGG\n"))


def test_fasta_duplicate_header_allowed_when_asked(tmp_path):
    records = files.read_fasta(write(tmp_path / "a.fa", ">x\nACGT\n>x\nGG\n"), unique_ids=False)
    assert records == {"x": "ACGT", "x#2": "GG"}


def test_fasta_headerless(tmp_path):
    with pytest.raises(ValueError, match=r"a.fa line 1: sequence before the first '>' header"):
        files.read_fasta(write(tmp_path / "a.fa", "ACGT\nACGT\n"))


def test_fasta_sequence_before_first_header(tmp_path):
    with pytest.raises(ValueError, match=r"line 2: sequence before the first"):
        files.read_fasta(write(tmp_path / "a.fa", "\nAC\n>x\nACGT\n"))


def test_fasta_invalid_character_names_file_and_line(tmp_path):
    with pytest.raises(ValueError, match=r"a.fa line 4: invalid character 'J' at position 2"):
        files.read_fasta(write(tmp_path / "a.fa", ">x\nACGT\n>y\nAJGT\n"))


def test_fasta_empty_file_and_empty_record(tmp_path):
    with pytest.raises(ValueError, match="no FASTA records"):
        files.read_fasta(write(tmp_path / "a.fa", ""))
    with pytest.raises(ValueError, match="record 'x' has no sequence"):
        files.read_fasta(write(tmp_path / "b.fa", ">x\n>y\nACGT\n"))
    with pytest.raises(ValueError, match="empty FASTA header"):
        files.read_fasta(write(tmp_path / "c.fa", ">\nACGT\n"))


def test_fasta_gzip_crlf_lowercase_rna_multiline(tmp_path):
    text = ">x desc\nacgu\nNNac\n\n>y\nRYAC\n"
    plain = files.read_fasta(write(tmp_path / "a.fa", text, newline="\r\n"))
    zipped = files.read_fasta(write(tmp_path / "b.fa", text, compress=True))
    assert plain == zipped == {"x": "ACGTNNAC", "y": "NNAC"}


def test_fasta_truncated_gzip(tmp_path):
    blob = gzip.compress((">x\n" + "ACGTTGCA" * 20000 + "\n").encode())
    path = tmp_path / "a.fa.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="truncated gzip"):
        files.read_fasta(path)


# ---------------------------------------------------------------- length policy, subsampling


def test_over_long_sequence_error_or_truncate():
    splits = frames([0, 1], [0], [1])
    splits["test"] = pd.DataFrame({"sequence": ["ACGTACGT"], "label": [1]})
    with pytest.raises(ValueError, match="test row 1: length 8 exceeds max_length 6"):
        splitting.apply_max_length(dict(splits), 6)
    notes = splitting.apply_max_length(splits, 6, truncate=True)
    assert splits["test"]["sequence"].tolist() == ["ACGTAC"]
    assert notes == ["test: 1 sequences truncated to 6 bp"]


def test_max_train_is_stratified_seeded_and_reported():
    labels = [0] * 300 + [1] * 100
    splits = frames(labels, [0, 1], [0, 1])
    splits["train"]["sequence"] = [f"ACGT{'A' * (i % 7)}" for i in range(400)]
    again = {k: v.copy() for k, v in splits.items()}
    notes = splitting.subsample_split(splits, 40, seed=3)
    splitting.subsample_split(again, 40, seed=3)
    assert notes == ["train subsampled to 40 of 400 (stratified, seed 3)"]
    assert splits["train"]["label"].value_counts().to_dict() == {0: 30, 1: 10}
    assert splits["train"].equals(again["train"])


def test_stratified_assign_keeps_every_class_in_every_split():
    labels = [0] * 50 + [1] * 5 + [2] * 3
    assign = splitting.stratified_assign(labels, {"train": 0.8, "dev": 0.1, "test": 0.1}, seed=0)
    table = pd.crosstab(pd.Series(labels), pd.Series(assign))
    assert (table > 0).all().all() and table.loc[0, "train"] == 40


def test_dedupe_drops_conflicts_and_copies():
    frame = pd.DataFrame({"sequence": ["AC", "AC", "GG", "GG", "TT"], "label": [0, 0, 0, 1, 1]})
    assert tasks.dedupe(frame).to_dict("list") == {"sequence": ["AC", "TT"], "label": [0, 1]}


# ---------------------------------------------------------------- GUE folders


def test_gue_task_without_train_refused_or_reduced(tmp_path):
    dev = "sequence,label\n" + "".join(f"ACG{'T' * (i % 9 + 1)},{i % 2}\n" for i in range(40))
    folder = gue_folder(tmp_path / "t", train=None, dev=dev)
    with pytest.raises(FileNotFoundError, match="train.csv is absent"):
        tasks.load_gue_task(folder)
    splits, notes = tasks.load_gue_task(folder, reduced_train=True, dev_fraction=0.25)
    assert (len(splits["train"]), len(splits["dev"]), len(splits["test"])) == (30, 10, 2)
    assert notes[0].startswith("reduced-train")


def test_gue_task_missing_dev_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        tasks.load_gue_task(gue_folder(tmp_path / "t", dev=None))


COMPLETE_GUE = [
    name
    for name in GUE_TASKS
    if name.split("_")[0] in ("tf", "mouse", "prom")
    and name not in ("mouse_1", "prom_300_all", "prom_300_notata")
]


@pytest.mark.parametrize("task", COMPLETE_GUE)
def test_real_gue_row_counts(shared_data, task):
    """Every complete GUE task present loads and matches the official split sizes (notes §7.2)."""
    spec = GUE_TASKS[task]
    folder = shared_data / "GUE" / spec["params"]["path"]
    if not (folder / "train.csv").exists():
        pytest.skip(f"{folder} incomplete")
    splits, notes = tasks.load_gue_task(folder)  # speed is benchmarks/throughput.py's job, not a test's
    assert notes == []
    assert {k: len(v) for k, v in splits.items()} == spec["official_rows"]
    assert splitting.check_labels(splits, spec["num_classes"]) == 2
    assert max(s["sequence"].str.len().max() for s in splits.values()) <= spec["max_length"]


def test_thirteen_complete_gue_tasks_declared():
    assert len(COMPLETE_GUE) == 13


# ---------------------------------------------------------------- prepared-task folder


def test_write_and_read_task_round_trip(tmp_path):
    splits = frames([0, 1, 1], [0, 1], [1, 0])
    out = tasks.write_task(tmp_path / "task", splits, {"suite": "s", "task": "t", "num_classes": 2})
    back, meta = tasks.read_task(out)
    assert meta["counts"] == {"train": 3, "dev": 2, "test": 2}
    assert back["train"].equals(splits["train"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task"]
    json.loads((out / "meta.json").read_text())


def test_write_task_failure_leaves_nothing(tmp_path):
    bad = frames([0, 0], [0], [1])  # test label unseen in train
    with pytest.raises(ValueError):
        tasks.write_task(tmp_path / "task", bad, {"num_classes": 2})
    assert list(tmp_path.iterdir()) == []


def test_write_task_replaces_existing_folder(tmp_path):
    tasks.write_task(tmp_path / "task", frames([0, 1], [0], [1]), {})
    tasks.write_task(tmp_path / "task", frames([0, 1, 0], [0], [1]), {})
    assert tasks.read_task(tmp_path / "task")[1]["counts"]["train"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task"]
