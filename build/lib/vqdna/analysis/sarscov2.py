"""SARS-CoV-2 variant analysis of the paper's Fig. 5: clade-defining mutations against Wuhan-Hu-1,
whether each codebook level's codes react to them, and lineage structure of embeddings.

Independent of torch: token codes and embeddings come in as numpy arrays. Coordinates are
0-based everywhere except the ``site`` column of the Nextstrain clade table, which is the
1-based nucleotide position on Wuhan-Hu-1 (MN908947.3).

Alignment: each genome is anchored to the reference by k-mers that occur once in the reference,
the anchors are chained (longest chain increasing in both sequences), and only the short
stretches between anchors (point mutations, indels, N runs) and the unanchored ends are aligned
with Biopython's affine-gap ``PairwiseAligner``. For genomes that are >99% identical this gives
the global alignment at a tiny fraction of a full 30 kb x 30 kb dynamic programme.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from Bio.Align import PairwiseAligner

from vqdna.core.sequence import to_indices

if TYPE_CHECKING:
    from vqdna.tokenizers import CodebookTokenizer, Tokenizer


# ---------------------------------------------------------------------------------------------
# Alignment to the reference
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CoordinateMap:
    """Aligned positions of one genome against the reference (0-based; -1 = no partner:
    deleted or unsequenced reference base, inserted genome base)."""

    ref_to_genome: np.ndarray
    genome_to_ref: np.ndarray

    def to_genome(self, ref_positions) -> np.ndarray:
        return self.ref_to_genome[np.asarray(ref_positions)]

    def to_reference(self, genome_positions) -> np.ndarray:
        return self.genome_to_ref[np.asarray(genome_positions)]


def make_aligner(
    match: float = 2,
    mismatch: float = -4,
    gap_open: float = -6,
    gap_extend: float = -2,
    free_end: str | None = None,
) -> PairwiseAligner:
    """Global affine-gap aligner (minimap2-like scores; N scores 0 against anything).
    ``free_end`` "left" / "right": gaps at that end cost nothing (unanchored genome ends)."""
    aligner = PairwiseAligner(
        mode="global",
        match_score=match,
        mismatch_score=mismatch,
        open_gap_score=gap_open,
        extend_gap_score=gap_extend,
        wildcard="N",
    )
    if free_end:
        setattr(aligner, f"{free_end}_gap_score", 0)
    return aligner


def _kmer_codes(seq: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """2-bit code of every k-mer start (k <= 31) and whether it is free of N."""
    index = to_indices(seq).astype(np.int64)
    valid = (index >= 0) & (index < 4)
    m = len(index) - k + 1
    code, ok = np.zeros(max(m, 0), dtype=np.int64), np.ones(max(m, 0), dtype=bool)
    for j in range(k):
        code = code * 4 + np.where(valid[j : j + m], index[j : j + m], 0)
        ok &= valid[j : j + m]
    return code, ok


@functools.lru_cache(maxsize=4)
def _unique_kmers(reference: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted codes of the k-mers that occur exactly once in ``reference``, and their positions."""
    code, ok = _kmer_codes(reference, k)
    values, first, counts = np.unique(code[ok], return_index=True, return_counts=True)
    return values[counts == 1], np.flatnonzero(ok)[first[counts == 1]]


def _anchor_runs(genome: str, reference: str, k: int) -> list[tuple[int, int, int]]:
    """Exact matches seeded by reference-unique k-mers: (genome start, ref start, length), one
    per run of consecutive seeds on the same diagonal, in genome order."""
    values, positions = _unique_kmers(reference, k)
    code, ok = _kmer_codes(genome, k)
    starts = np.flatnonzero(ok)
    slot = np.clip(np.searchsorted(values, code[ok]), 0, max(len(values) - 1, 0))
    hit = values[slot] == code[ok] if len(values) else np.zeros(len(starts), dtype=bool)
    g, r = starts[hit], positions[slot[hit]]
    if not len(g):
        return []
    breaks = np.flatnonzero((np.diff(g) != 1) | (np.diff(g - r) != 0)) + 1
    first, last = np.concatenate([[0], breaks]), np.concatenate([breaks, [len(g)]]) - 1
    return [(int(g[a]), int(r[a]), int(g[b] - g[a] + k)) for a, b in zip(first, last)]


