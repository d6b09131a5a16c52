"""Labelled datasets: loading tasks from FASTA/CSV input under the input policy, building splits, and the
prepared-task folder (``train.csv dev.csv test.csv`` with ``sequence,label`` + ``meta.json``).

Rules every loader here applies (tests in ``tests/test_data.py``):
- sequences go through :func:`vqdna.core.sequence.normalize` (vectorised for CSV columns); an invalid
  character raises ``ValueError`` naming the file and line;
- labels are integers ``0..C-1`` (integer-valued numbers such as ``1.0`` are accepted); the
  label and length rules of the splits are vqdna.data.splitting's;
- files are read through :mod:`vqdna.core.files` (plain or gzip, strict UTF-8, errors naming the file
  and physical line); label problems raise naming the file and line too;
- :func:`write_task` writes atomically: nothing partial is left when building fails.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a table is built: reading FASTA does not need its ~30 MB
    import pandas as pd

from vqdna.core.files import read_fasta, read_table
from vqdna.core.sequence import normalize
from vqdna.data.splitting import SPLITS, check_labels, drop_source, stratified_assign, with_source


def parse_label(text: str, where: str) -> int:
    """An integer label ``>= 0`` (``1``, ``+1``, ``1.0``, ``1e0``); anything else (non-integer,
    negative, NaN, infinite, beyond int64) raises naming ``where``."""
    value = text.strip()
    try:
        number = int(value)
    except ValueError:
        try:
            real = float(value)
        except ValueError:
            real = math.nan
        number = int(real) if math.isfinite(real) and real == round(real) else None
    if number is None or not 0 <= number <= np.iinfo(np.int64).max:
        raise ValueError(f"{where}: label {text!r} is not an integer in 0..2^63-1")
    return number


def load_csv_split(
    path, sequence_col: str = "sequence", label_col: str = "label", with_lines: bool = False
) -> pd.DataFrame:
    """One labelled CSV(.gz) -> DataFrame ``sequence, label`` (normalised, int labels), plus the
    physical ``line`` of each row when ``with_lines``. Every error names the file and line."""
    import pandas as pd

    path = Path(path)
    sequences, labels, lines = [], [], []
    for line_no, row in read_table(path, [sequence_col, label_col]):
        where = f"{path} line {line_no}"
        sequences.append(normalize(row[sequence_col], where=where))
        labels.append(parse_label(row[label_col], where))
        lines.append(line_no)
    if not sequences:
        raise ValueError(f"{path}: no rows")
    frame = pd.DataFrame({"sequence": sequences, "label": np.array(labels, dtype=np.int64)})
    return frame.assign(line=lines) if with_lines else frame


# ---------------------------------------------------------------- builders


def load_gue_task(
    task_dir, reduced_train: bool = False, dev_fraction: float = 0.1, seed: int = 0, keep_source: bool = False
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """A GUE-style folder -> (splits, deviations).

    Without ``train.csv`` the task is refused unless ``reduced_train``: then train is dev minus
    a stratified ``dev_fraction`` slice that becomes the internal dev set, and test is the
    official test; the deviation says so. ``keep_source``: each row keeps its ``file`` and
    ``line`` (what later label and length errors name).
    """
    task_dir = Path(task_dir)
    if (task_dir / "train.csv").exists():
        splits = {
            name: with_source(
                load_csv_split(task_dir / f"{name}.csv", with_lines=True), task_dir / f"{name}.csv"
            )
            for name in SPLITS
        }
        for name in ("dev", "test"):
            _check_seen(splits[name], task_dir / f"{name}.csv", splits["train"], task_dir / "train.csv")
        return (splits if keep_source else drop_source(splits)), []
    if not reduced_train:
        raise FileNotFoundError(f"{task_dir}/train.csv is absent (reduced-train mode is off)")
    dev = with_source(load_csv_split(task_dir / "dev.csv", with_lines=True), task_dir / "dev.csv")
    assign = stratified_assign(dev["label"], {"train": 1 - dev_fraction, "dev": dev_fraction}, seed)
    splits = {
        "train": dev[assign == "train"].reset_index(drop=True),
        "dev": dev[assign == "dev"].reset_index(drop=True),
        "test": with_source(load_csv_split(task_dir / "test.csv", with_lines=True), task_dir / "test.csv"),
    }
    _check_seen(splits["test"], task_dir / "test.csv", splits["train"], f"{task_dir / 'dev.csv'} (as train)")
    splits = splits if keep_source else drop_source(splits)
    note = (
        f"reduced-train: official train.csv absent; trained on {len(splits['train'])} rows of "
        f"the official dev set, internal dev = {len(splits['dev'])} held-out dev rows "
        f"(stratified, seed {seed}); reported on the official test set"
    )
    return splits, [note]


def _check_seen(frame: pd.DataFrame, path, train: pd.DataFrame, train_path) -> None:
    """A dev/test label that train lacks is an error naming the file and line where it occurs."""
    unseen = ~frame["label"].isin(set(train["label"].tolist()))
    if unseen.any():
        row = frame[unseen].iloc[0]
        raise ValueError(f"{path} line {row['line']}: label {row['label']} does not occur in {train_path}")


def csv_table_task(
    path, sequence_col: str, label_col: str, fractions: dict[str, float], seed: int, keep_source: bool = False
) -> dict[str, pd.DataFrame]:
    """One labelled CSV without official splits -> seeded stratified train/dev/test
    (``keep_source``: each row keeps its ``file`` and ``line``)."""
    frame = dedupe(with_source(load_csv_split(path, sequence_col, label_col, with_lines=True), path))
    splits = _split_frame(frame, stratified_assign(frame["label"], fractions, seed), path)
    return splits if keep_source else drop_source(splits)


def fasta_classes_task(
    files: list, fractions: dict[str, float], seed: int, unique_ids: bool = True, keep_source: bool = False
) -> dict[str, pd.DataFrame]:
    """One FASTA file per class (label = position in ``files``) -> stratified seeded splits.
    Identical sequences are removed as :func:`dedupe` does; ``unique_ids`` as in
    :func:`stream_fasta`; ``keep_source``: each row keeps its ``file`` and ``record`` id."""
    import pandas as pd

    frames = []
    for label, path in enumerate(files):
        records = read_fasta(path, unique_ids)
        frames.append(
            pd.DataFrame(
                {
                    "sequence": list(records.values()),
                    "label": label,
                    "file": str(path),
                    "record": list(records),
                }
            )
        )
    frame = dedupe(pd.concat(frames, ignore_index=True))
    assign = stratified_assign(frame["label"], fractions, seed)
    splits = _split_frame(frame, assign, ", ".join(map(str, files)))
    return splits if keep_source else drop_source(splits)


def read_label_table(path, name_col: str, label_col: str) -> pd.DataFrame:
    """A TSV/CSV(.gz) label table -> DataFrame ``name, label_name`` (rows with empty labels dropped).
    ``name`` is cut at the first whitespace, as FASTA ids are (see :func:`stream_fasta`)."""
    import pandas as pd

    sep = "\t" if ".tsv" in Path(path).name else ","
    rows, seen = [], {}
    for line_no, row in read_table(path, [name_col, label_col], sep=sep):
        name = row[name_col].split()[0] if row[name_col].strip() else ""
        if not name:
            raise ValueError(f"{path} line {line_no}: empty name")
        if name in seen:
            raise ValueError(f"{path} line {line_no}: duplicate name {name!r} (first on line {seen[name]})")
        seen[name] = line_no
        rows.append((name, row[label_col]))
    table = pd.DataFrame(rows, columns=["name", "label_name"], dtype=str)
    return table[table["label_name"].str.strip() != ""].reset_index(drop=True)


def genome_fragments_task(
    fasta,
    label_table,
    name_col: str,
    label_col: str,
    fragment_length: int,
    min_genomes: int,
    fractions: dict[str, float],
    seed: int,
    max_n_fraction: float = 0.0,
    fragments_per_genome: int | None = None,
) -> tuple[dict[str, pd.DataFrame], list[str], dict]:
    """Labelled genomes -> fragment classification, split by genome (no genome in two splits).

    Classes are the labels with at least ``min_genomes`` genomes (sorted by name). Each genome is
    tiled into non-overlapping ``fragment_length`` fragments from a seeded random offset;
    fragments with more than ``max_n_fraction`` N are dropped; optionally at most
    ``fragments_per_genome`` are kept. Genomes are assigned to splits stratified by class.
    Returns (splits with a ``genome`` column, label names, per-split genome lists).
    """
    import pandas as pd

    table = read_label_table(label_table, name_col, label_col)
    genomes = read_fasta(fasta)
    unknown = sorted(set(table["name"]) - set(genomes))
    if unknown:
        raise ValueError(f"{label_table}: {len(unknown)} names absent from {fasta}, e.g. {unknown[0]!r}")
    counts = table["label_name"].value_counts()
    label_names = sorted(counts[counts >= min_genomes].index)
    if len(label_names) < 2:
        raise ValueError(f"{label_table}: fewer than 2 labels with >= {min_genomes} genomes")
    table = table[table["label_name"].isin(label_names)].reset_index(drop=True)
    table["label"] = table["label_name"].map({name: i for i, name in enumerate(label_names)})
    table["split"] = stratified_assign(table["label"], fractions, seed)
    rng = np.random.default_rng(seed)
    rows = []
    for name, label, split in table[["name", "label", "split"]].itertuples(index=False):
        sequence = genomes[name]
        offset = int(rng.integers(0, fragment_length))
        starts = list(range(offset, len(sequence) - fragment_length + 1, fragment_length))
        pieces = [sequence[s : s + fragment_length] for s in starts]
        pieces = [p for p in pieces if p.count("N") <= max_n_fraction * fragment_length]
        if fragments_per_genome is not None and len(pieces) > fragments_per_genome:
            pieces = [pieces[i] for i in sorted(rng.choice(len(pieces), fragments_per_genome, replace=False))]
        rows.extend((p, label, name, split) for p in pieces)
    frame = pd.DataFrame(rows, columns=["sequence", "label", "genome", "split"])
    splits = {
        name: frame[frame["split"] == name].drop(columns="split").reset_index(drop=True) for name in SPLITS
    }
    genome_lists = {name: sorted(table.loc[table["split"] == name, "name"]) for name in SPLITS}
    return splits, label_names, genome_lists


def dedupe(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep one copy of each sequence (so none spans two splits); drop sequences that occur
    with two different labels."""
    conflicting = frame.groupby("sequence")["label"].transform("nunique") > 1
    return frame[~conflicting].drop_duplicates("sequence").reset_index(drop=True)


