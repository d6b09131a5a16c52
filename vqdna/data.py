"""Labelled datasets: reading FASTA/CSV input under the input policy, building splits, and the
prepared-task folder (``train.csv dev.csv test.csv`` with ``sequence,label`` + ``meta.json``).

Rules every loader here applies (tests in ``tests/test_data.py``):
- sequences go through :func:`vqdna.sequence.normalize` (vectorised for CSV columns); an invalid
  character raises ``ValueError`` naming the file and line;
- labels are integers ``0..C-1`` (integer-valued numbers such as ``1.0`` are accepted); every
  class must occur in train, and a dev/test label unseen in train is an error;
- a sequence longer than ``max_length`` is an error unless ``truncate=True`` (then it is cut to
  ``max_length`` and the count is reported as a deviation);
- plain and gzip files are both read (gzip is detected by its magic bytes, not the name);
  a truncated gzip raises ``ValueError``; Windows line endings are accepted;
- :func:`write_task` writes atomically: nothing partial is left when building fails.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from .sequence import _TRANSLATE, normalize

SPLITS = ("train", "dev", "test")
_GZIP_MAGIC = b"\x1f\x8b"


# ---------------------------------------------------------------- reading files

def is_gzip(path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def open_text(path) -> io.TextIOBase:
    """Open a plain or gzip text file (universal newlines, so ``\\r\\n`` is fine)."""
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="ascii", errors="replace")
    return open(path, encoding="ascii", errors="replace")


def stream_fasta(path, chunk_lines: int = 1000, unique_ids: bool = True) -> Iterator[tuple[str, str]]:
    """Yield ``(record_id, chunk)`` pieces of a FASTA(.gz) file, each chunk the normalised
    concatenation of up to ``chunk_lines`` sequence lines; memory does not grow with the file.

    ``record_id`` is the header up to the first whitespace; a record without sequence yields
    one empty chunk. With ``unique_ids=False`` (files whose headers are descriptions, not ids)
    a repeated id gets a ``#2``, ``#3``... suffix instead of raising. Errors (``ValueError`` naming file
    and line): sequence before the first header, empty or duplicate ids, invalid characters,
    a truncated gzip, a file without records.
    """
    seen: set[str] = set()
    name, lines, line_no, yielded = None, [], 0, True
    try:
        with open_text(path) as handle:
            for line_no, line in enumerate(handle, start=1):
                if line.startswith(">"):
                    if lines or not yielded:
                        yield name, "".join(lines)
                        lines = []
                    yielded = False
                    name = line[1:].split(maxsplit=1)[0] if line[1:].strip() else ""
                    if not name:
                        raise ValueError(f"{path} line {line_no}: empty FASTA header")
                    if name in seen and unique_ids:
                        raise ValueError(f"{path} line {line_no}: duplicate FASTA header {name!r}")
                    base, copy = name, 1
                    while name in seen:
                        copy += 1
                        name = f"{base}#{copy}"
                    seen.add(name)
                    continue
                if not line.strip():
                    continue
                if name is None:
                    raise ValueError(f"{path} line {line_no}: sequence before the first '>' header")
                lines.append(normalize(line, where=f"{path} line {line_no}"))
                if len(lines) >= chunk_lines:
                    yield name, "".join(lines)
                    lines, yielded = [], True
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ValueError(f"{path}: corrupt or truncated gzip after line {line_no} ({error})") from error
    if lines or not yielded:
        yield name, "".join(lines)
    if not seen:
        raise ValueError(f"{path}: no FASTA records")


def read_fasta(path, unique_ids: bool = True) -> dict[str, str]:
    """All records of a FASTA(.gz) file as ``{id: normalised sequence}`` (file order).
    A record without sequence is an error; ``unique_ids`` as in :func:`stream_fasta`."""
    records: dict[str, list[str]] = {}
    for name, chunk in stream_fasta(path, unique_ids=unique_ids):
        records.setdefault(name, []).append(chunk)
    records = {name: "".join(chunks) for name, chunks in records.items()}
    empty = [name for name, sequence in records.items() if not sequence]
    if empty:
        raise ValueError(f"{path}: record {empty[0]!r} has no sequence")
    return records


def normalize_column(sequences: pd.Series, where: str) -> pd.Series:
    """Vectorised :func:`normalize` over a column; on failure the first bad row is re-checked
    with :func:`normalize` so the error names ``where`` and the file line (header = line 1)."""
    text = sequences.astype(str)
    clean = text.str.replace(r"\s+", "", regex=True).str.upper().str.translate(_TRANSLATE)
    bad = ~clean.str.fullmatch(r"[ACGTN]+", na=False)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        normalize(text.iloc[row], where=f"{where} line {row + 2}")
        raise ValueError(f"{where} line {row + 2}: invalid sequence")  # normalize always raises here
    return clean


def parse_labels(labels: pd.Series, where: str) -> pd.Series:
    """Integer labels (``1`` or ``1.0``); anything else raises naming the line."""
    numbers = pd.to_numeric(labels, errors="coerce")
    bad = numbers.isna() | (numbers != np.round(numbers)) | (numbers < 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{where} line {row + 2}: label {labels.iloc[row]!r} is not an integer >= 0")
    return numbers.astype(np.int64)


def load_csv_split(path, sequence_col: str = "sequence", label_col: str = "label") -> pd.DataFrame:
    """One labelled CSV(.gz) -> DataFrame ``sequence, label`` (normalised, int labels)."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False,
                            compression="gzip" if is_gzip(path) else None)
    except pd.errors.EmptyDataError as error:
        raise ValueError(f"{path}: empty file") from error
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ValueError(f"{path}: corrupt or truncated gzip ({error})") from error
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in (sequence_col, label_col) if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    if frame.empty:
        raise ValueError(f"{path}: no rows")
    return pd.DataFrame({
        "sequence": normalize_column(frame[sequence_col], str(path)),
        "label": parse_labels(frame[label_col], str(path)),
    })


