"""Did each pre-trained encoder learn its pretext task? :func:`pretext_table` sets the held-out
masked-token loss beside the baselines of the same targets (:mod:`vqdna.train.pretext`) and
decides "learned" per tokenizer, over replicates."""

from __future__ import annotations

import math

import pandas as pd

COLUMNS = [
    "tokenizer",
    "type",
    "replicates",
    "val_loss",
    "unigram_loss",
    "position_loss",
    "neighbour_loss",
    "margin",
    "margin_sd",
    "margin %",
    "below neighbours",
    "overlapping tokens",
    "learned",
    "baselines from",
]


def _overlapping(tokenizer: str, kind: str, specs: dict) -> bool:
    """Do a tokenizer's neighbouring tokens share bases (so a masked target leaks through its
    neighbours)? VQ/HRQ codes share the VQ-VAE's receptive field; k-mers overlap when their
    stride is below k (from the tokenizer record's spec), whatever the masking scheme."""
    if kind in ("vq", "hrq"):
        return True
    spec = specs.get(tokenizer) or {}
    return kind == "kmer" and int(spec.get("stride", spec.get("k", 1))) < int(spec.get("k", 1))


def pretext_table(df: pd.DataFrame, baselines: pd.DataFrame | None = None) -> pd.DataFrame:
    """Did each pre-trained encoder learn its pretext task? Per tokenizer (non-ablation
    pre-training records, over replicates): the held-out masked-token loss beside three
    baselines of the same targets (:mod:`vqdna.train.pretext`): the unigram loss (frequencies), the
    position-aware loss (frequencies given slot, position and token count: the best predictor
    that ignores the sequence) and, the local leak, the neighbour loss (frequencies given the
    visible neighbours). ``learned`` is "yes" when the encoder ends below the context-free
    baseline (the smaller of unigram and position) by more than 2 x the sd over replicates of
    that margin (each replicate against its own baseline: VQ/HRQ codebooks differ by replicate;
    0.005 nats with one replicate) and, where neighbouring tokens share bases (VQ, HRQ,
    overlapping k-mers), below the neighbour baseline by the same rule; "no" otherwise;
    "not shown" where a needed baseline was not measured. ``baselines``: position and
    neighbour losses per tokenizer and replicate for records that predate them (the table
    then says where they came from)."""
    plain = df[df["ablation_name"].isna()] if "ablation_name" in df else df
    runs = plain[(plain["stage"] == "pretrain")] if "stage" in plain else plain.iloc[:0]
    if runs.empty or "unigram_loss" not in runs:
        return pd.DataFrame(columns=COLUMNS)
    runs = runs.assign(**{c: runs[c] if c in runs else math.nan for c in ("position_loss", "neighbour_loss")})
    runs, source = _with_borrowed_baselines(runs, baselines)
    tokenizer_rows = plain[plain["stage"] == "tokenizer"] if "spec" in plain else plain.iloc[:0]
    specs = {t: s for t, s in zip(tokenizer_rows.get("tokenizer", []), tokenizer_rows.get("spec", []))}
    rows = []
    for tokenizer, group in runs.groupby("tokenizer", sort=False):
        group = group.dropna(subset=["unigram_loss", "final_val_loss"])
        if not group.empty:
            rows.append(_learned_row(tokenizer, group, specs, source))
    return pd.DataFrame(rows, columns=COLUMNS)


def _with_borrowed_baselines(runs: pd.DataFrame, baselines: pd.DataFrame | None) -> tuple:
    """``runs`` with missing position and neighbour losses filled from ``baselines`` (another
    reference's records), and per run where its baselines came from ("this run" or theirs)."""
    source = pd.Series("this run", index=runs.index)
    if baselines is not None and len(baselines):
        fill = runs[["tokenizer", "replicate"]].merge(baselines, on=["tokenizer", "replicate"], how="left")
        for column in ("position_loss", "neighbour_loss"):
            missing = runs[column].isna().to_numpy() & fill[column].notna().to_numpy()
            runs.loc[missing, column] = fill.loc[missing, column].to_numpy()
            source[missing] = fill.loc[missing, "source"].to_numpy()
    return runs, source


def _clear(margins: pd.Series) -> bool:
    """A margin above 2 sd of the replicates' paired margins (0.005 nats with one replicate)."""
    return margins.mean() > 2 * (float(margins.std()) if len(margins) > 1 else 0.005)


def _learned_row(tokenizer: str, group: pd.DataFrame, specs: dict, source: pd.Series) -> dict:
    """One tokenizer's row of :func:`pretext_table` from its pre-training runs (``group``)."""
    kind = group["tokenizer_type"].iloc[0] if "tokenizer_type" in group else ""
    overlapping = _overlapping(tokenizer, kind, specs)
    context_free = group[["unigram_loss", "position_loss"]].min(axis=1)  # NaN position: unigram
    margin = context_free - group["final_val_loss"]
    beyond = group["neighbour_loss"] - group["final_val_loss"]
    needs = ["position_loss"] + (["neighbour_loss"] if overlapping else [])
    if group[needs].isna().any(axis=None):
        learned = "not shown (baseline not measured)"
    else:
        learned = "yes" if _clear(margin) and (not overlapping or _clear(beyond)) else "no"
    return {
        "tokenizer": tokenizer,
        "type": kind,
        "replicates": len(group),
        "val_loss": group["final_val_loss"].mean(),
        "unigram_loss": group["unigram_loss"].mean(),
        "position_loss": group["position_loss"].mean(),
        "neighbour_loss": group["neighbour_loss"].mean(),
        "margin": margin.mean(),
        "margin_sd": margin.std() if len(group) > 1 else math.nan,
        "margin %": 100 * float((margin / context_free).mean()),
        "below neighbours": beyond.mean(),
        "overlapping tokens": "yes" if overlapping else "no",
        "learned": learned,
        "baselines from": "; ".join(sorted(set(source[group.index]))),
    }
