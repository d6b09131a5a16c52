# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   language_info:
#     name: python
# ---

# %% [markdown]
# # SARS-CoV-2 variants through the learned vocabulary (paper Fig. 5)
# Real genomes (Nextclade example sets, lineage called from Nextstrain clade-defining
# mutations) encoded by each tokenizer. Two questions:
# 1. **Lineage structure.** Per-genome token profiles (square-root token frequencies, per HRQ
#    level; VQ, BPE and k-mer for contrast) → UMAP coloured by WHO lineage, silhouette score and
#    leave-one-out k-NN lineage accuracy per level.
# 2. **Mutation sensitivity per level.** Each genome is aligned to Wuhan-Hu-1; at the
#    clade-defining sites the genome carries, how often does each level's code differ from the
#    reference's code at the aligned position, against unmutated background positions? The
#    paper says the fine level reacts to point mutations more than the coarse level.
#
# The profiles use the tokenizers only (no encoder), so they show what each vocabulary level
# itself captures; the tokenizers here are the CPU-scale ones of this run.

# %% tags=["parameters"]
data_dir = "../shared/data/sars_cov_2"
tokenizer_names = ["hrq", "vq", "bpe", "kmer6"]
tokenizer_paths = [
    "results/tokenizers/hrq/seed0/tokenizer",
    "results/tokenizers/vq/seed0/tokenizer",
    "results/tokenizers/bpe/seed0/tokenizer",
    "results/tokenizers/kmer6/seed0/tokenizer",
]
trusted_classes = []  # tokenizer classes of your own the config names (trust_remote_code)
n_genomes = 120
out_dir = "results/by_hand/sarscov2"
metrics_path = "results/by_hand/sarscov2/metrics.json"
seed = 0
threads = 2

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from vqdna.analysis import sarscov2, tables
from vqdna.core import files
from vqdna.core.sequence import normalize
from vqdna.tokenizers import CodebookTokenizer, load_tokenizer
from vqdna.workflow.records import write_record

