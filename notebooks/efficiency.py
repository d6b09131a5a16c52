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
# # Efficiency (the paper's Table 2 columns)
# Parameters and forward FLOPs of tokenizer and encoder at one sequence length, tokens per
# sequence, and measured throughput on this machine. FLOPs = 2 × multiply-accumulates per
# sequence (vqdna.analysis.efficiency); beside them MACs per sequence and FLOPs per token. The paper's
# own FLOPs column follows none of these conventions (last table), so compare ratios between
# tokenizers, not absolute values.

# %% tags=["parameters"]
models = ["char", "hrq"]
model_paths = ["results/models/char/rep0/model.pt", "results/models/hrq/rep0/model.pt"]
tokenizer_paths = ["results/tokenizers/char/seed0/tokenizer", "results/tokenizers/hrq/seed0/tokenizer"]
trusted_classes = []  # tokenizer classes of your own the config names (trust_remote_code)
val_path = "results/corpus/val.txt"
seq_len = 512
out_dir = "results/by_hand/efficiency"
threads = 2
profile = "cpu-default"

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from vqdna.analysis import efficiency, tables
from vqdna.data import corpus
from vqdna.tokenizers import load_tokenizer

torch.set_num_threads(threads)
windows = corpus.read_windows(val_path)
if len(windows[0]) < seq_len:  # corpus windows shorter than seq_len: join neighbours
    joined = "".join(windows)
    windows = [joined[i : i + seq_len] for i in range(0, len(joined) - seq_len + 1, seq_len)]
print(f"{len(windows)} held-out windows of {len(windows[0])} bp; {torch.get_num_threads()} threads")

# %%
rows = [
    efficiency.efficiency_row(
        name, model_path, load_tokenizer(tokenizer_path, trust_remote_code=trusted_classes), windows, seq_len
    )
    for name, model_path, tokenizer_path in zip(models, model_paths, tokenizer_paths)
]
table = pd.DataFrame(rows).assign(profile=profile)
tables.write_table(table, Path(out_dir) / "efficiency")
display(Markdown(tables.markdown(table.round(3))))

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
sns.barplot(data=table, x="tokenizer", y="tokens_per_seq", ax=axes[0])
axes[0].set(title=f"tokens per {seq_len} bp")
sns.barplot(
    data=table.melt("tokenizer", ["encoder_gflops", "tokenizer_gflops"]),
    x="tokenizer",
    y="value",
    hue="variable",
    ax=axes[1],
)
axes[1].set(title=f"forward GFLOPs at {seq_len} bp", ylabel="GFLOPs")
sns.barplot(data=table, x="tokenizer", y="encoder_seqs_per_s", ax=axes[2])
axes[2].set(title="encoder forward throughput", ylabel="sequences / s")
for ax in axes:
    ax.tick_params(axis="x", rotation=45)
fig.tight_layout()
(Path(out_dir) / "figures").mkdir(parents=True, exist_ok=True)
fig.savefig(Path(out_dir) / "figures" / "efficiency.png", dpi=120, bbox_inches="tight")

# %% [markdown]
# ## The paper's Table 2 under each FLOPs convention
# The paper's sizes (16 M / 17 M / 86 M parameters) under the usual dense conventions, beside
# its published GFLOPs at 512 bp. None lands within 10% for all three: the paper's numbers give
# the encoder 2.4–2.8× fewer FLOPs per parameter than the tokenizers, while every convention
# gives them the same. `length_for_paper_2NL`: the positions per sequence that 2·N·L would need.

# %%
from vqdna.analysis import efficiency

conventions = pd.DataFrame(efficiency.paper_conventions())
tables.write_table(conventions, Path(out_dir) / "efficiency_conventions")
display(Markdown(tables.markdown(conventions.round(3))))
