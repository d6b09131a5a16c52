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
# # Linear probe
# Frozen pre-trained encoder → mean-pooled embeddings → logistic regression (scikit-learn).
# What the representation already knows, without any fine-tuning (paper Table 1, "Linear").
# The probe is deterministic for a given encoder, so there is one run per replicate.

# %% tags=["parameters"]
model_name = "hrq"
task_dir = "results/data/embedded/coding"
model_path = "results/models/hrq/rep0/model.pt"
tokenizer_path = "results/tokenizers/hrq/seed0/tokenizer"
trusted_classes = []  # tokenizer classes of your own the config names (trust_remote_code)
coverage = {"max_bp": 128, "window": "centre", "pooling": "fixed"}  # config linear_probe
metrics_path = "results/by_hand/linear_probe/embedded/coding/hrq/rep0/metrics.json"
replicate = 0
threads = 1
device = "auto"
profile = "cpu-default"

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from vqdna.analysis import report
from vqdna.data import tasks
from vqdna.tokenizers import load_tokenizer
from vqdna.train import stages
from vqdna.workflow.records import evaluation_record, write_record

torch.set_num_threads(threads)
task = tasks.read_task(task_dir)
splits, meta = task
tokenizer = load_tokenizer(tokenizer_path, trust_remote_code=trusted_classes)
label_names = meta.get("label_names") or list(range(meta["num_classes"]))
pd.DataFrame({name: frame["label"].value_counts().sort_index() for name, frame in splits.items()})

# %%
result = stages.linear_probe_on_task(model_path, tokenizer, task, coverage, device=device)
record = evaluation_record("linear_probe", task, model_name, 0, result, profile, replicate=replicate)

# %% [markdown]
# ## Test scores
# *How to read:* MCC, macro-F1 and accuracy on the test set (fractions; MCC 0 is chance);
# `coverage` says which bases of each sequence the frozen encoder saw, `n cut` how many test
# sequences were longer than that, and `task recon accuracy` how well a codebook tokenizer
# reconstructs this task's sequences (– for the others).

# %%
keys = ["mcc", "macro_f1", "accuracy", "coverage", "bp_seen", "n_cut", "max_tokens", "task_recon_accuracy"]
display(Markdown(report.record_brief(record, keys)))

# %% [markdown]
# ## Test confusion matrix
# *How to read:* counts of true (rows) against predicted (columns) classes on the test set; a
# probe at chance spreads each row evenly, a good one concentrates it on the diagonal.

# %%
fig, ax = plt.subplots(figsize=(4.5, 3.5))
sns.heatmap(
    pd.DataFrame(result["confusion_matrix"], index=label_names, columns=label_names),
    annot=True,
    fmt="d",
    cmap="Blues",
    ax=ax,
)
ax.set(xlabel="predicted", ylabel="true")

# %%
record = write_record(record, metrics_path)  # validated, then written
