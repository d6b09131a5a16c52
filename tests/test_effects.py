"""Paired effects across tasks (vqdna.analysis.effects): every verdict can come out each way."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vqdna.analysis import effects, plots, power


def _means(shift: dict[str, float], n_tasks: int = 13, n_reps: int = 3, noise: float = 1.0, seed: int = 0):
    """Replicate means: a per-task level shared by all tokenizers + a tokenizer shift + noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_tasks):
        level = rng.uniform(20, 80)
        for tok, s in shift.items():
            reps = 1 if tok == "kmer-spectrum LR" else n_reps
            rows += [
                {
                    "task": f"gue/t{t}",
                    "tokenizer": tok,
                    "replicate": r,
                    "score": level + s + noise * rng.standard_normal(),
                }
                for r in range(reps)
            ]
    return pd.DataFrame(rows)


def _cells(means: pd.DataFrame) -> dict:
    """Cells without test-set noise (every draw at the mean) from replicate means x100."""
    cells = {}
    for (task, tokenizer), group in means.groupby(["task", "tokenizer"]):
        scores = group["score"].to_numpy(dtype=float)
        cells.setdefault(task, {})[tokenizer] = effects.Cell(
            list(group["replicate"]), scores, np.full(200, scores.mean()), effects.SHARED
        )
    return cells


def test_a_clearly_better_holds_and_reversed_does_not():
    cells = _cells(_means({"hrq": 5.0, "vq": 0.0}))
    row = effects.effect(cells, "hrq", "vq")
    assert row["verdict"] == effects.HOLDS and row["n_tasks"] == 13 and row["tasks_a_better"] == 13
    assert row["ci_low"] > 0 and row["mdd"] > 0
    assert effects.effect(cells, "vq", "hrq")["verdict"] == effects.FAILS


def test_equal_tokenizers_are_inconclusive_with_a_detectable_difference():
    row = effects.effect(_cells(_means({"hrq": 0.0, "vq": 0.0}, noise=2.0)), "hrq", "vq")
    assert row["verdict"].startswith("inconclusive at this power (detectable: ")
    assert row["mdd"] > 0


@pytest.mark.parametrize("n_tasks", [1, 2, 5])
def test_fewer_than_six_tasks_admit_no_across_task_test(n_tasks):
    """The exact two-sided Wilcoxon p of n tasks is at least 2 / 2**n: with 5 tasks 0.0625."""
    row = effects.effect(_cells(_means({"hrq": 10.0, "vq": 0.0}, n_tasks=n_tasks)), "hrq", "vq")
    assert row["verdict"].startswith(f"no across-task test possible with {n_tasks} task")
    assert np.isnan(row["mdd"]) and f"ahead on {n_tasks} of {n_tasks}" in row["verdict"]


def test_six_tasks_can_decide():
    assert power.min_tasks(0.05) == 6 and power.min_tasks(0.01) == 8
    row = effects.effect(_cells(_means({"hrq": 10.0, "vq": 0.0}, n_tasks=6)), "hrq", "vq")
    assert row["verdict"] == effects.HOLDS


@pytest.mark.parametrize("n", [6, 9, 13])
def test_exact_signed_rank_law_matches_scipy(n):
    d = np.random.default_rng(n).standard_normal((50, n))
    got = power._rule_rejects(d + 0.9, 0.05)
    expected = [
        stats.wilcoxon(row, method="exact").pvalue < 0.05
        and row.mean() - stats.sem(row) * stats.t.ppf(0.975, n - 1) > 0
        for row in d + 0.9
    ]
    assert got.tolist() == expected


def test_detectable_difference_is_found_at_the_stated_rate_and_a_null_at_about_5_percent():
    """Simulated studies of 13 tasks (per-task sd 4): a true difference of the 'detectable'
    size holds about 80% of the time; no difference is declared either way in at most ~5%."""
    rng = np.random.default_rng(3)
    mdd = power.detectable(rng.normal(0, 4, 13))
    sd_units = mdd / 4
    decided_at_mdd, decided_at_null = 0, 0
    for i in range(400):
        d = rng.standard_normal(13)
        decided_at_mdd += power._rule_rejects((d + power._detectable_in_sd(13, 0.05, 0.8))[None], 0.05)[0]
        decided_at_null += power._rule_rejects(d[None], 0.05)[0] or power._rule_rejects(-d[None], 0.05)[0]
    assert 0.74 <= decided_at_mdd / 400 <= 0.86
    assert decided_at_null / 400 <= 0.07
    assert 0.5 < sd_units < 1.5  # about (z_.975 + z_.8) / sqrt(13) = 0.78 sd for a t-test alone


