"""Paired effects across tasks (vqdna.effects): every verdict can come out each way."""

import numpy as np
import pandas as pd
import pytest

from vqdna import effects, plots


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


def test_a_clearly_better_holds_and_reversed_does_not():
    means = _means({"hrq": 5.0, "vq": 0.0})
    row = effects.effect(means, "hrq", "vq")
    assert row["verdict"] == effects.HOLDS and row["n_tasks"] == 13 and row["tasks_a_better"] == 13
    assert 3.5 < row["mean_diff"] < 6.5 and row["ci_low"] > 0 and row["wilcoxon_p"] < 0.001
    assert effects.effect(means, "vq", "hrq")["verdict"] == effects.FAILS


def test_equal_tokenizers_are_inconclusive_with_a_detectable_difference():
    row = effects.effect(_means({"hrq": 0.0, "vq": 0.0}, noise=2.0), "hrq", "vq")
    assert row["verdict"].startswith("inconclusive at this power")
    assert row["ci_low"] < 0 < row["ci_high"] and 0 < row["mdd"] < 10


def test_one_task_cannot_decide():
    row = effects.effect(_means({"hrq": 10.0, "vq": 0.0}, n_tasks=1), "hrq", "vq")
    assert row["verdict"].startswith("inconclusive (one task")


def test_best_baseline_takes_the_best_per_task_and_a_single_run_reference_pairs():
    means = _means({"hrq": 3.0, "bpe": 0.0, "char": -5.0, "kmer-spectrum LR": 1.0})
    per_task = effects.task_differences(means, "hrq", effects.BEST_BASELINE, baselines=["bpe", "char"])
    assert set(per_task["b"]) == {"bpe"} and len(per_task) == 13
    row = effects.effect(means, "hrq", "kmer-spectrum LR")
    assert row["n_tasks"] == 13 and 1.0 < row["mean_diff"] < 3.0


def test_ordering_holds_only_if_every_adjacent_pair_holds():
    means = _means({"hrq": 10.0, "vq": 5.0, "bpe": 0.0})
    table = effects.ordering_effects(means, ["hrq", "vq", "bpe"], baselines=["bpe"])
    assert list(table["comparison"]) == ["hrq - vq", "vq - bpe", "hrq - best baseline", "hrq > vq > bpe"]
    assert table["verdict"].iloc[-1] == effects.HOLDS
    broken = effects.ordering_effects(_means({"hrq": 10.0, "vq": 0.0, "bpe": 5.0}), ["hrq", "vq", "bpe"])
    assert broken["verdict"].iloc[-1] == effects.FAILS


def test_sign_flip_is_exact_for_few_pairs():
    assert effects.sign_flip_p([np.array([1.0, 1.0, 1.0])]) == pytest.approx(2 / 8)
    assert effects.sign_flip_p([np.array([1.0]), np.array([-1.0])]) == pytest.approx(1.0)


def test_minimal_detectable_difference_matches_the_t_formula():
    d = [1.0, 2.0, 3.0, 4.0]
    from scipy import stats

    expected = (stats.t.ppf(0.975, 3) + stats.t.ppf(0.8, 3)) * np.std(d, ddof=1) / 2
    assert effects.minimal_detectable_difference(d) == pytest.approx(expected)
    assert np.isnan(effects.minimal_detectable_difference([1.0]))


def test_replicate_means_average_seeds_and_keep_the_baseline():
    records = pd.DataFrame(
        [
            {
                "stage": "finetune",
                "suite": "gue",
                "task": "a",
                "tokenizer": "vq",
                "replicate": 0,
                "score": 0.2,
                "protocol": "p",
                "ablation_name": None,
            },
            {
                "stage": "finetune",
                "suite": "gue",
                "task": "a",
                "tokenizer": "vq",
                "replicate": 0,
                "score": 0.4,
                "protocol": "p",
                "ablation_name": None,
            },
            {
                "stage": "baseline",
                "suite": "gue",
                "task": "a",
                "tokenizer": "kmer-spectrum LR",
                "replicate": 0,
                "score": 0.5,
                "protocol": "q",
                "ablation_name": None,
            },
            {
                "stage": "baseline",
                "suite": "gue",
                "task": "other",
                "tokenizer": "kmer-spectrum LR",
                "replicate": 0,
                "score": 0.5,
                "protocol": "q",
                "ablation_name": None,
            },
        ]
    )
    means = effects.replicate_means(records, protocol="p")
    assert means.to_dict("records") == [
        {"task": "gue/a", "tokenizer": "kmer-spectrum LR", "replicate": 0, "score": 50.0},
        {"task": "gue/a", "tokenizer": "vq", "replicate": 0, "score": pytest.approx(30.0)},
    ]


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
