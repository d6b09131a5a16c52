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
# The pre-trained encoder of one replicate is fine-tuned on one task, once per fine-tuning seed.
# LP-FT by default (`finetune.head_init: probe`): the head starts as the linear probe, LoRA
# adapters (or all weights) train from there, and the probe stays a checkpoint candidate, so a
# run is never worse than its probe on dev loss. The test metrics are taken at the best dev
# checkpoint of each run.

# %% tags=["parameters"]
model_name = "hrq"
task_dir = "results/data/embedded/coding"
model_path = "results/models/hrq/rep0/model.pt"
tokenizer_path = "results/tokenizers/hrq/seed0/tokenizer"
trusted_classes = []  # tokenizer classes of your own the config names (trust_remote_code)
finetune = {"epochs": 1, "lr": 0.001, "batch_size": 32, "lora_rank": None, "patience": 2}
metrics_paths = ["results/by_hand/finetune/embedded/coding/hrq/rep0/seed0/metrics.json"]
replicate = 0
seeds = [0]
threads = 1
device = "auto"
profile = "cpu-default"

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

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
from vqdna.workflow import study

results, records = {}, {}
for seed, metrics_path in zip(seeds, metrics_paths):
    results[seed] = stages.finetune_on_task(
        model_path, tokenizer, task, finetune, device=device, seed=study.finetune_seed(replicate, seed)
    )
    records[seed] = evaluation_record(
        "finetune", task, model_name, seed, results[seed], profile, finetune, replicate=replicate
    )
pd.DataFrame(
    {
        seed: {
            k: r[k]
            for k in (
                "mcc",
                "macro_f1",
                "accuracy",
                "coverage",
                "bp_seen",
                "n_cut",
                "max_tokens",
                "select_by",
            )
        }
        for seed, r in records.items()
    }
).T

# %% [markdown]
# ## Dev curves and test confusion matrices (best dev checkpoint), one row per seed
# *How to read:* left, the dev metric by training step (the checkpoint tested is the one with
# the best dev loss, or dev metric with `select_by: dev_metric`); right, test counts of true
# (rows) against predicted (columns) classes: a good model puts its mass on the diagonal.

# %%
fig, axes = plt.subplots(len(seeds), 2, figsize=(10, 3.5 * len(seeds)), squeeze=False)
for (seed, result), row in zip(results.items(), axes):
    history = pd.DataFrame(result["history"])
    sns.lineplot(data=history, x="step", y=f"dev_{meta['metric']}", ax=row[0])
    row[0].set(title=f"replicate {replicate}, fine-tuning seed {seed}")
    sns.heatmap(
        pd.DataFrame(result["confusion_matrix"], index=label_names, columns=label_names),
        annot=True,
        fmt="d",
        cmap="Blues",
        ax=row[1],
    )
    row[1].set(xlabel="predicted", ylabel="true")
fig.tight_layout()

# %%
for seed, metrics_path in zip(seeds, metrics_paths):
    write_record(records[seed], metrics_path)
print("deviations from the paper's protocol:", "; ".join(records[seeds[0]]["deviations"]) or "none")
