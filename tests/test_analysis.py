"""Gathering, statistics and verdicts on small hand-built metrics records."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest

from vqdna.analysis import ablation_tables, ablations, baselines, claims, plots, pretext, tables
from vqdna.workflow.records import collect_metrics, validate_record

SMALL = ["smaller model"]
FAILS = "does not hold"
REDUCED = ["smaller model", "reduced-train"]


def clf(
    task,
    tokenizer,
    seed,
    score,
    stage="finetune",
    metric="mcc",
    deviations=SMALL,
    paper=None,
    suite="gue",
    ablation=None,
):
    """One realistic classification record with ``score`` as its primary metric."""
    record = {
        "stage": stage,
        "suite": suite,
        "task": task,
        "tokenizer": tokenizer,
        "seed": seed,
        "metric": metric,
        "mcc": 0.1,
        "macro_f1": 0.2,
        "accuracy": 0.6,
        "deviations": list(deviations),
        "paper": paper or {},
    }
    if stage != "baseline":
        record.update(coverage="whole sequences", bp_seen={"mean": 70.0, "min": 70, "max": 70}, n_cut=0)
    record[metric] = score
    if ablation:
        record["ablation"] = {"name": ablation[0], "value": ablation[1]}
        record["tokenizer"] = f"{tokenizer}~{ablation[0]}={ablation[1]}"
    return record


def tok(tokenizer, recon, usage, ablation=None):
    record = {
        "stage": "tokenizer",
        "tokenizer": tokenizer,
        "ablation": None,
        "recon_accuracy": recon,
        "code_usage": usage,
        "perplexity": [30.0] * len(usage),
        "bp_per_token": 1.0,
    }
    if ablation:
        record["ablation"] = {"name": ablation[0], "value": ablation[1]}
    return record


def frame(records, tmp_path):
    paths = []
    for i, record in enumerate(records):
        path = tmp_path / f"m{i}.json"
        path.write_text(json.dumps(record))
        paths.append(path)
    return collect_metrics(paths)


@pytest.fixture
def records():
    paper = {"DNABERT-2": 71.99, "VQDNA-HRQ": 72.48}
    out = []
    for seed, (h, v, b) in enumerate([(0.70, 0.68, 0.60), (0.72, 0.66, 0.62), (0.74, 0.70, 0.58)]):
        out += [
            clf("tf_0", "hrq", seed, h, paper=paper),
            clf("tf_0", "vq", seed, v, paper=paper),
            clf("tf_0", "bpe", seed, b, paper=paper),
        ]
        # tie between hrq and vq on mouse_0
        out += [
            clf("mouse_0", "hrq", seed, 0.5),
            clf("mouse_0", "vq", seed, 0.5),
            clf("mouse_0", "bpe", seed, 0.4),
        ]
        # a reduced-train task: must be ranked apart
        out += [
            clf("covid", "hrq", seed, 0.3, metric="macro_f1", deviations=REDUCED),
            clf("covid", "bpe", seed, 0.35, metric="macro_f1", deviations=REDUCED),
        ]
    out += [
        clf("tf_0", baselines.BASELINE_NAME, 0, 0.55, stage="baseline"),
        clf(
            "covid", baselines.BASELINE_NAME, 0, 0.2, stage="baseline", metric="macro_f1", deviations=REDUCED
        ),
    ]
    return out


def test_validate_record_accepts_both_kinds_and_rejects_bad_ones():
    validate_record(clf("t", "hrq", 0, 0.5))
    validate_record(tok("hrq", 0.99, [1.0, 0.9]))
    validate_record({"stage": "pretrain", "tokenizer": "hrq", "ablation": None, "final_val_loss": 2.1})
    with pytest.raises(ValueError, match="invalid metrics record"):
        validate_record({k: v for k, v in clf("t", "hrq", 0, 0.5).items() if k != "seed"})
    with pytest.raises(ValueError):
        validate_record({**clf("t", "hrq", 0, 0.5), "metric": "auc"})
    with pytest.raises(ValueError):
        validate_record({**tok("hrq", 1.5, [1.0]), "recon_accuracy": 1.5})
    with pytest.raises(ValueError):
        validate_record({**clf("t", "hrq", 0, 0.5), "ablation": {"name": "codebook_size"}})


def test_summary_means_sd_ranks_and_protocols(records, tmp_path):
    df = frame(records, tmp_path)
    table = tables.summary_table(df, "finetune").set_index(["task", "tokenizer"])
    hrq = table.loc[("tf_0", "hrq")]
    assert hrq["n_runs"] == 3
    assert hrq["mean"] == pytest.approx(72.0)
    assert hrq["sd"] == pytest.approx(100 * np.std([0.70, 0.72, 0.74], ddof=1))
    assert hrq["paper"] == 72.48 and table.loc[("tf_0", "bpe"), "paper"] == 71.99
    assert math.isnan(table.loc[("tf_0", "vq"), "paper"])
    # ties averaged
    assert table.loc[("mouse_0", "hrq"), "rank"] == table.loc[("mouse_0", "vq"), "rank"] == 1.5
    assert table.loc[("mouse_0", "bpe"), "rank"] == 3
    # average rank over the two full-size tasks only: the reduced-train task is ranked apart
    assert table.loc[("tf_0", "hrq"), "avg_rank"] == pytest.approx((1 + 1.5) / 2)
    assert table.loc[("tf_0", "hrq"), "protocol"] == "smaller model"
    covid = table.loc["covid"]
    assert set(covid["protocol"]) == {"reduced-train; smaller model"}
    assert covid.loc["bpe", "rank"] == 1 and covid.loc["bpe", "avg_rank"] == 1
    assert covid.loc["hrq", "n_ranked_tasks"] == 1
    # the reference row is present, labelled and unranked
    assert covid.loc[baselines.BASELINE_NAME, "is_reference"] and math.isnan(
        covid.loc[baselines.BASELINE_NAME, "rank"]
    )
    assert table.loc[("tf_0", baselines.BASELINE_NAME), "mean"] == pytest.approx(55.0)
    # Table 1 beside GUE covid (CVC) only: covid-mini is built from other genomes, so the main
    # tables show no paper number for it (the ablation tables use it as a stand-in for trends)
    mini = tables.summary_table(
        frame([clf("who_variant", "hrq", 0, 0.4, stage="linear_probe", metric="macro_f1")], tmp_path.parent),
        "linear_probe",
    )
    assert math.isnan(mini["paper"].iloc[0])
    probe = tables.summary_table(
        frame(
            [
                clf(
                    "covid",
                    "hrq",
                    0,
                    0.4,
                    stage="linear_probe",
                    metric="macro_f1",
                    paper={"VQDNA-HRQ": 74.32},
                )
            ],
            tmp_path / "..",
        ),
        "linear_probe",
    )
    assert probe["paper"].tolist() == [48.87]
    ranks = tables.average_ranks(tables.summary_table(df, "finetune"))
    assert set(ranks["protocol"]) == {"smaller model", "reduced-train; smaller model"}


def test_markdown_and_csv_carry_paper_numbers(records, tmp_path):
    summary = tables.summary_table(frame(records, tmp_path), "finetune")
    tables.write_table(summary, tmp_path / "out" / "finetune", display=tables.format_summary(summary))
    text = (tmp_path / "out" / "finetune.md").read_text()
    assert "72.48" in text and "71.99" in text and "72.00 ± 2.00" in text
    assert "reduced-train; smaller model" in text and baselines.BASELINE_NAME in text
    assert len(pd.read_csv(tmp_path / "out" / "finetune.csv")) == len(summary)


def _ordering_records(gap, n_tasks=8, noise=0.01):
    """Every tokenizer on ``n_tasks`` tasks, 3 seeds, each ``gap`` below the one before it, plus
    seeded per-task x tokenizer noise."""
    order = ["hrq", "vq", "bpe", "kmer6", "char"]
    rng = np.random.default_rng(0)
    out = []
    for t in range(n_tasks):
        offsets = noise * rng.standard_normal(len(order))
        for seed, jitter in enumerate((-0.005, 0.0, 0.005)):
            out += [
                clf(f"t{t}", name, seed, 0.6 + 0.01 * t - gap * i + offsets[i] + jitter)
                for i, name in enumerate(order)
            ]
    return out


def _verdict(table, claim_start, tokenizer="all"):
    row = table[table["claim"].str.startswith(claim_start) & (table["tokenizer"] == tokenizer)]
    assert len(row) == 1, (claim_start, table)
    return row["verdict"].iloc[0]


def test_ordering_verdicts(tmp_path):
    holds = claims.claim_verdicts(frame(_ordering_records(0.05), tmp_path))
    assert _verdict(holds, "tokenizer ordering") == "holds"
    noisy = claims.claim_verdicts(frame(_ordering_records(0.001), tmp_path / ".."))
    assert _verdict(noisy, "tokenizer ordering").startswith("inconclusive (at this power")
    few = claims.claim_verdicts(frame(_ordering_records(0.05, n_tasks=2), tmp_path / ".."))
    assert _verdict(few, "tokenizer ordering").startswith("inconclusive")  # 2 tasks cannot decide
    reversed_ = claims.claim_verdicts(frame(_ordering_records(-0.05), tmp_path))
    assert _verdict(reversed_, "tokenizer ordering") == "does not hold"
    missing = [r for r in _ordering_records(0.05) if r["tokenizer"] != "char"]
    verdict = _verdict(claims.claim_verdicts(frame(missing, tmp_path)), "tokenizer ordering")
    assert verdict == "inconclusive (not run: char)"


def _spec_tok(tokenizer, recon, usage, stride=1, codebook_size=64, restart=1, ablation=None):
    record = tok(tokenizer, recon, usage, ablation)
    record["spec"] = {"stride": stride, "codebook_size": codebook_size, "dead_code_threshold": restart}
    return record


def test_every_claim_verdict_can_fail(tmp_path):
    """Each claim is fed one input for which it must hold and one for which it must not."""
    # usage: judged on runs without dead-code restart; 6-mers must use "far fewer"
    restart_only = [_spec_tok("vq", 1.0, [1.0]), _spec_tok("hrq", 1.0, [1.0, 1.0])]
    usage = {"kmer6": 0.47}
    assert _verdict(
        claims.claim_verdicts(frame(restart_only, tmp_path), usage=usage), "codebooks use all codes"
    ).startswith("inconclusive (only runs with dead-code restart")
    no_restart = [_spec_tok("vq", 1.0, [1.0], restart=0), _spec_tok("hrq", 1.0, [1.0, 1.0], restart=0)]
    verdicts = claims.claim_verdicts(frame(no_restart, tmp_path), usage=usage)
    assert _verdict(verdicts, "codebooks use all codes") == "holds"
    unused = [_spec_tok("vq", 1.0, [0.67], restart=0), _spec_tok("hrq", 1.0, [1.0, 0.68], restart=0)]
    assert (
        _verdict(claims.claim_verdicts(frame(unused, tmp_path), usage=usage), "codebooks use all codes")
        == FAILS
    )
    assert (
        _verdict(
            claims.claim_verdicts(frame(no_restart, tmp_path), usage={"kmer6": 0.97}),
            "codebooks use all codes",
        )
        == FAILS
    )

    # the ablation claims: decided by vqdna.analysis.ablation_claims (tests/test_ablations.py) where ablations
    # ran, else one row naming the study that decides them
    verdicts = claims.claim_verdicts(frame(no_restart, tmp_path), usage=usage)
    assert _verdict(verdicts, "the ablation claims").startswith(
        "not run in this study: config/ablations.yaml"
    )
    masks = [
        clf("coding", "hrq", s, score + 0.001 * s, ablation=("mask_ratio", ratio))
        for ratio, score in ((0.15, 0.70), (0.25, 0.74))
        for s in range(3)
    ]
    ablated = claims.claim_verdicts(frame(no_restart + masks, tmp_path), usage=usage)
    assert "the ablation claims" not in " ".join(ablated["claim"])
    assert _verdict(ablated, "mask ratio 0.25 is best", "hrq") in ("holds",) or _verdict(
        ablated, "mask ratio 0.25 is best", "hrq"
    ).startswith("cannot be decided at this scale")

    # every verdict says what would make it fail
    assert ablated["fails if"].str.len().gt(20).all()


def pretrain(tokenizer, kind, val_loss, unigram, replicate=0, span=1, position=None, neighbour=None):
    return {
        "stage": "pretrain",
        "tokenizer": tokenizer,
        "tokenizer_type": kind,
        "seed": replicate,
        "replicate": replicate,
        "ablation": None,
        "final_val_loss": val_loss,
        "unigram_loss": unigram,
        "position_loss": unigram if position is None else position,
        "neighbour_loss": unigram if neighbour is None else neighbour,
        "mlm_span": span,
    }


def kmer_tokenizer(name, stride):
    return {
        "stage": "tokenizer",
        "tokenizer": name,
        "seed": 0,
        "ablation": None,
        "spec": {"type": "kmer", "k": 6, "stride": stride},
        "recon_accuracy": 1.0,
        "code_usage": [0.5],
        "perplexity": [100.0],
        "bp_per_token": float(stride),
    }


def test_pretext_verdict_fails_for_an_encoder_at_its_unigram_level(tmp_path):
    records = [pretrain("char", "char", 1.30 + 0.001 * r, 1.37, r) for r in range(3)]
    records += [pretrain("kmer6", "kmer", 2.0 + 0.01 * r, 8.3, r, span=6, neighbour=6.0) for r in range(3)]
    records += [kmer_tokenizer("kmer6", 1)]
    records += [
        pretrain("vq", "vq", 3.90 + 0.01 * r, 4.16, r, neighbour=3.80) for r in range(3)
    ]  # leak explains it
    records += [pretrain("bpe", "bpe", 6.05 + 0.2 * r, 6.50, r) for r in range(3)]  # within replicate spread
    table = pretext.pretext_table(frame(records, tmp_path)).set_index("tokenizer")
    assert table.loc["char", "learned"] == "yes" and table.loc["kmer6", "learned"] == "yes"
    assert table.loc["vq", "learned"] == "no" and table.loc["bpe", "learned"] == "no"
    assert table.loc["bpe", "margin"] > 0  # below its baseline, but by less than 2 sd of the replicates
    assert table.loc["vq", "overlapping tokens"] == "yes" and table.loc["char", "overlapping tokens"] == "no"
    verdicts = claims.claim_verdicts(frame(records, tmp_path))
    assert _verdict(verdicts, "the encoder learned", "vq") == FAILS
    assert _verdict(verdicts, "the encoder learned", "kmer6") == "holds"
    ordering = frame(records + _ordering_records(0.05), tmp_path)
    assert (
        _verdict(claims.claim_verdicts(ordering), "tokenizer ordering")
        == "holds; rests on encoders that did not learn their pretext: vq, bpe"
    )


def test_tokenizer_comparison_puts_task_usage_beside_probe_and_finetune(tmp_path):
    records = [
        clf("tf_0", t, s, score + 0.01 * s) for t, score in (("hrq", 0.7), ("kmer6", 0.6)) for s in range(3)
    ]
    records += [
        {**clf("tf_0", t, 0, score, stage="linear_probe"), "vocab_usage": usage}
        for t, score, usage in (("hrq", 0.5, [1.0, 0.9]), ("kmer6", 0.4, [0.47]))
    ]
    table = tables.tokenizer_comparison(frame(records, tmp_path)).set_index("tokenizer")
    assert table.loc["hrq", "usage %"] == pytest.approx(90.0)  # lowest level
    assert table.loc["kmer6", "usage %"] == pytest.approx(47.0)
    assert table.loc["hrq", "fine-tune"] == pytest.approx(71.0) and table.loc["hrq", "linear probe"] == 50.0
    assert table.loc["kmer6", "fine-tune sd"] == pytest.approx(1.0)


def test_ablation_tables_count_a_file_listed_twice_once(tmp_path):
    """The workflow asks for a base model's runs both as study and as ablation outputs: a file
    listed twice is one run in the knob's table."""
    records = [
        clf("coding", "vq", 0, 0.30 + 0.01 * k / 32, stage="linear_probe", ablation=("codebook_size", k))
        for k in (32, 64)
    ]
    records += [tok("vq", 1.0, [1.0], ablation=("codebook_size", k)) for k in (32, 64)]
    df = frame(records, tmp_path)
    twice = collect_metrics(list(df["path"]) * 2)
    assert len(twice) == len(records)
    table = ablations.knob_table(twice, "codebook_size")
    assert set(table["quantity"]) == {"linear_probe", "recon", "usage", "perplexity"}
    assert (table["n"] == 1).all()


