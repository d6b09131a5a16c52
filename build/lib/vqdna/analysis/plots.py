"""Figures from the gathered metrics records (returned, never saved here)."""

from __future__ import annotations

import math

import pandas as pd


def _message_figure(text: str):
    """A small figure that only says ``text``: the file a rule declares exists even when there
    is nothing to plot."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(4, 1))
    fig.text(0.5, 0.5, text, ha="center", va="center")
    return fig


def _code(codes: dict | None, protocol: str) -> str:
    """A protocol label's short code (vqdna.analysis.report.protocol_codes), or the label itself."""
    return (codes or {}).get(protocol, protocol)


def plot_task_scores(df: pd.DataFrame, stage: str = "finetune", codes: dict | None = None):
    """Bar per task x tokenizer (x100, error bar = sd over runs), one panel per protocol (its
    short code from ``codes``), as wide as its tasks need."""
    import seaborn as sns

    plain = df[df["ablation_name"].isna()] if "ablation_name" in df else df
    runs = plain[plain["stage"].isin([stage, "baseline"])].assign(score100=lambda d: 100 * d["score"])
    if not (runs["stage"] == stage).any():
        return _message_figure(f"no {stage} runs")
    runs = runs.assign(protocol=[_code(codes, p) for p in runs["protocol"]])
    n_tasks = runs.groupby("protocol")["task"].nunique().max()
    grid = sns.catplot(
        data=runs,
        kind="bar",
        x="task",
        y="score100",
        hue="tokenizer",
        col="protocol",
        col_wrap=1 if n_tasks > 4 else None,
        errorbar="sd",
        height=3.5,
        aspect=max(1.5, 0.6 * n_tasks),
    )
    grid.set_axis_labels("task", f"{stage.replace('_', ' ')} score (x100)")
    for ax in grid.axes.flat:
        ax.tick_params(axis="x", labelrotation=30 if n_tasks > 4 else 0)
    return grid.figure


def plot_rank_heatmap(summary: pd.DataFrame, codes: dict | None = None):
    """Heat map of per-task ranks (tokenizer x task; the protocol's short code in the column)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ranked = summary[~summary["is_reference"]]
    column = [f"{t} [{_code(codes, p)}]" for t, p in zip(ranked["task"], ranked["protocol"])]
    wide = ranked.assign(column=column).pivot_table(index="tokenizer", columns="column", values="rank")
    fig, ax = plt.subplots(figsize=(1.5 + 0.8 * wide.shape[1], 1 + 0.5 * wide.shape[0]))
    sns.heatmap(wide, annot=True, fmt=".1f", cmap="viridis_r", cbar_kws={"label": "rank (1 = best)"}, ax=ax)
    ax.set(xlabel="task [protocol]", ylabel="")
    ax.tick_params(axis="x", labelrotation=45)
    return fig


def _difference_panels_size(per_task: pd.DataFrame) -> tuple[int, int, float, float]:
    """(rows, columns, width, height) of one protocol group's panels."""
    ncols = min(3, max(1, per_task["comparison"].nunique()))
    nrows = math.ceil(max(1, per_task["comparison"].nunique()) / ncols)
    return nrows, ncols, 4.2 * ncols, nrows * (1.3 + 0.2 * per_task["task"].nunique())


def plot_task_differences(per_task: pd.DataFrame, effects: pd.DataFrame, fig=None):
    """The figure to read first: one panel per comparison, each task's difference (x100) with
    its interval (shared test set once, Welch t over replicates), and the mean over tasks with
    its t interval over tasks at the bottom
    (:func:`vqdna.analysis.effects.study_effects` gives both frames). Draws into ``fig`` (a figure or
    subfigure) when given."""
    import matplotlib.pyplot as plt

    comparisons = list(dict.fromkeys(per_task["comparison"])) or ["(none)"]
    nrows, ncols, width, height = _difference_panels_size(per_task)
    if fig is None:
        fig = plt.figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False)
    for ax in axes.flat[len(comparisons) :]:
        ax.set_visible(False)
    tasks = sorted(per_task["task"].unique())
    positions = {t: i + 2 for i, t in enumerate(tasks)}
    for ax, comparison in zip(axes.flat, comparisons):
        rows = per_task[per_task["comparison"] == comparison]
        y = [positions[t] for t in rows["task"]]
        ax.errorbar(
            rows["diff"],
            y,
            xerr=[rows["diff"] - rows["ci_low"], rows["ci_high"] - rows["diff"]],
            fmt="o",
            color="tab:blue",
            ms=4,
            capsize=2,
        )
        overall = effects[effects["comparison"] == comparison]
        if len(overall) and not math.isnan(overall["mean_diff"].iloc[0]):
            m, lo, hi = (float(overall[c].iloc[0]) for c in ("mean_diff", "ci_low", "ci_high"))
            ax.errorbar([m], [0], xerr=[[m - lo], [hi - m]], fmt="D", color="black", ms=6, capsize=3)
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        ax.set_title(comparison, fontsize=9)
        ax.set_xlabel("difference (x100)")
    axes[0][0].set_yticks([0] + [positions[t] for t in tasks], ["mean over tasks"] + tasks, fontsize=8)
    axes[0][0].set_ylim(max(positions.values(), default=1) + 0.8, -0.8)
    for ax in axes[:, 0]:
        ax.tick_params(axis="y", labelsize=8)
    return fig


def plot_stage_differences(
    per_task: pd.DataFrame, effects: pd.DataFrame, stage: str, codes: dict | None = None
):
    """:func:`plot_task_differences` for every protocol group of ``stage``, stacked in one figure
    (groups are never pooled; each has its own panels and title). A stage without comparisons
    gets a figure that says so, so the file a rule declares always exists."""
    import matplotlib.pyplot as plt

    per_task, effects = per_task[per_task["stage"] == stage], effects[effects["stage"] == stage]
    protocols = list(dict.fromkeys(per_task["protocol"]))
    if not protocols:
        return _message_figure(f"no {stage} comparisons in this run")
    sizes = [_difference_panels_size(per_task[per_task["protocol"] == p]) for p in protocols]
    fig = plt.figure(figsize=(max(s[2] for s in sizes), sum(s[3] + 0.4 for s in sizes)), layout="constrained")
    subfigures = fig.subfigures(len(protocols), 1, squeeze=False, height_ratios=[s[3] + 0.4 for s in sizes])
    for subfigure, protocol in zip(subfigures.flat, protocols):
        plot_task_differences(
            per_task[per_task["protocol"] == protocol], effects[effects["protocol"] == protocol], subfigure
        )
        subfigure.suptitle(f"{stage.replace('_', ' ')} ({_code(codes, protocol)})", fontsize=9)
    return fig