def _chain(runs: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Longest subsequence of runs (in genome order) whose reference starts strictly increase
    (patience sorting, O(n log n))."""
    tails: list[int] = []  # smallest ref start ending a chain of each length
    tail_index: list[int] = []
    parent = [-1] * len(runs)
    for i, (_, r, _) in enumerate(runs):
        j = bisect.bisect_left(tails, r)
        if j == len(tails):
            tails.append(r)
            tail_index.append(i)
        else:
            tails[j], tail_index[j] = r, i
        parent[i] = tail_index[j - 1] if j else -1
    chain, i = [], tail_index[-1] if tail_index else -1
    while i >= 0:
        chain.append(runs[i])
        i = parent[i]
    return chain[::-1]


def _blocks(chain: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Chained runs -> exact-match blocks that do not overlap in either sequence (each run's
    start is clipped past the previous block's end; runs clipped to nothing are dropped)."""
    blocks: list[tuple[int, int, int]] = []
    for g, r, length in chain:
        if blocks:
            pg, pr, pl = blocks[-1]
            skip = max(0, pg + pl - g, pr + pl - r)
            g, r, length = g + skip, r + skip, length - skip
        if length > 0:
            blocks.append((g, r, length))
    return blocks


def align_to_reference(
    genome: str, reference: str, k: int = 21, aligner: PairwiseAligner | None = None
) -> CoordinateMap:
    """Align ``genome`` to ``reference`` (both normalised, upper-case) -> :class:`CoordinateMap`.

    ``k``: anchor length (21 is unique within a coronavirus genome and still hits between
    mutations spaced > 21 bp apart). ``aligner`` scores the gaps between anchors (default
    :func:`make_aligner`)."""
    blocks = _blocks(_chain(_anchor_runs(genome, reference, k)))
    ref_to_genome = np.full(len(reference), -1, dtype=np.int64)
    inner, left, right = (
        aligner or make_aligner(),
        make_aligner(free_end="left"),
        make_aligner(free_end="right"),
    )

    def fill(g0, g1, r0, r1, which):
        if g1 > g0 and r1 > r0:
            rows = which.align(reference[r0:r1], genome[g0:g1])[0].indices
            both = (rows >= 0).all(axis=0)
            ref_to_genome[r0 + rows[0, both]] = g0 + rows[1, both]

    if not blocks:
        fill(0, len(genome), 0, len(reference), make_aligner(free_end="end"))
    else:
        g_end = r_end = 0
        for n, (g, r, length) in enumerate(blocks):
            fill(g_end, g, r_end, r, left if n == 0 else inner)
            ref_to_genome[r : r + length] = np.arange(g, g + length)
            g_end, r_end = g + length, r + length
        fill(g_end, len(genome), r_end, len(reference), right)
    genome_to_ref = np.full(len(genome), -1, dtype=np.int64)
    mapped = ref_to_genome >= 0
    genome_to_ref[ref_to_genome[mapped]] = np.flatnonzero(mapped)
    return CoordinateMap(ref_to_genome, genome_to_ref)


def differing_positions(genome: str, reference: str, cmap: CoordinateMap) -> np.ndarray:
    """Reference positions where the genome is not a plain copy: substituted, deleted, N, or
    flanking an insertion (sorted, 0-based)."""
    ref = np.frombuffer(reference.encode(), dtype=np.uint8)
    gen = np.frombuffer(genome.encode(), dtype=np.uint8)
    mapped = cmap.ref_to_genome >= 0
    differs = ~mapped
    differs[mapped] = gen[cmap.ref_to_genome[mapped]] != ref[mapped]
    inserted = np.flatnonzero(cmap.genome_to_ref < 0)
    flank = cmap.genome_to_ref[np.clip(np.concatenate([inserted - 1, inserted + 1]), 0, len(genome) - 1)]
    differs[flank[flank >= 0]] = True
    return np.flatnonzero(differs)


# ---------------------------------------------------------------------------------------------
# Clade-defining mutations
# ---------------------------------------------------------------------------------------------
def read_clades(path: str | Path) -> pd.DataFrame:
    """Nextstrain ``clades.tsv`` -> rows ``clade, gene, site, alt`` (``gene`` "clade" rows name
    the parent clade in ``site``)."""
    table = pd.read_csv(path, sep="\t", dtype=str, comment="#").dropna(how="all")
    return table.rename(columns=str.strip)[["clade", "gene", "site", "alt"]]


def clade_definition(clades: pd.DataFrame, clade: str) -> dict[int, str]:
    """1-based site -> allele defining ``clade``, including its ancestors' sites (a clade's own
    allele overrides its parent's at the same site)."""
    rows = clades[clades["clade"] == clade]
    if rows.empty:
        raise KeyError(f"clade {clade!r} not in the clade table")
    parents = rows.loc[rows["gene"] == "clade", "site"]
    inherited = clade_definition(clades, parents.iloc[0]) if len(parents) else {}
    own = rows[rows["gene"] == "nuc"]
    return {**inherited, **dict(zip(own["site"].astype(int), own["alt"]))}


def mutation_sites(
    genome: str, reference: str, clades: pd.DataFrame | str | Path, cmap: CoordinateMap | None = None
) -> pd.DataFrame:
    """Every clade-defining nucleotide site with this genome's allele.

    Columns: clade, site (1-based), ref_index (0-based), ref_allele, alt, genome_index (-1 =
    deleted / unsequenced), genome_allele ("-" there), carries_alt. ``cmap`` defaults to
    :func:`align_to_reference`."""
    clades = read_clades(clades) if isinstance(clades, (str, Path)) else clades
    cmap = cmap or align_to_reference(genome, reference)
    nuc = clades[clades["gene"] == "nuc"]
    site = nuc["site"].astype(int).to_numpy()
    genome_index = cmap.to_genome(site - 1)
    genome_allele = np.array([genome[i] if i >= 0 else "-" for i in genome_index])
    return pd.DataFrame(
        {
            "clade": nuc["clade"].to_numpy(),
            "site": site,
            "ref_index": site - 1,
            "ref_allele": [reference[i] for i in site - 1],
            "alt": nuc["alt"].to_numpy(),
            "genome_index": genome_index,
            "genome_allele": genome_allele,
            "carries_alt": genome_allele == nuc["alt"].to_numpy(),
        }
    )


# ---------------------------------------------------------------------------------------------
# Per-level code changes at mutations
# ---------------------------------------------------------------------------------------------
def code_changes_at_sites(
    ref_codes: np.ndarray,
    genome_codes: np.ndarray,
    cmap: CoordinateMap,
    sites,
    window: int = 0,
    mutated=None,
    exclusion: int = 32,
    n_background: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Per codebook level: share of positions whose code differs from the reference's code at
    the aligned position, at mutation sites vs at unmutated background positions.

    ``ref_codes`` (T_ref, L) and ``genome_codes`` (T_genome, L): one code per base and level
    (stride-1 tokenizer; level 0 = coarsest). ``sites``: 0-based reference positions of the
    mutations; a site counts with the positions within ``window`` bp of it. Background: mapped
    reference positions farther than ``exclusion`` bp (about the tokenizer's receptive field)
    from every site and every position in ``mutated`` (e.g. :func:`differing_positions`;
    default ``sites``), all of them or ``n_background`` sampled with ``seed``.
    Columns: level, n_site, site_changed, n_background, background_changed, ratio.
    """
    ref_codes, genome_codes = np.asarray(ref_codes), np.asarray(genome_codes)
    ref_codes = ref_codes[:, None] if ref_codes.ndim == 1 else ref_codes
    genome_codes = genome_codes[:, None] if genome_codes.ndim == 1 else genome_codes
    sites = np.asarray(sites, dtype=np.int64)
    span = min(len(ref_codes), len(cmap.ref_to_genome))

    def usable(positions):
        positions = positions[(positions >= 0) & (positions < span)]
        g = cmap.ref_to_genome[positions]
        keep = (g >= 0) & (g < len(genome_codes))
        return positions[keep], g[keep]

    near = np.unique((sites[:, None] + np.arange(-window, window + 1)).ravel())
    site_ref, site_gen = usable(near)
    blocked = np.union1d(sites, np.asarray(mutated if mutated is not None else [], dtype=np.int64))
    distance = np.full(span, np.inf)
    if len(blocked):
        positions = np.arange(span)
        right = np.clip(np.searchsorted(blocked, positions), 0, len(blocked) - 1)
        left = np.clip(right - 1, 0, len(blocked) - 1)
        distance = np.minimum(np.abs(blocked[right] - positions), np.abs(blocked[left] - positions))
    background = np.flatnonzero(distance > exclusion)
    if n_background is not None and n_background < len(background):
        background = np.sort(np.random.default_rng(seed).choice(background, n_background, replace=False))
    back_ref, back_gen = usable(background)

    rows = []
    for level in range(ref_codes.shape[1]):
        site_changed = (
            (ref_codes[site_ref, level] != genome_codes[site_gen, level]).mean() if len(site_ref) else np.nan
        )
        back_changed = (
            (ref_codes[back_ref, level] != genome_codes[back_gen, level]).mean() if len(back_ref) else np.nan
        )
        rows.append(
            dict(
                level=level,
                n_site=len(site_ref),
                site_changed=site_changed,
                n_background=len(back_ref),
                background_changed=back_changed,
                ratio=site_changed / back_changed if back_changed > 0 else np.nan,
            )
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Lineage structure of embeddings
# ---------------------------------------------------------------------------------------------
def silhouette_and_knn(
    embeddings: np.ndarray, labels, k: int = 5, seed: int = 0, sample_size: int | None = None
) -> dict:
    """Lineage structure of per-genome embeddings: sklearn silhouette score (Euclidean;
    ``sample_size`` genomes sampled with ``seed`` if given) and leave-one-out k-NN accuracy
    (majority of the ``k`` nearest other genomes; ties to the nearest neighbour's label)."""
    from sklearn.metrics import pairwise_distances, silhouette_score

    x = np.asarray(embeddings, dtype=np.float64)
    codes, y = np.unique(np.asarray(labels), return_inverse=True)
    distances = pairwise_distances(x)
    np.fill_diagonal(distances, np.inf)
    neighbours = np.argsort(distances, axis=1, kind="stable")[:, :k]
    votes = np.zeros((len(x), len(codes)))
    np.add.at(votes, (np.arange(len(x))[:, None], y[neighbours]), 1.0)
    votes[np.arange(len(x)), y[neighbours[:, 0]]] += 0.5  # tie-break: the nearest neighbour
    return {
        "silhouette": float(silhouette_score(x, y, sample_size=sample_size, random_state=seed)),
        "knn_accuracy": float((votes.argmax(axis=1) == y).mean()),
        "k": k,
        "n": len(x),
    }


def umap_2d(
    embeddings: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1
) -> np.ndarray:
    """2-D UMAP of the embeddings (fixed ``random_state``, so reproducible single-threaded)."""
    import warnings

    from tqdm import TqdmWarning

    with warnings.catch_warnings():  # umap imports tqdm.auto, whose widget notice is noise in a page
        warnings.simplefilter("ignore", TqdmWarning)
        import umap

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(n_neighbors, len(embeddings) - 1),
        min_dist=min_dist,
        random_state=seed,
        n_jobs=1,
    )  # a seed means one thread anyway
    return reducer.fit_transform(np.asarray(embeddings))


def genome_codes(tokenizer: CodebookTokenizer, genome: str) -> np.ndarray:
    """Per-token codes (T, levels) of a whole genome (one token per base at stride 1)."""
    import torch

    return tokenizer.ids_to_levels(
        torch.as_tensor(tokenizer.encode(genome, add_special_tokens=False))
    ).numpy()


def token_profiles(tokenizer: Tokenizer, genomes: list[str]) -> dict[str, np.ndarray]:
    """Tokenizer-level per-genome embeddings: square-root token frequencies over the genome,
    one matrix (genomes x vocabulary) per codebook level ("vocabulary" for char/k-mer/BPE).
    Needs no encoder, so it shows what each vocabulary level itself separates."""
    from vqdna.train.stages import usage_counts

    profiles: dict[str, list[np.ndarray]] = {}
    for genome in genomes:
        for level, counts in usage_counts(tokenizer, [genome]).items():
            profiles.setdefault(level, []).append(np.sqrt(counts / max(1, counts.sum())))
    return {level: np.stack(rows) for level, rows in profiles.items()}
