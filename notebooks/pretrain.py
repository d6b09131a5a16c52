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
# # Stage 2 — masked-modeling pre-training
# A Transformer encoder learns to predict masked tokens of the corpus windows. For VQ/HRQ the
# input embedding is the tokenizer's frozen codebook (as in the paper) and the targets are each
# level's code; for char / k-mer / BPE a learned embedding and the token id.

# %% tags=["parameters"]
name = "hrq"
tokenizer_path = "results/tokenizers/hrq/seed0/tokenizer"
trusted_classes = []  # tokenizer classes of your own the config names (trust_remote_code)
train_path = "results/corpus/train.txt"
val_path = "results/corpus/val.txt"
encoder = {"layers": 2, "dim": 64, "heads": 4}
pretrain = {
    "steps": 50,
    "batch_size": 16,
    "lr": 0.001,
    "warmup_steps": 5,
    "mask_ratio": 0.25,
    "max_tokens": 130,
}
model_path = "results/by_hand/models/hrq/rep0/model.pt"
metrics_path = "results/by_hand/models/hrq/rep0/metrics.json"
seed = 0
threads = 1
device = "auto"
profile = "cpu-default"
scale = {}  # precision, activation_checkpointing, checkpoint_every, resume_path (vqdna.train.scale)

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from vqdna.analysis import report
from vqdna.data import corpus
from vqdna.tokenizers import load_tokenizer
from vqdna.train import stages
from vqdna.workflow.records import pretrain_record, write_record

torch.set_num_threads(threads)
tokenizer = load_tokenizer(tokenizer_path, trust_remote_code=trusted_classes)
train_windows, val_windows = corpus.read_windows(train_path), corpus.read_windows(val_path)
model = stages.build_masked_lm(tokenizer, encoder, seed=seed)
print(
    f"{name}: vocabulary {tokenizer.vocab_size}, targets {tokenizer.mlm_target_sizes}, "
    f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable parameters"
)

# %%
history = stages.pretrain(
    model, tokenizer, train_windows, val_windows, pretrain, seed=seed, device=device, scale=scale
)
deviations = corpus.corpus_deviations(Path(train_path).parent, profile)  # paper study without its corpus
stages.save_encoder(model_path, model, encoder, tokenizer_path, deviations)
curves = pd.DataFrame(history)
record = pretrain_record(name, tokenizer, encoder, pretrain, history, profile, deviations, replicate=seed)

# %% [markdown]
# ## At a glance
# *How to read:* the held-out masked-token loss (nats, summed over targets) beside three
# baselines of the same targets: frequencies alone (unigram), frequencies given position, and
# frequencies given the visible neighbours. An encoder learned from context when its loss ends
# below them (the summary's pretext table decides it over the replicates).

# %%
keys = ["final_val_loss", "unigram_loss", "position_loss", "neighbour_loss", "final_val_accuracy"]
display(Markdown(report.record_brief(record, keys)))

# %% [markdown]
# ## Loss curves
# The dashed line is the unigram baseline: the loss of predicting each masked target from its
# frequency alone. An encoder that learned anything from context ends below it.

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
sns.lineplot(
    data=curves.melt("step", [c for c in ("train_loss", "val_loss") if c in curves]),
    x="step",
    y="value",
    hue="variable",
    ax=axes[0],
)
axes[0].set(ylabel="masked-token cross-entropy (summed over targets)")
if "val_accuracy" in curves:
    sns.lineplot(data=curves, x="step", y="val_accuracy", ax=axes[1])
if "unigram_loss" in curves:
    axes[0].axhline(curves["unigram_loss"].iloc[-1], color="grey", linestyle="--", label="unigram baseline")
    axes[0].legend()
    axes[1].set(ylabel="held-out masked-token accuracy")
fig.tight_layout()

# %%
record = write_record(record, metrics_path)  # validated, then written
