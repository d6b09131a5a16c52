"""The ablation study's measurements: every value of a knob measured with an interval
(:func:`knob_table`), the input of the paper-layout tables (:mod:`vqdna.analysis.ablation_tables`)
and of the ablation claims (:mod:`vqdna.analysis.ablation_claims`).

Two kinds of measurement, each with the interval its randomness calls for:

- **tokenizer-level** (reconstruction, code usage, perplexity of the VQ-VAE/HRQ itself, on
  held-out corpus windows and on each ablation task's test sequences): one number per training
  seed, measured on a fixed set of thousands of positions, so the seed is the only noise worth
  counting: a Student t interval over seeds;
- **encoder-level** (linear probe or fine-tuning score of the encoder pre-trained on the
  variant): a :class:`vqdna.analysis.effects.Cell` per value, so a difference between two values of one
  task counts the shared test set once and each side's replicates as a Welch t term."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vqdna.analysis import effects, uncertainty

CORPUS = "corpus windows"
TOKENIZER_QUANTITIES = ("recon", "usage", "perplexity")


# ------------------------------------------------------------------ tokenizer-level


def tokenizer_runs(df: pd.DataFrame, knob: str) -> pd.DataFrame:
    """One row per ablated tokenizer x seed x measured set: value, tokenizer (the base name),
    seed, measured_on (:data:`CORPUS` or a task), recon, usage (the least-used level) and
    perplexity (level 1), all x100 except perplexity. ``df``: records with the default value's
    rows labelled (:func:`vqdna.workflow.study.with_ablation_defaults`)."""
    runs = (
        df[(df["stage"] == "tokenizer") & (df["ablation_name"] == knob)]
        if "ablation_name" in df
        else df.iloc[:0]
    )
    rows = []
    for rec in runs.to_dict("records"):
        common = {"value": rec["ablation_value"], "tokenizer": rec["base_tokenizer"], "seed": rec.get("seed")}
        sets = {CORPUS: rec}
        tasks = rec.get("tasks")
        if isinstance(tasks, dict):
            sets.update(tasks)
        for where, measured in sets.items():
            rows.append(
                {
                    **common,
                    "measured_on": where,
                    "recon": 100 * measured["recon_accuracy"],
                    "usage": 100 * min(measured["code_usage"]),
                    "perplexity": float(measured["perplexity"][0]),
                }
            )
    return pd.DataFrame(rows, columns=["value", "tokenizer", "seed", "measured_on", *TOKENIZER_QUANTITIES])


def percent_interval(values, level: float = 0.95) -> tuple[float, float]:
    """The t interval over seeds of a percentage, cut to [0, 100]: a share cannot leave it."""
    low, high = uncertainty.t_interval(values, level)
    return (max(0.0, low), min(100.0, high)) if not math.isnan(low) else (low, high)


def tokenizer_table(df: pd.DataFrame, knob: str, level: float = 0.95) -> pd.DataFrame:
    """value x tokenizer x measured set x quantity -> mean, t interval over seeds, n."""
    runs = tokenizer_runs(df, knob)
    if not runs.empty:  # a knob that leaves the tokenizer alone (mask ratio): only its default value
        varied = runs.groupby(["tokenizer", "measured_on"])["value"].transform(
            lambda v: len({repr(x) for x in v})
        )
        runs = runs[(varied > 1).to_numpy()]
    rows = []
    for (value, tokenizer, where), group in runs.groupby(["value", "tokenizer", "measured_on"], sort=False):
        for quantity in TOKENIZER_QUANTITIES:
            values = group[quantity].to_numpy(dtype=float)
            low, high = (
                percent_interval(values, level)
                if quantity != "perplexity"
                else uncertainty.t_interval(values, level)
            )
            rows.append(
                {
                    "knob": knob,
                    "value": value,
                    "tokenizer": tokenizer,
                    "measured_on": where,
                    "quantity": quantity,
                    "mean": float(values.mean()),
                    "ci_low": low,
                    "ci_high": high,
                    "n": len(values),
                }
            )
    return _in_value_order(pd.DataFrame(rows, columns=TABLE_COLUMNS))


TABLE_COLUMNS = ["knob", "value", "tokenizer", "measured_on", "quantity", "mean", "ci_low", "ci_high", "n"]


def _in_value_order(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return table
    order = {v: i for i, v in enumerate(sorted_values(table["value"]))}
    key = table["value"].map(lambda v: order[v])
    return table.assign(_order=key).sort_values(["tokenizer", "_order"], kind="stable").drop(columns="_order")


def sorted_values(values) -> list:
    """Knob values in order: numbers ascending, booleans False before True."""
    values = list(dict.fromkeys(values))
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return sorted(values)
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values):
        return sorted(values)
    return sorted(values, key=str)


# ------------------------------------------------------------------ encoder-level


def encoder_runs(df: pd.DataFrame, knob: str) -> pd.DataFrame:
    """The probe / fine-tuning runs of knob ``knob``, with ``quantity`` = "stage:suite/task"
    and ``replicate`` filled."""
    if "ablation_name" not in df:
        return df.iloc[:0]
    runs = df[(df["ablation_name"] == knob) & df["stage"].isin(["linear_probe", "finetune"])]
    if runs.empty:
        return runs.assign(quantity=pd.Series(dtype=str))
    replicate = runs["replicate"].fillna(0).astype(int) if "replicate" in runs else 0
    return runs.assign(quantity=runs["stage"] + ":" + runs["suite"] + "/" + runs["task"], replicate=replicate)


def encoder_cells(df: pd.DataFrame, knob: str) -> dict[tuple[str, str], dict]:
    """(tokenizer, quantity) -> value -> :class:`vqdna.analysis.effects.Cell`. Cells of one task share
    its test-set draws, so differences between values count the test set once."""
    runs = encoder_runs(df, knob)
    out = {}
    for (tokenizer, quantity), group in runs.groupby(["base_tokenizer", "quantity"], sort=True):
        keys = {repr(v): v for v in group["ablation_value"]}
        labelled = group.assign(tokenizer=[repr(v) for v in group["ablation_value"]])
        task = quantity.split(":", 1)[1]
        cells = effects.cells_of_task(labelled, task)
        out[(tokenizer, quantity)] = {v: cells[repr(v)] for v in sorted_values(keys.values())}
    return out


def encoder_table(df: pd.DataFrame, knob: str, level: float = 0.95) -> pd.DataFrame:
    """value x tokenizer x quantity -> mean score (x100), interval (shared test set + t over
    replicates; a single replicate gives the test-set term alone), n replicates. A quantity only
    the default value measured (the base model's runs of another stage or task, copied in by
    :func:`vqdna.workflow.study.with_ablation_defaults`) has nothing to be compared with and stays out."""
    rows = []
    for (tokenizer, quantity), by_value in encoder_cells(df, knob).items():
        if len(by_value) < 2:  # only the default value ran it (the base model's other stage or task)
            continue
        for value, cell in by_value.items():
            low, high = cell.interval(level)
            rows.append(
                {
                    "knob": knob,
                    "value": value,
                    "tokenizer": tokenizer,
                    "measured_on": quantity.split(":", 1)[1],
                    "quantity": quantity.split(":", 1)[0],
                    "mean": cell.mean,
                    "ci_low": low,
                    "ci_high": high,
                    "n": len(set(cell.replicates)),
                }
            )
    return _in_value_order(pd.DataFrame(rows, columns=TABLE_COLUMNS))


def knob_table(df: pd.DataFrame, knob: str) -> pd.DataFrame:
    """Every measurement of one knob, long format (:data:`TABLE_COLUMNS`)."""
    return pd.concat([tokenizer_table(df, knob), encoder_table(df, knob)], ignore_index=True)