def test_best_baseline_takes_the_best_per_task_and_a_single_run_reference_pairs():
    cells = _cells(_means({"hrq": 5.0, "bpe": 0.0, "char": -3.0, "kmer-spectrum LR": 2.0}))
    per_task = effects.task_differences(cells, "hrq", effects.BEST_BASELINE, baselines=["bpe", "char"])
    assert set(per_task["b"]) <= {"bpe", "char"} and len(per_task) == 13
    row = effects.effect(cells, "hrq", "kmer-spectrum LR")
    assert row["n_tasks"] == 13 and row["mean_diff"] > 0


def test_ordering_holds_only_if_every_adjacent_pair_holds():
    cells = _cells(_means({"hrq": 10.0, "vq": 5.0, "bpe": 0.0}))
    table = effects.ordering_effects(cells, ["hrq", "vq", "bpe"], baselines=["bpe"])
    assert table["verdict"].iloc[-1] == effects.HOLDS
    broken = effects.ordering_effects(
        _cells(_means({"hrq": 10.0, "vq": 0.0, "bpe": 5.0})), ["hrq", "vq", "bpe"]
    )
    assert broken["verdict"].iloc[-1] == effects.FAILS


def test_three_replicates_get_a_welch_t_interval_per_task():
    """One task, 3 replicates each side, no test-set noise: the per-task interval is Welch's."""
    a, b = np.array([10.0, 20.0, 33.0]), np.array([25.0, 30.0, 31.0])
    cells = {
        "gue/t": {
            "a": effects.Cell([0, 1, 2], a, np.full(4000, a.mean()), effects.SHARED),
            "b": effects.Cell([0, 1, 2], b, np.full(4000, b.mean()), effects.SHARED),
        }
    }
    row = effects.task_differences(cells, "a", "b").iloc[0]
    welch = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    width = welch.high - welch.low  # Monte Carlo quantiles of a t with ~2.6 df: within 8% of the width
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((welch.low, welch.high), abs=0.08 * width)


def test_study_effects_never_pools_protocol_labels():
    rows = []
    for protocol, shift in (("full", 5.0), ("reduced-train", -5.0)):
        means = _means({"hrq": shift, "vq": 0.0, "bpe": -1.0}, seed=1 if protocol == "full" else 2)
        rows += [
            {
                "stage": "finetune",
                "suite": "gue",
                "task": r.task.split("/")[1],
                "tokenizer": r.tokenizer,
                "replicate": r.replicate,
                "score": r.score / 100,
                "protocol": protocol,
                "ablation_name": None,
            }
            for r in means.itertuples()
        ]
    table, per_task = effects.study_effects(pd.DataFrame(rows), ordering=("hrq", "vq", "bpe"))
    full = table[(table["protocol"] == "full")].set_index("comparison")
    reduced = table[(table["protocol"] == "reduced-train")].set_index("comparison")
    assert (
        full.loc["hrq - vq", "verdict"] == effects.HOLDS
        and reduced.loc["hrq - vq", "verdict"] == effects.FAILS
    )
    assert full.loc["hrq - vq", "n_tasks"] == 13 and set(per_task["protocol"]) == {"full", "reduced-train"}
    fig = plots.plot_task_differences(
        per_task[per_task["protocol"] == "full"], table[table["protocol"] == "full"]
    )
    assert len(fig.axes) == 3  # hrq - vq, vq - bpe, hrq - best baseline
    stage = plots.plot_stage_differences(per_task, table, "finetune")  # one block per protocol, never pooled
    assert len(stage.subfigs) == 2 and len(stage.axes) == 6
    empty = plots.plot_stage_differences(per_task, table, "linear_probe")
    assert "no linear_probe comparisons" in empty.texts[0].get_text()


def test_best_baseline_is_a_tokenizer_never_the_reference_row():
    """The k-mer-spectrum reference has its own comparison; "best baseline" is the best
    non-codebook tokenizer even where the reference scores higher (it did on every GUE task)."""
    means = _means({"hrq": 3.0, "vq": 2.0, "bpe": 0.0, "kmer-spectrum LR": 20.0})
    rows = [
        {
            "stage": "finetune",
            "suite": "gue",
            "task": r.task.split("/")[1],
            "tokenizer": r.tokenizer,
            "replicate": r.replicate,
            "score": r.score / 100,
            "protocol": "full",
            "ablation_name": None,
        }
        for r in means.itertuples()
    ]
    table, per_task = effects.study_effects(
        pd.DataFrame(rows), ordering=("hrq", "vq", "bpe"), reference="kmer-spectrum LR"
    )
    best = per_task[per_task["comparison"] == "hrq - best baseline"]
    assert set(best["b"]) == {"bpe"}
    assert table.set_index("comparison").loc["hrq - best baseline", "mean_diff"] > 0
    assert table.set_index("comparison").loc["hrq - kmer-spectrum LR", "mean_diff"] < 0