# ---------------------------------------------------------------- split checks and policies

def check_labels(splits: dict[str, pd.DataFrame], num_classes: int | None = None) -> int:
    """Labels must be ``0..C-1``, all present in train, and dev/test labels seen in train.
    Returns C (``num_classes`` when given, else ``max(train)+1``)."""
    for name in SPLITS:
        if splits[name].empty:
            raise ValueError(f"split {name!r} is empty")
    train = set(splits["train"]["label"].unique().tolist())
    classes = num_classes if num_classes is not None else max(train) + 1
    if classes < 2:
        raise ValueError(f"only {classes} class; a classification task needs at least 2")
    for name in SPLITS:
        labels = set(splits[name]["label"].unique().tolist())
        unseen = sorted(labels - train)
        if unseen:
            raise ValueError(f"split {name!r}: labels {unseen} do not occur in train")
        outside = sorted(label for label in labels if not 0 <= label < classes)
        if outside:
            raise ValueError(f"split {name!r}: labels {outside} outside 0..{classes - 1}")
    absent = sorted(set(range(classes)) - train)
    if absent:
        raise ValueError(f"train lacks classes {absent} of 0..{classes - 1}")
    return classes


def apply_max_length(splits: dict[str, pd.DataFrame], max_length: int, truncate: bool = False,
                     where: str = "") -> list[str]:
    """Enforce ``max_length`` in place; returns deviation notes (truncation counts)."""
    notes = []
    for name in SPLITS:
        lengths = splits[name]["sequence"].str.len()
        over = lengths > max_length
        if not over.any():
            continue
        if not truncate:
            row = int(np.flatnonzero(over.to_numpy())[0])
            raise ValueError(f"{where}{name} row {row + 1}: length {int(lengths.iloc[row])} exceeds "
                             f"max_length {max_length} (pass truncate=True to cut)")
        splits[name] = splits[name].assign(sequence=splits[name]["sequence"].str.slice(0, max_length))
        notes.append(f"{name}: {int(over.sum())} sequences truncated to {max_length} bp")
    return notes