torch.set_num_threads(threads)
out = Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
data_dir = Path(data_dir)
labels = pd.read_csv(data_dir / "nextclade_examples_union_labels.tsv", sep="\t", dtype=str).fillna("")
labels["lineage"] = labels["who"].replace("", "pre-VOC")
per_lineage = max(2, n_genomes // labels["lineage"].nunique())  # balanced, seeded sample
chosen = labels.sample(frac=1, random_state=seed).groupby("lineage").head(per_lineage).reset_index(drop=True)
genomes_by_name = files.read_fasta(data_dir / "nextclade_examples_union.fasta")
genomes = [normalize(genomes_by_name[name.split()[0]]) for name in chosen["name"]]  # FASTA ids end at a space
reference = normalize(next(iter(files.read_fasta(data_dir / "ncov_reference_seq.fasta").values())))
clades = sarscov2.read_clades(data_dir / "ncov_clades.tsv")
chosen["lineage"].value_counts()

# %% [markdown]
# ## 1. Lineage structure of per-genome token profiles

# %%
tokenizers = {
    name: load_tokenizer(path, trust_remote_code=trusted_classes)
    for name, path in zip(tokenizer_names, tokenizer_paths)
}
structure, points = [], []
for name, tokenizer in tokenizers.items():
    for level, profile in sarscov2.token_profiles(tokenizer, genomes).items():
        scores = sarscov2.silhouette_and_knn(profile, chosen["lineage"], k=5, seed=seed)
        structure.append({"tokenizer": name, "level": level, **scores})
        xy = sarscov2.umap_2d(profile, seed=seed)
        points.append(
            pd.DataFrame(
                {"x": xy[:, 0], "y": xy[:, 1], "lineage": chosen["lineage"], "panel": f"{name} {level}"}
            )
        )
structure = pd.DataFrame(structure)
tables.write_table(structure, out / "lineage_structure")
display(Markdown(tables.markdown(structure)))

# %%
points = pd.concat(points)
grid = sns.relplot(
    data=points,
    x="x",
    y="y",
    hue="lineage",
    col="panel",
    col_wrap=3,
    kind="scatter",
    s=18,
    height=3.2,
    facet_kws={"sharex": False, "sharey": False},
)
grid.set_titles("{col_name}")
grid.figure.savefig(out / "umap.png", dpi=110, bbox_inches="tight")

# %% [markdown]
# ## 2. Do codes change at clade-defining mutations? (per level)
# Each genome is aligned to Wuhan-Hu-1; at every clade-defining site the genome carries, we ask
# whether the code at that base differs from the reference's code, per level. The background
# positions lie farther than 32 bp (about the tokenizer's receptive field) from any difference
# to the reference, so their codes should never change: a background share of 0 confirms that
# the tokens are local functions of the sequence, and is a check rather than a baseline.
# `nearby_changed` is the share of codes that change within 16 bp of the sites: how far along
# the sequence a single-base change reaches at each level.

# %%
changes = []
for name, tokenizer in tokenizers.items():
    if not isinstance(tokenizer, CodebookTokenizer) or tokenizer.params["stride"] != 1:
        continue
    ref_codes = sarscov2.genome_codes(tokenizer, reference)
    for genome, (_, row) in zip(genomes, chosen.iterrows()):
        cmap = sarscov2.align_to_reference(genome, reference)
        sites = sarscov2.mutation_sites(genome, reference, clades, cmap)
        carried = np.unique(sites.loc[sites["carries_alt"], "ref_index"].to_numpy())
        if len(carried) == 0:
            continue
        codes, mutated = (
            sarscov2.genome_codes(tokenizer, genome),
            sarscov2.differing_positions(genome, reference, cmap),
        )
        per_level = sarscov2.code_changes_at_sites(
            ref_codes, codes, cmap, carried, mutated=mutated, n_background=2000, seed=seed
        )
        # how far a point mutation's effect reaches: the same share over the bases within 16 bp
        nearby = sarscov2.code_changes_at_sites(
            ref_codes, codes, cmap, carried, window=16, mutated=mutated, n_background=0, seed=seed
        )
        changes.append(
            per_level.assign(
                nearby_changed=nearby["site_changed"].to_numpy(),
                tokenizer=name,
                genome=row["name"],
                lineage=row["lineage"],
            )
        )
changes = pd.concat(changes) if changes else pd.DataFrame()
if len(changes):
    per_level = (
        changes.groupby(["tokenizer", "level"])
        .agg(
            genomes=("genome", "nunique"),
            sites=("n_site", "sum"),
            site_changed=("site_changed", "mean"),
            nearby_changed=("nearby_changed", "mean"),
            background_changed=("background_changed", "mean"),
        )
        .reset_index()
    )
    per_level["level"] += 1
    tables.write_table(per_level, out / "code_changes")
    display(Markdown(tables.markdown(per_level)))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sns.barplot(
        data=changes.assign(level=changes["level"] + 1), x="tokenizer", y="site_changed", hue="level", ax=ax
    )
    ax.set(ylabel="share of codes changed at mutation sites")
    fig.savefig(out / "code_changes.png", dpi=120, bbox_inches="tight")
else:
    per_level = pd.DataFrame()
    print("no codebook tokenizer with stride 1 in this run")

# %% [markdown]
# ### Verdict: does the fine level react to point mutations more than the coarse level?

# %%
hrq = per_level[per_level["tokenizer"] == "hrq"] if len(per_level) else per_level
if len(hrq) >= 2:
    coarse, fine = hrq.iloc[0], hrq.iloc[-1]
    verdict = "holds" if fine["site_changed"] > coarse["site_changed"] else "does not hold"
    statement = (
        f"HRQ level 1 changes at {100 * coarse['site_changed']:.1f}% of mutation sites "
        f"({100 * coarse['nearby_changed']:.1f}% within 16 bp; background "
        f"{100 * coarse['background_changed']:.2f}%), level {int(fine['level'])} at "
        f"{100 * fine['site_changed']:.1f}% ({100 * fine['nearby_changed']:.1f}% within 16 bp; background "
        f"{100 * fine['background_changed']:.2f}%): {verdict}."
    )
else:
    verdict, statement = "inconclusive (no multi-level HRQ tokenizer)", "no HRQ levels to compare"
display(Markdown(statement))
record = {
    "stage": "sarscov2",
    "n_genomes": len(genomes),
    "lineages": chosen["lineage"].value_counts().to_dict(),
    "lineage_structure": structure.to_dict("records"),
    "code_changes": per_level.to_dict("records"),
    "fine_level_more_sensitive": verdict,
    "statement": statement,
}
record = write_record(record, metrics_path)  # validated, then written
