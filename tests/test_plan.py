"""The plan's run-time estimate (vqdna.workflow.plan): job keys, fallbacks and measuring a finished run."""

import math

import pandas as pd
import pytest

from vqdna.workflow import plan


def test_job_keys_and_one_finetune_job_per_replicate():
    paths = [
        "r/finetune/gue/tf_0/vq/rep0/seed0/metrics.json",
        "r/finetune/gue/tf_0/vq/rep0/seed1/metrics.json",
        "r/finetune/gue/tf_0/vq/rep1/seed0/metrics.json",
        "r/tokenizers/vq/seed0/metrics.json",
        "r/tokenizers/vq/seed1/metrics.json",
        "r/models/hrq/rep2/metrics.json",
        "r/linear_probe/gue/tf_0/bpe/rep0/metrics.json",
        "r/baseline/gue/tf_0/metrics.json",
        "efficiency.tsv",
        "r/summary/results.csv",
    ]
    assert plan.jobs(paths) == [("finetune", "vq", "gue/tf_0")] * 2 + [("train_tokenizer", "vq", "")] * 2 + [
        ("pretrain", "hrq", ""),
        ("linear_probe", "bpe", "gue/tf_0"),
        ("baseline", "", "gue/tf_0"),
        ("efficiency", "", ""),
    ]
    assert plan.job_of("finetune/gue/tf_0/vq/rep0.tsv") == ("finetune", "vq", "gue/tf_0")
    assert plan.job_of("pretrain/vq/rep0.tsv") == ("pretrain", "vq", "")


def test_estimate_falls_back_from_task_to_tokenizer_to_stage():
    measured = pd.DataFrame(
        [
            ["finetune", "vq", "gue/a", 10.0],
            ["finetune", "vq", "gue/b", 30.0],
            ["finetune", "bpe", "gue/a", 2.0],
            ["pretrain", "vq", "", 100.0],
        ],
        columns=["stage", "tokenizer", "task", "seconds"],
    )
    planned = [
        ("finetune", "vq", "gue/a"),
        ("finetune", "vq", "gue/new"),
        ("finetune", "char", "gue/a"),
        ("pretrain", "vq", ""),
        ("linear_probe", "vq", "gue/a"),
    ]
    table, minutes = plan.estimate(planned, measured, cores=2)
    table = table.set_index("stage")
    # 10 (exact) + 20 (vq median) + 10 (stage median of 10, 30, 2) = 40
    assert table.loc["finetune", "job_seconds"] == pytest.approx(40.0)
    assert table.loc["linear_probe", "unmeasured"] == 1 and table.loc["linear_probe", "job_seconds"] == 0
    assert minutes == pytest.approx((40 + 100) / 2 / 60)


def test_measure_reads_a_runs_benchmark_files(tmp_path):
    for rel, seconds in (("finetune/gue/tf_0/vq/rep0.tsv", 12.5), ("pretrain/vq/rep0.tsv", 80.0)):
        path = tmp_path / "timings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:12\t100\n")
    table = plan.measure(tmp_path, "test machine", "p")
    assert sorted(table["seconds"]) == [12.5, 80.0] and set(table["profile"]) == {"p"}
    csv = tmp_path / "job_seconds.csv"
    table.to_csv(csv, index=False)
    text = plan.describe([("finetune", "vq", "gue/tf_0")] * 3, cores=1, profile="p", table=csv)
    assert "3 benchmarked jobs, about 1 min" in text and "test machine" in text
    assert not math.isnan(plan.estimate([("pretrain", "vq", "")], table, 1)[1])