def stratified_assign(labels, fractions: dict[str, float], seed: int) -> np.ndarray:
    """Give each item a split name, per class in the given proportions (seeded).
    Each split gets at least one item of a class when the class has enough items."""
    labels = np.asarray(labels)
    names = list(fractions)
    weights = np.array([fractions[n] for n in names], dtype=float)
    weights = weights / weights.sum()
    rng = np.random.default_rng(seed)
    out = np.empty(len(labels), dtype=object)
    for label in sorted(set(labels.tolist())):
        index = rng.permutation(np.flatnonzero(labels == label))
        counts = np.floor(weights * len(index)).astype(int)
        counts = np.maximum(counts, (len(index) >= len(names)) & (weights > 0))
        counts[0] = len(index) - counts[1:].sum()
        out[index] = np.repeat(names, counts)
    return out


def subsample_train(splits: dict[str, pd.DataFrame], max_train: int | None, seed: int) -> list[str]:
    """Stratified seeded subsample of train to ``max_train`` rows (in place); deviation notes."""
    train = splits["train"]
    if max_train is None or len(train) <= max_train:
        return []
    groups = [group.index.to_numpy() for _, group in train.groupby("label")]
    quota = np.array([len(g) for g in groups]) * max_train / len(train)
    take = np.maximum(np.floor(quota).astype(int), 1)
    for i in np.argsort(np.floor(quota) - quota)[: max(0, max_train - take.sum())]:
        take[i] += 1  # largest remainders first, so exactly max_train rows are kept
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(g, size=n, replace=False) for g, n in zip(groups, take)])
    splits["train"] = train.loc[sorted(keep)].reset_index(drop=True)
    return [f"train subsampled to {len(splits['train'])} of {len(train)} (stratified, seed {seed})"]


# ---------------------------------------------------------------- builders

def load_gue_task(task_dir, reduced_train: bool = False, dev_fraction: float = 0.1,
                  seed: int = 0) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """A GUE-style folder -> (splits, deviations).

    Without ``train.csv`` the task is refused unless ``reduced_train``: then train is dev minus
    a stratified ``dev_fraction`` slice that becomes the internal dev set, and test is the
    official test; the deviation says so.
    """
    task_dir = Path(task_dir)
    if (task_dir / "train.csv").exists():
        return {name: load_csv_split(task_dir / f"{name}.csv") for name in SPLITS}, []
    if not reduced_train:
        raise FileNotFoundError(f"{task_dir}/train.csv is absent (reduced-train mode is off)")
    dev = load_csv_split(task_dir / "dev.csv")
    assign = stratified_assign(dev["label"], {"train": 1 - dev_fraction, "dev": dev_fraction}, seed)
    splits = {
        "train": dev[assign == "train"].reset_index(drop=True),
        "dev": dev[assign == "dev"].reset_index(drop=True),
        "test": load_csv_split(task_dir / "test.csv"),
    }
    note = (f"reduced-train: official train.csv absent; trained on {len(splits['train'])} rows of "
            f"the official dev set, internal dev = {len(splits['dev'])} held-out dev rows "
            f"(stratified, seed {seed}); reported on the official test set")
    return splits, [note]


def csv_table_task(path, sequence_col: str, label_col: str, fractions: dict[str, float],
                   seed: int) -> dict[str, pd.DataFrame]:
    """One labelled CSV without official splits -> seeded stratified train/dev/test."""
    frame = dedupe(load_csv_split(path, sequence_col, label_col))
    return _split_frame(frame, stratified_assign(frame["label"], fractions, seed))


