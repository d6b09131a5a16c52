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
# # Stage 1 — tokenizer
# Builds (char, k-mer) or trains (BPE, VQ-VAE, HRQ) one tokenizer on the pre-training corpus
# and measures it on held-out corpus windows: vocabulary usage, bp per token and, for the
# learned codebooks, reconstruction accuracy, code usage and perplexity per level. In an
# ablation study the codebooks are also measured on each ablation task's test sequences.

# %% tags=["parameters"]
name = "hrq"
spec = {
    "type": "hrq",
    "levels": 2,
    "stem_dim": 32,
    "dim": 32,
    "depth": 2,
    "codebook_size": 16,
    "steps": 50,
    "batch_size": 32,
    "lr": 0.003,
}
train_path = "results/corpus/train.txt"
val_path = "results/corpus/val.txt"
task_dirs = {}  # "suite/task" -> prepared task folder: codebooks measured on its test sequences
out_dir = "results/by_hand/tokenizers/hrq/seed0/tokenizer"
metrics_path = "results/by_hand/tokenizers/hrq/seed0/metrics.json"
seed = 0
threads = 1
device = "auto"
profile = "cpu-default"
scale = {}  # precision, activation_checkpointing, checkpoint_every, resume_path (vqdna.train.scale)

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from vqdna.analysis import report
from vqdna.data import corpus
from vqdna.train import stages
from vqdna.train.tokenizer import train_tokenizer
from vqdna.workflow.records import tokenizer_record, world_size, write_record

torch.set_num_threads(threads)
train_windows, val_windows = corpus.read_windows(train_path), corpus.read_windows(val_path)
print(f"{len(train_windows)} training and {len(val_windows)} held-out windows of {len(train_windows[0])} bp")

# %%
tokenizer, history = train_tokenizer(spec, train_windows, val_windows, seed=seed, device=device, scale=scale)
tokenizer.save_pretrained(out_dir)
counts = stages.usage_counts(tokenizer, val_windows)
stats = stages.tokenizer_statistics(tokenizer, val_windows, counts)
if task_dirs:
    stats["tasks"] = stages.task_statistics(tokenizer, task_dirs)
record = tokenizer_record(name, spec, stats, profile, seed=seed, world=world_size(history))

# %% [markdown]
# ## At a glance
# *How to read:* measured on the held-out corpus windows. Reconstruction accuracy is the share
# of bases the codes decode back to exactly (1 for the rule-based tokenizers); code usage is the
# share of each codebook level's codes in use and perplexity the effective number of codes per
# level (exp of the code entropy); bp per token is how much sequence one token stands for.

# %%
keys = ["recon_accuracy", "code_usage", "perplexity", "bp_per_token", "vocab_size", "n_windows"]
display(Markdown(report.record_brief(record, keys)))

# %% [markdown]
# ## Training curves (learned tokenizers)
# *How to read:* the VQ-VAE's loss, its reconstruction and commitment parts, and held-out
# reconstruction accuracy by step; a flat, high reconstruction accuracy at the end is what the
# tokenizer needs (it can then decode every code back to its bases).

# %%
if history:
    curves = pd.DataFrame(history)
    columns = [c for c in ("loss", "recon_loss", "commit_loss", "val_recon_accuracy") if c in curves]
    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3))
    for ax, column in zip(list(axes) if len(columns) > 1 else [axes], columns):
        sns.lineplot(data=curves, x="step", y=column, ax=ax)
        ax.ticklabel_format(axis="y", useOffset=False)  # 0.9998, not "+1" and -0.0002
    fig.tight_layout()
else:
    print("nothing to train: this tokenizer is defined by its rules")

# %% [markdown]
# ## Code / vocabulary usage on held-out windows
# Share of the vocabulary (or of each codebook level) that held-out sequence actually uses,
# as in the paper's Table 1 ("token usage").
# *How to read:* token counts sorted from the most to the least used, log scale; a long flat
# curve is a vocabulary used evenly, a cliff marks tokens the corpus never needs.

# %%
fig, axes = plt.subplots(1, len(counts), figsize=(5 * len(counts), 3), squeeze=False)
for ax, (level, level_counts) in zip(axes[0], counts.items()):
    ax.bar(range(len(level_counts)), sorted(level_counts, reverse=True), width=1.0)
    ax.set(
        title=f"{name} {level}: {100 * (level_counts > 0).mean():.1f}% used",
        xlabel="token rank",
        ylabel="count",
        yscale="log",
    )
fig.tight_layout()

# %%
record = write_record(record, metrics_path)  # validated, then written