def _split_frame(frame: pd.DataFrame, assign: np.ndarray, source) -> dict[str, pd.DataFrame]:
    """Rows by assigned split; a split left empty (a source too small for the fractions) is an
    error naming the source."""
    splits = {name: frame[assign == name].reset_index(drop=True) for name in SPLITS}
    empty = [name for name in SPLITS if splits[name].empty]
    if empty:
        counts = frame["label"].value_counts().sort_index().to_dict()
        raise ValueError(
            f"{source}: split {empty[0]!r} is empty: {len(frame)} distinct rows "
            f"(per label {counts}) are too few for the split fractions"
        )
    return splits


# ---------------------------------------------------------------- the prepared-task folder


def write_task(out_dir, splits: dict[str, pd.DataFrame], meta: dict) -> Path:
    """Write ``train/dev/test.csv`` (``sequence,label``) + ``meta.json`` atomically: everything
    goes to a temporary sibling folder that is renamed into place at the end (an existing folder
    is replaced); on any error the temporary folder is removed and nothing is left behind."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    check_labels(splits, meta.get("num_classes"))
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for name in SPLITS:
            splits[name][["sequence", "label"]].to_csv(tmp / f"{name}.csv", index=False)
        meta = {**meta, "counts": {name: int(len(splits[name])) for name in SPLITS}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.replace(out_dir, old / out_dir.name)
            os.replace(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def read_task(task_dir) -> tuple[dict[str, pd.DataFrame], dict]:
    """A prepared-task folder -> (splits, meta)."""
    import pandas as pd

    task_dir = Path(task_dir)
    meta = json.loads((task_dir / "meta.json").read_text())
    splits = {
        name: pd.read_csv(task_dir / f"{name}.csv", dtype={"sequence": str, "label": np.int64})
        for name in SPLITS
    }
    return splits, meta