def test_kmer_spectrum_counts_skip_n_and_sequence_ends():
    features = baselines.kmer_spectrum(["ACGTA", "NACG", "AC"], ks=(3,)).toarray()
    acg, cgt, gta = (int("".join(str("ACGT".index(c)) for c in kmer), 4) for kmer in ("ACG", "CGT", "GTA"))
    assert features[0, [acg, cgt, gta]] == pytest.approx([1 / np.sqrt(3)] * 3)
    assert features[0].sum() == pytest.approx(3 / np.sqrt(3))
    assert features[1, acg] == pytest.approx(1.0) and features[1].sum() == pytest.approx(1.0)
    assert features[2].sum() == 0  # too short, and no k-mer across the boundary
    assert baselines.kmer_spectrum(["ACGTACGT"] * 2).shape == (2, 64 + 256 + 1024 + 4096)


def test_kmer_spectrum_baseline_on_gue_core_promoter(shared_data):
    folder = shared_data / "GUE" / "prom" / "prom_core_tata"
    if not folder.is_dir():
        pytest.skip("GUE prom_core_tata not present")
    train, test = (pd.read_csv(folder / f"{split}.csv") for split in ("train", "test"))
    start = time.perf_counter()
    metrics = baselines.kmer_spectrum_baseline(train, test, seed=0)
    assert time.perf_counter() - start < 30
    assert metrics["mcc"] > 0.3 and metrics["n_test"] == len(test)


