"""The ablation tables and figures: the paper's Tables 7-9 with ours beside them
(:func:`paper_layout`), the knobs the paper did not ablate (:func:`beyond_paper_table`) and a
figure per knob (:func:`plot_knob`), all from :func:`vqdna.analysis.ablations.knob_table`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from vqdna.analysis.ablations import CORPUS, sorted_values
from vqdna.analysis.paper import PAPER_ABLATIONS
from vqdna.workflow.study import PAPER_TABLES, same_knob_value

#: the paper's default value of each knob it ablates (Tables 7-9, bold rows)
PAPER_DEFAULTS = {"codebook_size": 512, "code_dim": 384, "mask_ratio": 0.25}


def _cell_text(row, digits: int = 1) -> str:
    if row is None:
        return ""
    if math.isnan(row["ci_low"]):
        return f"{row['mean']:.{digits}f} (n={row['n']})"
    return f"{row['mean']:.{digits}f} [{row['ci_low']:.{digits}f}, {row['ci_high']:.{digits}f}]"


def _find(table: pd.DataFrame, value, tokenizer: str, quantity: str, measured_on: str | None = None):
    rows = table[(table["tokenizer"] == tokenizer) & (table["quantity"] == quantity)]
    rows = rows[np.array([same_knob_value(v, value) for v in rows["value"]], dtype=bool)]
    if measured_on is not None:
        rows = rows[rows["measured_on"] == measured_on]
    return None if rows.empty else rows.iloc[0]


def paper_layout(
    table: pd.DataFrame, knob: str, our_default, tokenizers: Sequence[str] = ("vq", "hrq")
) -> pd.DataFrame:
    """The paper's Table 7, 8 or 9 with ours beside it (``table``:
    :func:`vqdna.analysis.ablations.knob_table`). Rows pair our value with the paper's by their
    ratio to each side's default (our 64 codes stand where the paper's 512 do); a value only
    one side ran gets a row with the other side empty. Tables 7-8: reconstruction (corpus
    windows) and linear probe; Table 9: fine-tuning. Ours: mean [95% interval] (x100); the
    paper: its number (CVC and H3; our task stands in for both)."""
    paper_values = PAPER_ABLATIONS[knob]
    scale = 1.0 if knob == "mask_ratio" else PAPER_DEFAULTS[knob] / float(our_default)
    ours = {float(v) * scale: v for v in table["value"]}
    paper = {float(v): v for v in paper_values}
    stage = "finetune" if knob == "mask_ratio" else "linear_probe"
    task = next(iter(table.loc[table["quantity"] == stage, "measured_on"]), "")
    rows = []
    for position in sorted(set(ours) | set(paper)):
        value, paper_value = ours.get(position), paper.get(position)
        row = {
            "ours": "" if value is None else f"{value:g}",
            "paper": "" if paper_value is None else f"{paper_value:g}",
        }
        for tokenizer in tokenizers:
            published = (
                paper_values.get(paper_value, {}).get(tokenizer, {}) if paper_value is not None else {}
            )
            tag = tokenizer.upper()
            if knob != "mask_ratio":
                recon = _find(table, value, tokenizer, "recon", CORPUS) if value is not None else None
                row[f"{tag} Rec. ours"] = _cell_text(recon, 2)
                row[f"{tag} Rec. paper"] = published.get("recon", "")
            score = _find(table, value, tokenizer, stage, task) if value is not None else None
            short = "Lin." if stage == "linear_probe" else "FT"
            row[f"{tag} {short} ours ({task})"] = _cell_text(score)
            for key, number in published.items():
                if key != "recon":
                    row[f"{tag} {short} paper ({key.split(':', 1)[1]})"] = number
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def beyond_paper_table(
    tables: dict[str, pd.DataFrame], tokenizers: Sequence[str] = ("vq", "hrq")
) -> pd.DataFrame:
    """One row per value of each knob the paper did not ablate (``tables``: knob ->
    :func:`vqdna.analysis.ablations.knob_table`): reconstruction, usage and perplexity on corpus
    windows (t interval over seeds) and the probe score, per tokenizer."""
    rows = []
    for knob, table in tables.items():
        if knob in PAPER_TABLES:
            continue
        for tokenizer in tokenizers:
            for value in sorted_values(table.loc[table["tokenizer"] == tokenizer, "value"]):
                row = {"knob": knob, "value": str(value).lower(), "tokenizer": tokenizer}
                for quantity, digits in (("recon", 2), ("usage", 1), ("perplexity", 1)):
                    row[quantity] = _cell_text(_find(table, value, tokenizer, quantity, CORPUS), digits)
                probe = _find(table, value, tokenizer, "linear_probe")
                row["linear probe"] = _cell_text(probe)
                rows.append(row)
    return pd.DataFrame(rows)


#: the panels of a knob's figure: (quantity, measured set or None for the task, y label)
FIGURE_PANELS = (
    ("recon", CORPUS, "reconstruction (%), corpus windows"),
    ("recon", "task", "reconstruction (%), task test set"),
    ("usage", CORPUS, "code usage (%), least-used level"),
    ("perplexity", CORPUS, "perplexity, level 1"),
    ("linear_probe", "task", "linear probe (x100)"),
    ("finetune", "task", "fine-tuning (x100)"),
)


def plot_knob(table: pd.DataFrame, knob: str):
    """A knob's measurements against its value, one panel per quantity that varied or was
    scored, one line per tokenizer, error bars = the 95% intervals of
    :func:`vqdna.analysis.ablations.knob_table`."""
    import matplotlib.pyplot as plt

    panels = []
    for quantity, where, label in FIGURE_PANELS:
        rows = table[table["quantity"] == quantity]
        rows = rows[rows["measured_on"] == CORPUS] if where == CORPUS else rows[rows["measured_on"] != CORPUS]
        if not rows.empty:
            panels.append((rows, label))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.2 * len(panels), 2.9), squeeze=False, layout="constrained"
    )
    values = sorted_values(table["value"])
    positions = {str(v): i for i, v in enumerate(values)}
    for ax, (rows, label) in zip(axes[0], panels):
        for offset, (tokenizer, group) in zip((-0.06, 0.06), rows.groupby("tokenizer", sort=True)):
            x = np.array([positions[str(v)] for v in group["value"]]) + offset
            low = (group["mean"] - group["ci_low"]).fillna(0).clip(lower=0)
            high = (group["ci_high"] - group["mean"]).fillna(0).clip(lower=0)
            ax.errorbar(x, group["mean"], yerr=[low, high], marker="o", capsize=3, label=tokenizer.upper())
        ax.set_xticks(range(len(values)), [str(v).lower() for v in values])
        ax.ticklabel_format(axis="y", useOffset=False)  # 100.0 stays 100.0, not an offset of 1e2
        ax.set(xlabel=knob.replace("_", " "), title=label)
        ax.title.set_fontsize(9)
    axes[0][0].legend(fontsize=8)
    return fig
