"""The three splits of a task and the rules applied to them: labels checked (``0..C-1``, every
class in train, no dev/test label unseen in train), ``max_length`` enforced (an error unless
``truncate=True``, which cuts and reports the count as a deviation), seeded stratified
assignment and subsampling, and the source columns (``file``, ``line`` / ``record``) that let
an error name the input row until the prepared task drops them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a table is built: reading FASTA does not need its ~30 MB
    import pandas as pd

SPLITS = ("train", "dev", "test")


def check_labels(splits: dict[str, pd.DataFrame], num_classes: int | None = None, where: str = "") -> int:
    """Labels must be ``0..C-1``, all present in train, and dev/test labels seen in train.
    Returns C (``num_classes`` when given, else ``max(train)+1``). ``where`` (e.g. the source
    files) prefixes the messages."""
    prefix = f"{where}: " if where else ""
    for name in SPLITS:
        if splits[name].empty:
            raise ValueError(f"{prefix}split {name!r} is empty")
    train = set(splits["train"]["label"].unique().tolist())
    classes = num_classes if num_classes is not None else max(train) + 1
    if classes < 2:
        raise ValueError(f"{prefix}only {classes} class; a classification task needs at least 2")
    for name in SPLITS:
        labels = set(splits[name]["label"].unique().tolist())
        unseen = sorted(labels - train)
        if unseen:
            raise ValueError(f"{prefix}split {name!r}: labels {unseen[:10]} do not occur in train")
        outside = sorted(label for label in labels if not 0 <= label < classes)
        if outside:
            raise ValueError(
                f"{_origin(splits[name], ~splits[name]['label'].between(0, classes - 1), prefix, name)}"
                f"label {outside[0]} is outside the declared classes (split {name!r}: "
                f"labels {outside[:10]} outside 0..{classes - 1})"
            )
    if len(train) < classes:  # labels are in 0..C-1 here, so fewer distinct ones means gaps
        absent = [label for label in range(min(classes, len(train) + 10)) if label not in train]
        raise ValueError(f"{prefix}train lacks classes {absent[:10]} of 0..{classes - 1}")
    return classes


def apply_max_length(
    splits: dict[str, pd.DataFrame], max_length: int, truncate: bool = False, where: str = ""
) -> list[str]:
    """Enforce ``max_length`` in place; returns deviation notes (truncation counts)."""
    notes = []
    for name in SPLITS:
        lengths = splits[name]["sequence"].str.len()
        over = lengths > max_length
        if not over.any():
            continue
        if not truncate:
            row = int(np.flatnonzero(over.to_numpy())[0])
            raise ValueError(
                f"{_origin(splits[name], over, where, name)}length {int(lengths.iloc[row])} exceeds "
                f"max_length {max_length} (pass truncate=True to cut)"
            )
        splits[name] = splits[name].assign(sequence=splits[name]["sequence"].str.slice(0, max_length))
        notes.append(f"{name}: {int(over.sum())} sequences truncated to {max_length} bp")
    return notes


def _origin(frame: pd.DataFrame, rows, where: str, split: str) -> str:
    """Where the first of ``rows`` (a boolean mask) came from: ``<file> line <n>: `` when the
    frame carries its source (``file``, ``line`` / ``record`` columns, :func:`with_source`),
    else ``<where><split> row <n>: ``."""
    index = int(np.flatnonzero(np.asarray(rows))[0])
    row = frame.iloc[index]
    if "file" in frame.columns and "line" in frame.columns:
        return f"{where}{row['file']} line {int(row['line'])}: "
    if "file" in frame.columns and "record" in frame.columns:
        return f"{where}{row['file']} record {row['record']!r}: "
    return f"{where}{split} row {index + 1}: "


SOURCE_COLUMNS = ("file", "line", "record")


def with_source(frame: pd.DataFrame, path) -> pd.DataFrame:
    """``frame`` (from :func:`load_csv_split` with ``with_lines``) with a ``file`` column: what
    label and length errors name (the prepared task keeps only ``sequence,label``)."""
    return frame.assign(file=str(path))


def drop_source(splits: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The splits without their source columns (what the prepared task keeps)."""
    return {
        name: frame.drop(columns=[c for c in SOURCE_COLUMNS if c in frame.columns])
        for name, frame in splits.items()
    }


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


def subsample_split(
    splits: dict[str, pd.DataFrame], max_rows: int | None, seed: int, split: str = "train"
) -> list[str]:
    """Stratified seeded subsample of ``split`` (default train) to ``max_rows`` rows (in place);
    -> notes ("<split> subsampled to n of N ...")."""
    rows = splits[split]
    if max_rows is None or len(rows) <= max_rows:
        return []
    groups = [group.index.to_numpy() for _, group in rows.groupby("label")]
    quota = np.array([len(g) for g in groups]) * max_rows / len(rows)
    take = np.maximum(np.floor(quota).astype(int), 1)
    for i in np.argsort(np.floor(quota) - quota)[: max(0, max_rows - take.sum())]:
        take[i] += 1  # largest remainders first, so exactly max_rows rows are kept
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(g, size=n, replace=False) for g, n in zip(groups, take)])
    splits[split] = rows.loc[sorted(keep)].reset_index(drop=True)
    return [f"{split} subsampled to {len(splits[split])} of {len(rows)} (stratified, seed {seed})"]
