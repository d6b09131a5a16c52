"""Alignment to Wuhan-Hu-1, clade-defining sites, per-level code changes, embedding structure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vqdna.analysis import sarscov2 as sc
from vqdna.core.files import read_fasta

D614G = 23403  # spike D614G, nuc A23403G: defines 20A and every clade after it


@pytest.fixture(scope="module")
def cov(shared_data):
    folder = shared_data / "sars_cov_2"
    if not folder.is_dir():
        pytest.skip("sars_cov_2 data not present")
    genomes = read_fasta(folder / "nextclade_examples_union.fasta")
    labels = pd.read_csv(folder / "nextclade_examples_union_labels.tsv", sep="\t").set_index("name")
    reference = next(iter(read_fasta(folder / "ncov_reference_seq.fasta").values()))
    return genomes, labels, reference, sc.read_clades(folder / "ncov_clades.tsv")


@pytest.mark.parametrize(
    "name", ["USA/FL-CDC-STM-000062223/2021", "CAN/ON-NML-249359/2021"]
)  # Delta, Omicron
def test_variant_carries_its_clade_alleles(cov, name):
    genomes, labels, reference, clades = cov
    genome, clade = genomes[name], labels.loc[name, "clade"]
    cmap = sc.align_to_reference(genome, reference)
    sites = sc.mutation_sites(genome, reference, clades, cmap).drop_duplicates("site").set_index("site")
    definition = sc.clade_definition(clades, clade)
    assert len(definition) >= 8
    called = {s: a for s, a in definition.items() if sites.loc[s, "genome_allele"] != "N"}
    assert len(called) >= 0.9 * len(definition)
    assert all(sites.loc[s, "genome_allele"] == alt for s, alt in called.items())
    own = sc.mutation_sites(reference, reference, clades).drop_duplicates("site").set_index("site")
    mutated = [s for s, a in definition.items() if reference[s - 1] != a]
    assert len(mutated) >= 6
    assert all(own.loc[s, "genome_allele"] == reference[s - 1] != definition[s] for s in mutated)
    # D614G: mapped to the right genome base, with the flanks matching the reference
    g = sites.loc[D614G, "genome_index"]
    assert genome[g] == "G" and reference[D614G - 1] == "A" and sites.loc[D614G, "carries_alt"]
    assert genome[g - 12 : g] == reference[D614G - 13 : D614G - 1]
    assert cmap.to_reference([g])[0] == D614G - 1


def test_pre_20a_genome_lacks_d614g(cov):
    genomes, labels, reference, clades = cov
    name = "Japan/DP0078/2020"
    assert labels.loc[name, "clade"] == "19A"
    sites = sc.mutation_sites(genomes[name], reference, clades).set_index(["clade", "site"])
    assert sites.loc[("20A", D614G), "genome_allele"] == "A"
    assert not sites.loc[("20A", D614G), "carries_alt"]


def test_clade_definition_inherits_and_overrides(cov):
    *_, clades = cov
    assert sc.clade_definition(clades, "19A")[14408] == "C"
    child = sc.clade_definition(clades, "20B")
    assert child[14408] == "T" and child[8782] == "C" and child[D614G] == "G" and child[28881] == "A"


def test_alignment_recovers_known_edits(cov):
    *_, reference, _ = cov
    ref = reference[:6000]
    sub = 4000
    alt = "A" if ref[sub] != "A" else "C"
    genome = "NNNN" + ref[50:1000] + ref[1003:2500] + "GATTACA" + ref[2500:sub] + alt + ref[sub + 1 : 5900]
    cmap = sc.align_to_reference(genome, ref)
    assert (cmap.ref_to_genome[:46] == -1).all() and list(cmap.ref_to_genome[46:51]) == [0, 1, 2, 3, 4]
    assert (cmap.ref_to_genome[5900:] == -1).all()
    assert (cmap.ref_to_genome >= 0).sum() == 4 + 5850 - 3
    assert (cmap.genome_to_ref < 0).sum() == 7
    assert cmap.to_genome([sub])[0] == sub - 50 + 4 - 3 + 7 and genome[cmap.to_genome([sub])[0]] == alt
    assert cmap.to_genome([1500])[0] == 1500 - 50 + 4 - 3
    differing = set(sc.differing_positions(genome, ref, cmap))
    assert {sub, 2499, 2500} <= differing and len(differing & set(range(998, 1006))) == 3


def test_code_changes_at_sites_known_answer():
    length, rng = 2000, np.random.default_rng(0)
    ref_codes = rng.integers(0, 8, size=(length, 2))
    genome_codes = ref_codes.copy()
    sites = np.array([300, 900, 1500])
    genome_codes[sites, 1] += 1  # the fine level changes at every site,
    genome_codes[sites[:1], 0] += 1  # the coarse one at one site of three
    genome_codes[[600, 1200, 1800], 0] += 1  # and at background positions, 3 of 1994 - 3*65 ...
    identity = sc.CoordinateMap(np.arange(length), np.arange(length))
    table = sc.code_changes_at_sites(ref_codes, genome_codes, identity, sites, exclusion=32).set_index(
        "level"
    )
    n_background = length - 3 * 65
    assert table.loc[1, "n_site"] == 3 and table.loc[1, "site_changed"] == 1.0
    assert table.loc[0, "site_changed"] == pytest.approx(1 / 3)
    assert table.loc[0, "n_background"] == n_background
    assert table.loc[0, "background_changed"] == pytest.approx(3 / n_background)
    assert table.loc[1, "background_changed"] == 0 and np.isnan(table.loc[1, "ratio"])
    windowed = sc.code_changes_at_sites(ref_codes, genome_codes, identity, sites, window=2).set_index("level")
    assert windowed.loc[1, "n_site"] == 15 and windowed.loc[1, "site_changed"] == pytest.approx(3 / 15)
    # positions near another mutation are not background; a sampled background has the asked size
    blocked = sc.code_changes_at_sites(ref_codes, genome_codes, identity, sites, mutated=[600, 1200, 1800])
    assert blocked.loc[0, "background_changed"] == 0
    sampled = sc.code_changes_at_sites(ref_codes, genome_codes, identity, sites, n_background=100, seed=1)
    assert (sampled["n_background"] == 100).all()


def test_code_changes_follow_the_alignment():
    ref_codes = np.arange(100)[:, None]
    genome_codes = np.concatenate([np.arange(50), [999], np.arange(50, 100)])[:, None]  # 1 bp insertion
    genome_codes[70] = -5  # the reference position 69 changed
    cmap = sc.CoordinateMap(
        np.concatenate([np.arange(50), np.arange(51, 101)]),
        np.concatenate([np.arange(50), [-1], np.arange(50, 100)]),
    )
    table = sc.code_changes_at_sites(ref_codes, genome_codes, cmap, [69], exclusion=10)
    assert table.loc[0, "site_changed"] == 1.0 and table.loc[0, "background_changed"] == 0


def test_silhouette_and_knn_on_separable_blobs():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (20, 4)), rng.normal(5, 0.1, (20, 4))])
    labels = np.array(["Delta"] * 20 + ["Omicron"] * 20)
    result = sc.silhouette_and_knn(x, labels, k=5)
    assert result["silhouette"] > 0.9 and result["knn_accuracy"] == 1.0 and result["n"] == 40
    shuffled = sc.silhouette_and_knn(x, rng.permutation(labels), k=5)
    assert shuffled["silhouette"] < 0.2 and shuffled["knn_accuracy"] < 0.8