def fasta_classes_task(files: list, fractions: dict[str, float], seed: int,
                       unique_ids: bool = True) -> dict[str, pd.DataFrame]:
    """One FASTA file per class (label = position in ``files``) -> stratified seeded splits.
    Identical sequences are removed as :func:`dedupe` does; ``unique_ids`` as in
    :func:`stream_fasta`."""
    frames = [pd.DataFrame({"sequence": list(read_fasta(path, unique_ids).values()), "label": label})
              for label, path in enumerate(files)]
    frame = dedupe(pd.concat(frames, ignore_index=True))
    return _split_frame(frame, stratified_assign(frame["label"], fractions, seed))


def read_label_table(path, name_col: str, label_col: str) -> pd.DataFrame:
    """A TSV/CSV(.gz) label table -> DataFrame ``name, label_name`` (rows with empty labels dropped).
    ``name`` is cut at the first whitespace, as FASTA ids are (see :func:`stream_fasta`)."""
    sep = "\t" if ".tsv" in Path(path).name else ","
    table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False,
                        compression="gzip" if is_gzip(path) else None)
    missing = [c for c in (name_col, label_col) if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(table.columns)}")
    table = table.rename(columns={name_col: "name", label_col: "label_name"})[["name", "label_name"]]
    table["name"] = table["name"].str.split().str[0]
    if table["name"].duplicated().any():
        raise ValueError(f"{path}: duplicate name {table['name'][table['name'].duplicated()].iloc[0]!r}")
    return table[table["label_name"].str.strip() != ""].reset_index(drop=True)


def genome_fragments_task(fasta, label_table, name_col: str, label_col: str, fragment_length: int,
                          min_genomes: int, fractions: dict[str, float], seed: int,
                          max_n_fraction: float = 0.0,
                          fragments_per_genome: int | None = None) -> tuple[dict[str, pd.DataFrame], list[str], dict]:
    """Labelled genomes -> fragment classification, split by genome (no genome in two splits).

    Classes are the labels with at least ``min_genomes`` genomes (sorted by name). Each genome is
    tiled into non-overlapping ``fragment_length`` fragments from a seeded random offset;
    fragments with more than ``max_n_fraction`` N are dropped; optionally at most
    ``fragments_per_genome`` are kept. Genomes are assigned to splits stratified by class.
    Returns (splits with a ``genome`` column, label names, per-split genome lists).
    """
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
        pieces = [sequence[s:s + fragment_length] for s in starts]
        pieces = [p for p in pieces if p.count("N") <= max_n_fraction * fragment_length]
        if fragments_per_genome is not None and len(pieces) > fragments_per_genome:
            pieces = [pieces[i] for i in sorted(rng.choice(len(pieces), fragments_per_genome, replace=False))]
        rows.extend((p, label, name, split) for p in pieces)
    frame = pd.DataFrame(rows, columns=["sequence", "label", "genome", "split"])
    splits = {name: frame[frame["split"] == name].drop(columns="split").reset_index(drop=True)
              for name in SPLITS}
    genome_lists = {name: sorted(table.loc[table["split"] == name, "name"]) for name in SPLITS}
    return splits, label_names, genome_lists


def dedupe(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep one copy of each sequence (so none spans two splits); drop sequences that occur
    with two different labels."""
    conflicting = frame.groupby("sequence")["label"].transform("nunique") > 1
    return frame[~conflicting].drop_duplicates("sequence").reset_index(drop=True)


def _split_frame(frame: pd.DataFrame, assign: np.ndarray) -> dict[str, pd.DataFrame]:
    return {name: frame[assign == name].reset_index(drop=True) for name in SPLITS}


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
    task_dir = Path(task_dir)
    meta = json.loads((task_dir / "meta.json").read_text())
    splits = {name: pd.read_csv(task_dir / f"{name}.csv", dtype={"sequence": str, "label": np.int64})
              for name in SPLITS}
    return splits, meta
