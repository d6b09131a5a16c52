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
# # Stage 3 — fine-tuning
# The pre-trained encoder plus an MLP head is fine-tuned on one task with one seed; the test
# metrics are taken at the best dev checkpoint.

# %% tags=["parameters"]
model_name = "hrq"
task_dir = "results/data/embedded/species"
model_path = "results/models/hrq/model.pt"
tokenizer_path = "results/tokenizers/hrq/tokenizer"
finetune = {"epochs": 1, "lr": 0.001, "batch_size": 32, "lora_rank": None, "patience": 2}
metrics_path = "results/finetune/embedded/species/hrq/seed0/metrics.json"
seed = 0
threads = 1
device = "auto"
profile = "cpu-default"

# %%
import json

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

from vqdna import data, stages
from vqdna.tokenizers import load_tokenizer

torch.set_num_threads(threads)
task = data.read_task(task_dir)
splits, meta = task
tokenizer = load_tokenizer(tokenizer_path)
label_names = meta.get("label_names") or list(range(meta["num_classes"]))
pd.DataFrame({name: frame["label"].value_counts().sort_index() for name, frame in splits.items()})

# %%
result = stages.finetune(model_path, tokenizer, task, finetune, seed=seed, device=device)
record = stages.evaluation_record("finetune", task, model_name, seed, result, profile, finetune)
pd.Series({k: record[k] for k in ("mcc", "macro_f1", "accuracy", "coverage", "bp_seen", "n_cut", "max_tokens",
                             "select_by")})

# %% [markdown]
# ## Dev curve and test confusion matrix (best dev checkpoint)

# %%
history = pd.DataFrame(result["history"])
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
sns.lineplot(data=history, x="step", y=f"dev_{meta['metric']}", ax=axes[0])
sns.heatmap(pd.DataFrame(result["confusion_matrix"], index=label_names, columns=label_names),
            annot=True, fmt="d", cmap="Blues", ax=axes[1])
axes[1].set(xlabel="predicted", ylabel="true")
fig.tight_layout()

# %%
with open(metrics_path, "w") as handle:
    json.dump(record, handle, indent=2)
record["deviations"]
