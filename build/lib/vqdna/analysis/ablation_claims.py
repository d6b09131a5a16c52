"""The paper's ablation claims, each decided by an interval rule (:func:`claim_rows`).

A claim is decided by whether intervals clear a line ("holds" / "does not hold"); otherwise it
"cannot be decided at this scale" and says the smallest true difference the same interval rule
would detect with power 0.8 (:func:`detectable`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from scipy import optimize, stats

from vqdna.analysis import effects, uncertainty
from vqdna.analysis.ablations import encoder_cells, percent_interval, tokenizer_runs
from vqdna.analysis.power import POWER

HOLDS, FAILS = effects.HOLDS, effects.FAILS


def undecided(detectable_points: float, what: str = "") -> str:
    """The verdict of a claim whose intervals neither clear nor miss its line."""
    return f"cannot be decided at this scale (detectable: {detectable_points:.2f} points{what})"


def detectable(half_width: float, df: float, alpha: float = 0.05, power: float = POWER) -> float:
    """The smallest true difference that a two-sided interval rule ("the 1 - alpha interval
    excludes 0") detects with probability ``power``, for an estimate whose interval has this
    ``half_width`` on ``df`` degrees of freedom (inf: normal): the standard error is
    half_width / t(1 - alpha/2, df), and the rule's power at a true difference d is that of a
    noncentral t with noncentrality d / se."""
    if not half_width > 0:
        return 0.0
    if not math.isfinite(df):
        df = 1e6
    critical = stats.t.ppf(1 - alpha / 2, df)
    se = half_width / critical

    def shortfall(d: float) -> float:
        nc = d / se
        rejects = stats.nct.sf(critical, df, nc) + stats.nct.cdf(-critical, df, nc)
        return (1.0 if math.isnan(rejects) else rejects) - power  # NaN only far out in the tail

    return float(optimize.brentq(shortfall, 0.0, se * (4 * critical + 20)))


def contrast(a, b, alpha: float = 0.05) -> dict:
    """Value A - value B of one task: difference, interval, and the difference the rule
    "interval excludes 0" detects with power 0.8 at this interval's width."""
    diff, low, high, term = effects.difference(a, b, 1 - alpha)
    _, df = uncertainty.welch([a.model, b.model])
    return {
        "diff": diff,
        "ci_low": low,
        "ci_high": high,
        "mdd": detectable((high - low) / 2, df, alpha),
        "test_set_term": term,
    }


def _lossy(spec: dict) -> bool:
    """Can this tokenizer lose information? Several bases per code (stride > 1), or fewer codes
    than the 4^stride sequences one code stands for."""
    return spec.get("stride", 1) > 1 or spec.get("codebook_size", 0) < 4 ** spec.get("stride", 1)


def reconstruction_claim(df: pd.DataFrame, threshold: float = 98.0, alpha: float = 0.05) -> tuple[str, str]:
    """ "Reconstruction >= 98%" (Tables 7-8), judged where it can fail: every lossy setting
    (:func:`_lossy`), on corpus windows and on each task's test sequences. Holds when every
    setting's t interval over seeds lies at or above ``threshold``; does not hold when one lies
    below it; else undecided."""
    tokenizers = df[
        (df["stage"] == "tokenizer") & df["spec"].map(lambda s: isinstance(s, dict) and _lossy(s))
    ]
    if tokenizers.empty:
        return "–", "cannot be decided here: no setting that can lose information ran (the stride ablation)"
    runs = tokenizer_runs(
        tokenizers.assign(ablation_name="lossy", ablation_value=tokenizers["tokenizer"]), "lossy"
    )
    cells = []
    for (name, where), group in runs.groupby(["value", "measured_on"]):
        values = group["recon"].to_numpy(dtype=float)
        low, high = percent_interval(values, 1 - alpha)
        cells.append((name, where, float(values.mean()), low, high, len(values)))
    worst = min(cells, key=lambda c: c[2])
    ours = (
        f"lowest: {worst[0]} on {worst[1]} {worst[2]:.2f}% [{worst[3]:.2f}, {worst[4]:.2f}] "
        f"(n={worst[5]} seeds; {len(cells)} lossy settings x sets)"
    )
    if any(high < threshold for *_, high, _ in cells):
        return ours, FAILS
    if all(low >= threshold for *_, low, _, _ in cells):
        return ours, HOLDS
    undecided_cells = [c for c in cells if not c[3] >= threshold]
    needed = max(detectable((c[4] - c[3]) / 2, c[5] - 1, alpha) for c in undecided_cells)
    return ours, undecided(needed, f" from {threshold:g}%")


def usage_claim(
    df: pd.DataFrame, full_usage: float = 99.0, alpha: float = 0.05
) -> list[tuple[str, str, str]]:
    """ "The codebooks use all their codes" (Table 1) the paper's way, without dead-code restart
    (which forces usage): per tokenizer, the ``dead_code_threshold`` = 0 variant's least-used
    level over seeds, on corpus windows and each task's test sequences. Holds when every t
    interval lies at or above ``full_usage`` %, does not hold when one lies below it."""
    runs = tokenizer_runs(df, "dead_code_threshold")
    if runs.empty:
        return []
    runs = runs[[float(v) == 0.0 for v in runs["value"]]]
    out = []
    for tokenizer, group in runs.groupby("tokenizer", sort=False):
        cells = []
        for where, by_set in group.groupby("measured_on"):
            values = by_set["usage"].to_numpy(dtype=float)
            cells.append((where, float(values.mean()), *percent_interval(values, 1 - alpha), len(values)))
        ours = "; ".join(f"{w} {m:.1f}% [{lo:.1f}, {hi:.1f}]" for w, m, lo, hi, _ in cells)
        ours += f" (no restart, n={cells[0][4]} seeds)"
        if any(hi < full_usage for *_, hi, _ in cells):
            verdict = FAILS
        elif all(lo >= full_usage for _, _, lo, _, _ in cells):
            verdict = HOLDS
        else:
            verdict = undecided(
                max(detectable((hi - lo) / 2, n - 1, alpha) for _, _, lo, hi, n in cells if lo < full_usage),
                f" from {full_usage:g}%",
            )
        out.append((tokenizer, ours, verdict))
    return out


def _format_contrasts(named: dict[str, dict]) -> str:
    return "; ".join(
        f"{name} {c['diff']:+.2f} [{c['ci_low']:.2f}, {c['ci_high']:.2f}]" for name, c in named.items()
    )


def peak_claim(by_value: dict, alpha: float = 0.05) -> tuple[str, str]:
    """ "The probe rises, then peaks below the largest codebook" (Table 7): the best interior
    size against the smallest (the rise) and the largest (the fall). Holds when both intervals
    lie above 0; does not hold when an end size beats every interior size (interval above 0)."""
    values = list(by_value)
    if len(values) < 3:
        return "–", "cannot be decided here: a rise and a fall need at least 3 codebook sizes"
    interior = values[1:-1]
    best = max(interior, key=lambda v: by_value[v].mean)
    first, last = values[0], values[-1]
    rise, fall = (
        contrast(by_value[best], by_value[first], alpha),
        contrast(by_value[best], by_value[last], alpha),
    )
    ours = _format_contrasts({f"{best}-{first}": rise, f"{best}-{last}": fall})
    if rise["ci_low"] > 0 and fall["ci_low"] > 0:
        return ours, HOLDS
    for end in (first, last):
        beats = [contrast(by_value[end], by_value[v], alpha) for v in interior]
        if all(c["ci_low"] > 0 for c in beats):
            return ours + f"; {end} best", FAILS
    return ours, undecided(max(rise["mdd"], fall["mdd"]))


def flat_claim(by_value: dict, margin: float = 1.0, alpha: float = 0.05) -> tuple[str, str]:
    """ "Code dimension barely matters" (Table 8): every pair of values within ``margin``
    points. Holds when every pairwise interval lies inside (-margin, margin) (equivalence);
    does not hold when one lies wholly outside [-margin, margin]."""
    values = list(by_value)
    if len(values) < 2:
        return "–", "cannot be decided here: fewer than 2 values ran"
    pairs = {
        f"{b}-{a}": contrast(by_value[b], by_value[a], alpha)
        for i, a in enumerate(values)
        for b in values[i + 1 :]
    }
    ours = _format_contrasts(pairs)
    if any(c["ci_low"] > margin or c["ci_high"] < -margin for c in pairs.values()):
        return ours, FAILS
    if all(-margin < c["ci_low"] and c["ci_high"] < margin for c in pairs.values()):
        return ours, HOLDS
    widest = max((c["ci_high"] - c["ci_low"]) / 2 for c in pairs.values())
    return ours, (
        f"cannot be decided at this scale (pairwise intervals up to +-{widest:.2f} points; "
        f"showing a difference < {margin:g} needs them narrower than {margin:g} minus the difference)"
    )


def best_value_claim(by_value: dict, best, alpha: float = 0.05) -> tuple[str, str]:
    """ "Value ``best`` is best" (Table 9: mask 25%): ``best`` against every other value.
    Holds when every interval lies above 0; does not hold when another value beats it (an
    interval below 0)."""
    match = [v for v in by_value if math.isclose(float(v), float(best))]
    if not match or len(by_value) < 2:
        return "–", f"cannot be decided here: {best:g} and another value did not both run"
    named = {
        f"{match[0]:g}-{v:g}": contrast(by_value[match[0]], by_value[v], alpha)
        for v in by_value
        if v != match[0]
    }
    ours = _format_contrasts(named)
    if any(c["ci_high"] < 0 for c in named.values()):
        return ours, FAILS
    if all(c["ci_low"] > 0 for c in named.values()):
        return ours, HOLDS
    return ours, undecided(max(c["mdd"] for c in named.values()))


#: what makes each ablation claim "does not hold" (shown beside every verdict)
FAILS_IF = {
    "recon": "a lossy setting (stride > 1, or fewer codes than 4^stride) reconstructs below {recon:g}%: "
    "its t interval over seeds lies below",
    "usage": "without dead-code restart, a level's usage interval over seeds lies below {usage:g}%",
    "peak": "the smallest or the largest codebook beats every interior size (interval above 0)",
    "flat": "two code dimensions differ by more than {margin:g} point (interval outside +-{margin:g})",
    "mask": "another mask ratio beats {mask:g} (interval of the difference below 0)",
}


def claim_rows(
    df: pd.DataFrame,
    codebooks: Sequence[str] = ("vq", "hrq"),
    recon_threshold: float = 98.0,
    full_usage: float = 99.0,
    dim_margin: float = 1.0,
    best_mask: float = 0.25,
    alpha: float = 0.05,
) -> list[dict]:
    """The ablation claims of the paper, one row each (claim, tokenizer, paper, ours, verdict,
    kind): reconstruction where it can be lost, usage without restart, the codebook-size peak,
    the flat code dimension and the best mask ratio, each decided by its interval rule."""
    rows = []

    def add(claim, tokenizer, paper, result, kind):
        rows.append(
            {
                "claim": claim,
                "tokenizer": tokenizer,
                "paper": paper,
                "ours": result[0],
                "verdict": result[1],
                "kind": kind,
            }
        )

    add(
        f"reconstruction >= {recon_threshold:g}% where it can be lost",
        "all",
        ">= 98.2% (Tables 7-8)",
        reconstruction_claim(df, recon_threshold, alpha),
        "recon",
    )
    for tokenizer, ours, verdict in usage_claim(df, full_usage, alpha):
        add(
            "codebooks use all codes without dead-code restart",
            tokenizer,
            "VQ/HRQ 100% (Table 1)",
            (ours, verdict),
            "usage",
        )
    probe = "linear_probe"
    for (tokenizer, quantity), by_value in encoder_cells(df, "codebook_size").items():
        if tokenizer in codebooks and quantity.startswith(probe):
            add(
                "linear probe rises, then peaks below the largest codebook",
                tokenizer,
                "HRQ 42.8 / 47.7 / 48.9 / 48.2 at 128 / 256 / 512 / 1024 codes (Table 7)",
                peak_claim(by_value, alpha),
                "peak",
            )
    for (tokenizer, quantity), by_value in encoder_cells(df, "code_dim").items():
        if tokenizer in codebooks and quantity.startswith(probe):
            add(
                f"code dimension changes the linear probe by < {dim_margin:g} point",
                tokenizer,
                "VQ range 0.5, HRQ range 0.7 over 256-1024 (Table 8)",
                flat_claim(by_value, dim_margin, alpha),
                "flat",
            )
    for (tokenizer, quantity), by_value in encoder_cells(df, "mask_ratio").items():
        if tokenizer in codebooks and quantity.startswith("finetune"):
            add(
                f"mask ratio {best_mask:g} is best",
                tokenizer,
                "HRQ H3 79.2, CVC 74.3 at 25%; 15/20/30% lower (Table 9)",
                best_value_claim(by_value, best_mask, alpha),
                "mask",
            )
    fails_if = {
        k: v.format(recon=recon_threshold, usage=full_usage, margin=dim_margin, mask=best_mask)
        for k, v in FAILS_IF.items()
    }
    for row in rows:
        row["fails if"] = fails_if[row.pop("kind")]
    return rows
