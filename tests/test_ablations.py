"""The ablation analysis: known answers for the detectable difference, its power by simulation of
the rule, and every ablation claim shown holding, failing and undecided on built records."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import matthews_corrcoef

from vqdna.analysis import ablation_claims, ablation_tables, ablations, effects
from vqdna.core import metrics

RNG = np.random.default_rng(0)


def test_detectable_known_answer_normal():
    """se 1 (half-width 1.96, normal): Phi(d - 1.96) + Phi(-d - 1.96) = 0.8 at d = 2.8016."""
    assert ablation_claims.detectable(1.959964, math.inf) == pytest.approx(2.8016, abs=2e-3)
    assert ablation_claims.detectable(0.0, 4) == 0.0


def test_detectable_is_the_power_of_the_interval_rule_by_simulation():
    """Two groups of 3, sd 1, pooled t interval (df 4): at the detectable difference the rule
    "interval excludes 0" rejects in about 80% of simulated studies, at half of it far less."""
    n, df = 3, 4
    half = float(stats.t.ppf(0.975, df) * math.sqrt(2 / n))
    mdd = ablation_claims.detectable(half, df)
    rng = np.random.default_rng(1)

    def rate(delta):
        a = rng.normal(delta, 1, (20000, n))
        b = rng.normal(0, 1, (20000, n))
        pooled = np.sqrt((a.var(1, ddof=1) + b.var(1, ddof=1)) / 2 * 2 / n)
        return float(np.mean(np.abs(a.mean(1) - b.mean(1)) > stats.t.ppf(0.975, df) * pooled))

    assert rate(mdd) == pytest.approx(0.8, abs=0.03)
    assert rate(mdd / 2) < 0.4
    assert rate(0.0) == pytest.approx(0.05, abs=0.01)


def tokenizer_record(knob, value, base, seed, recon, usage, stride=1, codebook_size=64, task_recon=None):
    tasks = {
        "embedded/coding": {
            "recon_accuracy": task_recon if task_recon is not None else recon,
            "code_usage": [usage],
            "perplexity": [30.0],
        }
    }
    return {
        "stage": "tokenizer",
        "tokenizer": f"{base}~{knob}={value}",
        "base_tokenizer": base,
        "ablation_name": knob,
        "ablation_value": value,
        "seed": seed,
        "spec": {"stride": stride, "codebook_size": codebook_size},
        "recon_accuracy": recon,
        "code_usage": [usage],
        "perplexity": [40.0 + seed],
        "tasks": tasks,
    }


def recon_frame(values, stride=4):
    return pd.DataFrame(
        [tokenizer_record("stride", stride, "vq", s, v, 1.0, stride=stride) for s, v in enumerate(values)]
    )


def test_reconstruction_claim_holds_fails_and_is_undecided():
    assert (
        ablation_claims.reconstruction_claim(recon_frame([0.995, 0.996, 0.994]))[1] == ablation_claims.HOLDS
    )
    assert ablation_claims.reconstruction_claim(recon_frame([0.90, 0.91, 0.92]))[1] == ablation_claims.FAILS
    ours, verdict = ablation_claims.reconstruction_claim(recon_frame([0.97, 0.999, 0.985]))
    assert verdict.startswith("cannot be decided at this scale (detectable:") and "lowest" in ours
    # stride 1 with 64 codes cannot lose information: the claim cannot be judged there
    lossless = recon_frame([1.0, 1.0, 1.0], stride=1)
    assert ablation_claims.reconstruction_claim(lossless)[1].startswith("cannot be decided here")


def test_reconstruction_claim_reads_the_task_test_sequences_too():
    frame = pd.DataFrame(
        [tokenizer_record("stride", 4, "vq", s, 0.995, 1.0, stride=4, task_recon=0.90) for s in range(3)]
    )
    assert ablation_claims.reconstruction_claim(frame)[1] == ablation_claims.FAILS


def test_usage_claim_without_restart():
    full = pd.DataFrame([tokenizer_record("dead_code_threshold", 0, "vq", s, 1.0, 1.0) for s in range(3)])
    ((tokenizer, ours, verdict),) = ablation_claims.usage_claim(full)
    assert tokenizer == "vq" and verdict == ablation_claims.HOLDS and "corpus windows 100.0%" in ours
    partial = pd.DataFrame(
        [tokenizer_record("dead_code_threshold", 0, "vq", s, 1.0, u) for s, u in enumerate([0.6, 0.7, 0.65])]
    )
    assert ablation_claims.usage_claim(partial)[0][2] == ablation_claims.FAILS
    restarted = pd.DataFrame(
        [tokenizer_record("dead_code_threshold", 1, "vq", s, 1.0, 0.5) for s in range(3)]
    )
    assert ablation_claims.usage_claim(restarted) == []  # restart forces usage: not the paper's reading


def cell(scores, test_sd=0.3, n_boot=metrics.N_BOOT):
    """A cell of 3 replicates whose test-set draws spread by ``test_sd`` around the mean."""
    scores = np.asarray(scores, dtype=float)
    draws = scores.mean() + RNG.normal(0, test_sd, n_boot)
    return effects.Cell(replicates=[0, 1, 2], scores=scores, draws=draws, term=effects.SHARED)


def test_peak_claim():
    rise_and_fall = {32: cell([40, 40.5, 39.5]), 64: cell([50, 50.5, 49.5]), 128: cell([45, 45.2, 44.8])}
    assert ablation_claims.peak_claim(rise_and_fall)[1] == ablation_claims.HOLDS
    monotone = {32: cell([40, 40.5, 39.5]), 64: cell([45, 45.5, 44.5]), 128: cell([50, 50.2, 49.8])}
    ours, verdict = ablation_claims.peak_claim(monotone)
    assert verdict == ablation_claims.FAILS and "128 best" in ours
    noisy = {32: cell([40, 48, 44]), 64: cell([41, 49, 45]), 128: cell([40, 47, 43])}
    assert ablation_claims.peak_claim(noisy)[1].startswith("cannot be decided at this scale (detectable:")
    assert ablation_claims.peak_claim({32: noisy[32], 64: noisy[64]})[1].startswith("cannot be decided here")


def test_flat_claim():
    flat = {
        32: cell([50, 50.1, 49.9], 0.05),
        64: cell([50.1, 50.2, 50.0], 0.05),
        128: cell([50, 50.05, 49.95], 0.05),
    }
    assert ablation_claims.flat_claim(flat)[1] == ablation_claims.HOLDS
    steep = {32: cell([40, 40.5, 39.5]), 64: cell([50, 50.5, 49.5])}
    assert ablation_claims.flat_claim(steep)[1] == ablation_claims.FAILS
    noisy = {32: cell([40, 48, 44]), 64: cell([41, 49, 45])}
    assert ablation_claims.flat_claim(noisy)[1].startswith(
        "cannot be decided at this scale (pairwise intervals"
    )


def test_best_value_claim():
    best = {0.15: cell([40, 40.5, 39.5]), 0.25: cell([50, 50.5, 49.5]), 0.3: cell([45, 45.2, 44.8])}
    assert ablation_claims.best_value_claim(best, 0.25)[1] == ablation_claims.HOLDS
    assert ablation_claims.best_value_claim(best, 0.15)[1] == ablation_claims.FAILS
    noisy = {0.15: cell([40, 48, 44]), 0.25: cell([41, 49, 45])}
    assert ablation_claims.best_value_claim(noisy, 0.25)[1].startswith("cannot be decided at this scale")
    assert ablation_claims.best_value_claim(noisy, 0.2)[1].startswith("cannot be decided here")


def probe_records(knob, value_means, n_test=300, stage="linear_probe", base="hrq"):
    """Probe records on one shared test set, each run right on the sequences whose (shared)
    difficulty lies below its accuracy: runs differ only as much as their accuracies do."""
    rng = np.random.default_rng(7)
    labels, difficulty = rng.integers(0, 2, n_test), rng.random(n_test)
    rows = []
    for value, accuracies in value_means.items():
        for replicate, accuracy in enumerate(accuracies):
            right = difficulty < accuracy
            predicted = np.where(right, labels, 1 - labels)
            rows.append(
                {
                    "stage": stage,
                    "tokenizer": f"{base}~{knob}={value}",
                    "base_tokenizer": base,
                    "ablation_name": knob,
                    "ablation_value": value,
                    "suite": "embedded",
                    "task": "coding",
                    "replicate": replicate,
                    "metric": "mcc",
                    "score": matthews_corrcoef(labels, predicted),
                    "test_labels": labels.tolist(),
                    "test_predictions": predicted.tolist(),
                }
            )
    return rows


def test_claim_rows_decide_every_ablation_claim_on_records():
    records = pd.DataFrame(
        [tokenizer_record("stride", 4, b, s, 0.995, 1.0, stride=4) for b in ("vq", "hrq") for s in range(3)]
        + [
            tokenizer_record("dead_code_threshold", 0, b, s, 1.0, 0.7)
            for b in ("vq", "hrq")
            for s in range(3)
        ]
        + probe_records(
            "codebook_size", {32: [0.70, 0.71, 0.70], 64: [0.85, 0.86, 0.85], 128: [0.78, 0.79, 0.78]}
        )
        + probe_records("code_dim", {32: [0.70, 0.71, 0.70], 64: [0.85, 0.86, 0.85]})
        + probe_records("mask_ratio", {0.15: [0.8, 0.8, 0.8], 0.25: [0.8, 0.8, 0.8]}, stage="finetune")
    )
    rows = pd.DataFrame(ablation_claims.claim_rows(records))
    verdicts = dict(zip(rows["claim"] + " " + rows["tokenizer"], rows["verdict"]))
    assert verdicts["reconstruction >= 98% where it can be lost all"] == ablation_claims.HOLDS
    assert verdicts["codebooks use all codes without dead-code restart vq"] == ablation_claims.FAILS
    assert verdicts["linear probe rises, then peaks below the largest codebook hrq"] == ablation_claims.HOLDS
    assert verdicts["code dimension changes the linear probe by < 1 point hrq"] == ablation_claims.FAILS
    assert verdicts["mask ratio 0.25 is best hrq"].startswith("cannot be decided at this scale")
    assert set(rows.columns) == {"claim", "tokenizer", "paper", "ours", "verdict", "fails if"}


def test_paper_layout_pairs_values_by_their_ratio_to_the_default():
    records = pd.DataFrame(
        [tokenizer_record("codebook_size", v, "hrq", s, 0.999, 1.0) for v in (32, 64, 128) for s in range(3)]
        + probe_records("codebook_size", {32: [0.7] * 3, 64: [0.8] * 3, 128: [0.75] * 3})
    )
    table = ablations.knob_table(records, "codebook_size")
    layout = ablation_tables.paper_layout(table, "codebook_size", our_default=64, tokenizers=["hrq"])
    assert list(layout["paper"]) == ["128", "256", "512", "1024"]
    assert list(layout["ours"]) == ["", "32", "64", "128"]
    default = layout[layout["ours"] == "64"].iloc[0]
    assert default["HRQ Rec. paper"] == 99.6 and default["HRQ Lin. paper (CVC)"] == 48.9
    probe = table[(table["quantity"] == "linear_probe") & (table["value"] == 64)].iloc[0]
    assert default["HRQ Lin. ours (embedded/coding)"].startswith(f"{probe['mean']:.1f} [")
    fig = ablation_tables.plot_knob(table, "codebook_size")
    assert len(fig.axes) == 5  # recon (windows, task), usage, perplexity, probe


def test_percent_intervals_stay_within_0_and_100():
    low, high = ablations.percent_interval([60.0, 95.0, 99.0])
    assert 0 <= low < 60 and high == 100.0
    assert ablations.percent_interval([100.0, 100.0, 100.0]) == (100.0, 100.0)