def test_figures_are_returned(records, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = frame(
        records
        + [
            clf("who_variant", "hrq", 0, 0.5 + 0.01 * r, metric="macro_f1", ablation=("mask_ratio", r))
            for r in (0.15, 0.25)
        ],
        tmp_path,
    )
    figures = [
        plots.plot_task_scores(df),
        plots.plot_rank_heatmap(tables.summary_table(df, "finetune")),
        ablation_tables.plot_knob(ablations.knob_table(df, "mask_ratio"), "mask_ratio"),
    ]
    assert all(isinstance(f, matplotlib.figure.Figure) and f.axes for f in figures)
    plt.close("all")


def test_every_notebook_record_goes_through_the_validating_writer(tmp_path):
    """write_record refuses a malformed record before writing anything (the job fails, not the
    summary), writes numpy scalars as plain numbers, and covers the SARS-CoV-2 record too."""
    from pathlib import Path

    import numpy as np

    from vqdna.workflow.records import write_record

    with pytest.raises(ValueError, match="invalid metrics record"):
        write_record({"stage": "sarscov2", "n_genomes": 3}, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()
    record = {
        "stage": "sarscov2",
        "n_genomes": 2,
        "lineage_structure": [{"n": np.int64(3)}],
        "code_changes": [],
        "fine_level_more_sensitive": "holds",
    }
    write_record(record, tmp_path / "ok.json")
    assert json.loads((tmp_path / "ok.json").read_text())["lineage_structure"] == [{"n": 3}]
    notebooks = {nb.stem: nb.read_text() for nb in (Path(__file__).parents[1] / "notebooks").glob("*.py")}
    for name in ("train_tokenizer", "pretrain", "finetune", "linear_probe", "sarscov2"):  # the record writers
        assert "write_record(" in notebooks[name], name
    assert not [name for name, text in notebooks.items() if "json.dump" in text]  # nothing written by hand


def test_a_margin_that_position_alone_explains_is_not_learning(tmp_path):
    """Non-overlapping 6-mers: the tail slot holds single nucleotides, so a model of frequencies
    given the slot beats the unigram loss; an encoder between the two has not shown learning."""
    records = [
        pretrain("kmer6_nonoverlap", "kmer", 7.60 + 0.001 * r, 7.88, r, position=7.55) for r in range(3)
    ]
    records += [kmer_tokenizer("kmer6_nonoverlap", 6)]
    table = pretext.pretext_table(frame(records, tmp_path)).set_index("tokenizer")
    assert table.loc["kmer6_nonoverlap", "learned"] == "no"
    assert table.loc["kmer6_nonoverlap", "margin"] < 0  # measured against the position baseline


def test_overlapping_kmers_need_the_neighbour_baseline_under_token_masking_too(tmp_path):
    """The requirement follows the tokenizer (stride < k), not the recorded masking span."""
    records = [pretrain("kmer6", "kmer", 5.0 + 0.001 * r, 8.0, r, span=1, neighbour=4.0) for r in range(3)]
    records += [kmer_tokenizer("kmer6", 1)]
    table = pretext.pretext_table(frame(records, tmp_path)).set_index("tokenizer")
    assert table.loc["kmer6", "overlapping tokens"] == "yes" and table.loc["kmer6", "learned"] == "no"


def test_records_without_the_new_baselines_say_so_or_take_them_from_elsewhere(tmp_path):
    old = [pretrain("bpe", "bpe", 6.0 + 0.001 * r, 6.5, r) for r in range(3)]
    for r in old:
        del r["position_loss"], r["neighbour_loss"]
    table = pretext.pretext_table(frame(old, tmp_path)).set_index("tokenizer")
    assert table.loc["bpe", "learned"].startswith("not shown")
    baselines = pd.DataFrame(
        {
            "tokenizer": "bpe",
            "replicate": [0, 1, 2],
            "position_loss": 6.4,
            "neighbour_loss": 6.3,
            "source": "rerun",
        }
    )
    table = pretext.pretext_table(frame(old, tmp_path), baselines).set_index("tokenizer")
    assert table.loc["bpe", "learned"] == "yes" and table.loc["bpe", "baselines from"] == "rerun"
