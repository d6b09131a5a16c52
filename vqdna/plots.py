"""Figures from the gathered metrics records (returned, never saved here)."""
from __future__ import annotations

import pandas as pd

from vqdna.tables import ablation_rows

def plot_task_scores(df: pd.DataFrame, stage: str = "finetune"):
    """Bar per task x tokenizer (x100, error bar = sd over seeds), one panel per protocol label."""
    import seaborn as sns

    plain = df[df["ablation_name"].isna()] if "ablation_name" in df else df
    runs = plain[plain["stage"].isin([stage, "baseline"])].assign(score100=lambda d: 100 * d["score"])
    grid = sns.catplot(data=runs, kind="bar", x="task", y="score100", hue="tokenizer", col="protocol",
                       errorbar="sd", height=4, aspect=1.5)
    grid.set_axis_labels("task", f"{stage} score (x100)")
    return grid.figure


def plot_rank_heatmap(summary: pd.DataFrame):
    """Heat map of per-task ranks (tokenizer x task, protocol in the column label)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ranked = summary[~summary["is_reference"]]
    wide = ranked.assign(column=ranked["task"] + " [" + ranked["protocol"] + "]").pivot_table(
        index="tokenizer", columns="column", values="rank")
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * wide.shape[1], 1 + 0.5 * wide.shape[0]))
    sns.heatmap(wide, annot=True, fmt=".1f", cmap="viridis_r", cbar_kws={"label": "rank (1 = best)"}, ax=ax)
    return fig


def plot_ablation(df: pd.DataFrame, name: str):
    """Score (x100, error bar = sd over seeds) against the ablation value, one panel per quantity."""
    import seaborn as sns

    runs = ablation_rows(df, name)
    grid = sns.relplot(data=runs, kind="line", x="value", y="score", hue="tokenizer", col="quantity",
                       marker="o", errorbar="sd", facet_kws={"sharey": False}, height=3.5)
    grid.set_axis_labels(name, "score (x100)")
    return grid.figure
