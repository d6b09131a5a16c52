"""Classification tasks derived from the embedded genomes' sequence and annotation (species,
genus, coding vs non-coding windows): windows tiled along each chromosome, split by contiguous
blocks so that no train window shares a base with a test window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vqdna.data.genomes import embedded_genomes, read_cds_intervals, read_contigs
from vqdna.data.splitting import SPLITS


def block_splits(n_blocks: int, fractions: dict[str, float]) -> np.ndarray:
    """Split name of each of ``n_blocks`` equal blocks of a chromosome, in proportion, with the
    held-out splits at the chromosome's tail (train first, then dev, then test). The corpus holds
    out the tail of a single-chromosome genome too (``validation_regions``), so with
    ``corpus.val_fraction`` >= the dev + test fraction, pre-training never sees a dev or test
    window of the annotation-derived tasks."""
    names = [name for name in SPLITS if name in fractions]
    counts = np.floor(np.array([fractions[n] for n in names]) / sum(fractions.values()) * n_blocks).astype(
        int
    )
    counts = np.maximum(counts, 1)
    counts[0] = n_blocks - counts[1:].sum()
    return np.repeat(names, counts)


def tile_windows(
    genome: dict,
    length: int,
    block_of_split: np.ndarray,
    max_n_fraction: float,
    step: int | None = None,
    within: str = "block",
) -> pd.DataFrame:
    """Windows of a single-chromosome genome, every ``step`` bp (default ``length``: no
    overlap), with their split.

    The chromosome is cut into ``len(block_of_split)`` blocks of equal *fraction* of its length;
    the same block map is used for every species, so syntenic (orthologous) regions, which sit
    at about the same relative position on these chromosomes, fall in the same split. Windows
    crossing a block boundary are dropped (``within="block"``), or only those crossing a split
    boundary (``within="split"``: long windows on short chromosomes). Either way no two splits
    share a base; with ``step < length`` windows of one split overlap each other."""
    if within not in ("block", "split"):
        raise ValueError(f"within must be 'block' or 'split', got {within!r}")
    ((contig, sequence),) = read_contigs(genome["fasta"]).items()
    n_blocks = len(block_of_split)
    starts = np.arange(0, len(sequence) - length + 1, step or length)
    first = starts * n_blocks // len(sequence)
    last = (starts + length - 1) * n_blocks // len(sequence)
    same = (first == last) if within == "block" else (block_of_split[first] == block_of_split[last])
    rows = [
        (sequence[s : s + length], int(s), block_of_split[b])
        for s, b, keep in zip(starts, first, same)
        if keep
    ]
    frame = pd.DataFrame(rows, columns=["sequence", "start", "split"])
    frame["contig"], frame["species"] = contig, genome["species"]
    return frame[frame["sequence"].str.count("N") <= max_n_fraction * length].reset_index(drop=True)


def cds_label(frame: pd.DataFrame, intervals: np.ndarray, length: int) -> pd.Series:
    """1 = window wholly inside a merged CDS interval, 0 = no CDS overlap, NaN = partial."""
    starts = frame["start"].to_numpy()
    index = np.searchsorted(intervals[:, 0], starts, side="right") - 1
    inside = (index >= 0) & (starts + length <= intervals[np.maximum(index, 0), 1])
    next_index = np.minimum(index + 1, len(intervals) - 1)
    touches_prev = (index >= 0) & (starts < intervals[np.maximum(index, 0), 1])
    touches_next = (index + 1 < len(intervals)) & (intervals[next_index, 0] < starts + length)
    label = np.where(inside, 1.0, np.where(touches_prev | touches_next, np.nan, 0.0))
    return pd.Series(label, index=frame.index)


def annotation_task(
    kind: str,
    species: list[str] | None = None,
    length: int = 200,
    n_per_class: int = 1000,
    fractions: dict[str, float] | None = None,
    n_blocks: int = 20,
    max_n_fraction: float = 0.0,
    step: int | None = None,
    within: str = "block",
    genus: str | None = None,
    seed: int = 0,
) -> tuple[dict[str, pd.DataFrame], list[str], dict]:
    """Build an annotation-derived task from the embedded genomes.

    ``kind``: ``"species"`` (class = species, over ``species``), ``"genus"`` (class = genus) or
    ``"coding"`` (CDS vs non-coding windows from genomes with GFF). ``species`` restricts the
    genomes (None = all that fit the kind; ``genus`` keeps one genus). Splits come from chromosome
    blocks (see :func:`tile_windows`, which also takes ``step`` and ``within``); exact duplicate
    windows are dropped everywhere (repeats would otherwise cross splits; a duplicate with two
    labels is dropped entirely); then each class
    keeps at most ``n_per_class`` windows (seeded). Returns (splits, label names, provenance).
    """
    fractions = fractions or {"train": 0.8, "dev": 0.1, "test": 0.1}
    genomes = [
        g
        for g in embedded_genomes()
        if (species is None or g["species"] in species) and (genus is None or g["genus"] == genus)
    ]
    if kind == "coding":
        genomes = [g for g in genomes if g["gff"]]
    if not genomes:
        raise ValueError(f"no embedded genome fits kind={kind!r}, species={species}")
    block_of_split = block_splits(n_blocks, fractions)
    frames = []
    for genome in genomes:
        frame = tile_windows(genome, length, block_of_split, max_n_fraction, step, within)
        if kind == "coding":
            frame["label_name"] = cds_label(
                frame, read_cds_intervals(genome["gff"], genome["contig"]), length
            ).map({1.0: "coding", 0.0: "non-coding"})
        else:
            frame["label_name"] = genome["species" if kind == "species" else "genus"]
        frames.append(frame.dropna(subset=["label_name"]))
    frame = pd.concat(frames, ignore_index=True)
    labels_per_sequence = frame.groupby("sequence")["label_name"].transform("nunique")
    frame = frame[labels_per_sequence == 1].drop_duplicates("sequence")
    label_names = sorted(frame["label_name"].unique())
    frame["label"] = frame["label_name"].map({name: i for i, name in enumerate(label_names)})
    rng = np.random.default_rng(seed)
    keep = [
        rng.choice(index, size=min(n_per_class, len(index)), replace=False)
        for index in frame.groupby("label").groups.values()
    ]
    frame = frame.loc[np.sort(np.concatenate(keep))]
    splits = {
        name: frame[frame["split"] == name][["sequence", "label", "species", "contig", "start"]].reset_index(
            drop=True
        )
        for name in SPLITS
    }
    provenance = {
        "genomes": [{k: g[k] for k in ("species", "contig", "fasta", "gff")} for g in genomes],
        "window": length,
        "step": step or length,
        "within": within,
        "n_blocks": n_blocks,
        "max_n_fraction": max_n_fraction,
        "per_class": {name: int((frame["label_name"] == name).sum()) for name in label_names},
    }
    return splits, label_names, provenance
