"""Pre-training corpus: windows streamed from the embedded genomes (vqdna.data.genomes) and any
extra FASTA, split into train and validation.

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

The corpus job (:func:`build_corpus`, :func:`read_windows`, :func:`corpus_deviations`) sits at the
end, beside what it calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vqdna.core.files import stream_fasta
from vqdna.core.protocol import MIN_PAPER_BP, PAPER_PROFILE, SMALL_CORPUS
from vqdna.core.settings import CorpusConfig
from vqdna.data.genomes import embedded_genomes

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
