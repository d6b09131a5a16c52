"""Publishing a run as the tracked reference and comparing a fresh run with it."""

from __future__ import annotations

import json

import pytest

from vqdna.analysis import compare, provenance, publish, reference


def make_run(root, mcc=0.42, steps_per_s=3.0):
    (root / "finetune" / "t" / "hrq" / "rep0" / "seed0").mkdir(parents=True)
    record = {"stage": "finetune", "mcc": mcc, "history": [{"loss": 0.5}], "steps_per_s": steps_per_s}
    (root / "finetune" / "t" / "hrq" / "rep0" / "seed0" / "metrics.json").write_text(json.dumps(record))
    (root / "summary").mkdir()
    (root / "summary" / "results.md").write_text("# results\n")
    (root / "provenance.json").write_text(json.dumps(provenance.provenance({"profile": "test"})))
    return root


def test_publish_then_compare(tmp_path):
    run = make_run(tmp_path / "run")
    time_log = tmp_path / "run.time"
    time_log.write_text(
        '\tCommand being timed: "snakemake --cores all"\n'
        "\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03.5\n"
        "\tMaximum resident set size (kbytes): 2048000\n"
    )
    published = publish.publish(run, tmp_path / "ref", time_log)
    assert {p.name for p in published} == {"metrics.json", "results.md", "provenance.json"}
    record = json.loads((tmp_path / "ref" / "provenance.json").read_text())
    assert record["run"]["wall_time_s"] == pytest.approx(3723.5)
    assert record["run"]["peak_rss_mib"] == pytest.approx(2000)
    assert record["config_sha256"] == provenance.config_hash({"profile": "test"})

    fresh = make_run(tmp_path / "fresh", steps_per_s=9.0)  # timings differ: still identical
    rows = compare.compare(fresh, tmp_path / "ref")
    assert [r["status"] for r in rows] == ["identical"]
    assert reference.main(["compare", str(fresh), str(tmp_path / "ref")]) == 0

    changed = make_run(tmp_path / "changed", mcc=0.43)
    rows = compare.compare(changed, tmp_path / "ref")
    assert rows[0]["status"] == "differs" and rows[0]["differences"] == [
        {"key": "mcc", "reference": 0.42, "fresh": 0.43}
    ]
    assert reference.main(["compare", str(changed), str(tmp_path / "ref")]) == 1
    assert "mcc" in compare.compare_markdown(rows, "ref")


def test_publish_leaves_the_tracked_reference_inside_the_run_folder_out(tmp_path):
    """A clone's results/ holds results/reference/<profile>/ (tracked): publishing the run must not
    copy it into the new reference (it did once: every metrics file twice, nested)."""
    run = make_run(tmp_path / "results")
    old = run / "reference" / "cpu-default" / "finetune" / "t" / "vq" / "rep0" / "seed0"
    old.mkdir(parents=True)
    (old / "metrics.json").write_text(json.dumps({"stage": "finetune", "mcc": 0.1}))
    published = publish.publish(run, tmp_path / "ref")
    assert not any("reference" in p.relative_to(tmp_path / "ref").parts for p in published)
    assert not (tmp_path / "ref" / "reference").exists()


def test_publish_refuses_an_unfinished_run(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        publish.publish(tmp_path / "run", tmp_path / "ref")


def test_time_log_must_be_a_time_v_log(tmp_path):
    (tmp_path / "log").write_text("hello\n")
    with pytest.raises(ValueError, match="not a /usr/bin/time -v log"):
        provenance.read_time_log(tmp_path / "log")


def test_a_partial_rerun_is_compared_on_what_it_ran(tmp_path):
    """One task rerun from scratch: its files must be identical; the rest of the reference is
    not 'missing' with --ran-only, and a differing file still fails."""
    publish.publish(make_run(tmp_path / "run"), tmp_path / "ref")
    other = tmp_path / "ref" / "finetune" / "gue" / "tf_2" / "char" / "rep0" / "seed0" / "metrics.json"
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps({"stage": "finetune", "mcc": 0.1}))
    rerun = make_run(tmp_path / "rerun")
    assert {r["status"] for r in compare.compare(rerun, tmp_path / "ref")} == {"identical", "missing"}
    assert reference.main(["compare", str(rerun), str(tmp_path / "ref"), "--ran-only"]) == 0
    assert (
        reference.main(
            ["compare", str(make_run(tmp_path / "off", mcc=0.5)), str(tmp_path / "ref"), "--ran-only"]
        )
        == 1
    )


REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def _slice_of_a_tracked_run(dest, tasks=("tf_1", "tf_2")):
    """The records of two GUE tasks of the tracked cpu-gue reference (real runs: 6 tokenizers x
    3 replicates, fine-tuning and probe), with its tokenizer and pre-training records."""
    import shutil

    source = REPO / "results" / "reference" / "cpu-gue"
    for path in source.glob("**/metrics.json"):
        rel = path.relative_to(source)
        if rel.parts[0] in ("tokenizers", "models") or any(t in rel.parts for t in tasks):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / rel)
    return dest


def _edit(root, rel, change):
    path = root / rel
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def test_compare_tells_identical_from_noise_from_failure(tmp_path):
    """A rerun is identical; a run whose kernels summed in another order (scores moved inside
    their test-set intervals, pre-training losses inside the replicate spread) is within noise;
    a corrupted metric is beyond noise, with a non-zero exit."""
    import shutil

    ref = _slice_of_a_tracked_run(tmp_path / "ref")
    rerun = tmp_path / "rerun"
    shutil.copytree(ref, rerun)
    assert compare.judge(compare.compare(rerun, ref), rerun, ref)[0] == compare.IDENTICAL
    assert reference.main(["compare", str(rerun), str(ref)]) == 0

    perturbed = tmp_path / "perturbed"
    shutil.copytree(ref, perturbed)
    probe = "linear_probe/gue/tf_1/bpe/rep1/metrics.json"

    def nudge(record):  # about what another CPU's kernels did to one run (issue 23: a few points)
        record["mcc"] += 0.01
        record["accuracy"] += 0.005
        record["confusion_matrix"][0][0] -= 5
        record["confusion_matrix"][0][1] += 5

    _edit(perturbed, probe, nudge)
    _edit(
        perturbed,
        "models/vq/rep0/metrics.json",
        lambda r: r.update(final_val_loss=r["final_val_loss"] + 1e-6),
    )
    rows = compare.compare(perturbed, ref)
    verdict, problems = compare.judge(rows, perturbed, ref)
    assert verdict == compare.WITHIN_NOISE, problems
    why = next(r for r in rows if r["file"] == probe)["why"]
    assert any("test-set half width" in w for w in why)
    assert reference.main(["compare", str(perturbed), str(ref)]) == 0

    corrupt = tmp_path / "corrupt"
    shutil.copytree(perturbed, corrupt)
    _edit(corrupt, "finetune/gue/tf_2/hrq/rep0/seed0/metrics.json", lambda r: r.update(mcc=r["mcc"] - 0.4))
    rows = compare.compare(corrupt, ref)
    assert compare.judge(rows, corrupt, ref)[0] == compare.BEYOND_NOISE
    assert reference.main(["compare", str(corrupt), str(ref)]) == 1
    assert "Verdict: differs beyond noise" in compare.compare_markdown(
        rows, ref, *compare.judge(rows, corrupt, ref)
    )


def test_summary_checks_catch_a_moved_cell_and_a_changed_verdict(tmp_path):
    """The summary-level half of the judgement on its own: a cell whose runs all moved the same
    way leaves the reference's interval, and the verdicts that rest on it change."""
    import shutil

    six = ("tf_0", "tf_1", "tf_2", "tf_3", "tf_4", "mouse_2")  # 6 tasks: a verdict can be reached
    ref = _slice_of_a_tracked_run(tmp_path / "ref", tasks=six)
    assert compare._summary_checks(ref, ref) == []
    moved = tmp_path / "moved"
    shutil.copytree(ref, moved)
    for path in moved.glob("finetune/gue/*/vq/*/*/metrics.json"):
        record = json.loads(path.read_text())
        record["mcc"] -= 0.3
        path.write_text(json.dumps(record))
    problems = compare._summary_checks(moved, ref)
    assert any("finetune gue/tf_1/vq: fresh mean" in p and "outside the reference's" in p for p in problems)
    assert any(p.startswith("verdict finetune") and "vq - bpe: reference 'holds'" in p for p in problems)
    assert compare.judge(compare.compare(moved, ref), moved, ref)[0] == compare.BEYOND_NOISE


def test_compare_refuses_what_it_cannot_read(tmp_path, capsys):
    make_run(tmp_path / "run")
    assert reference.main(["compare", str(tmp_path / "run"), str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such folder" in capsys.readouterr().err
    publish.publish(tmp_path / "run", tmp_path / "ref")
    (tmp_path / "run" / "finetune" / "t" / "hrq" / "rep0" / "seed0" / "metrics.json").write_text("{oops")
    assert reference.main(["compare", str(tmp_path / "run"), str(tmp_path / "ref")]) == 2
    assert "metrics.json: not a readable metrics JSON" in capsys.readouterr().err


def test_a_failed_publish_leaves_nothing_behind(tmp_path):
    run = make_run(tmp_path / "run")
    (tmp_path / "bad.time").write_text("not a time log\n")
    with pytest.raises(ValueError):
        publish.publish(run, tmp_path / "ref", tmp_path / "bad.time")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.time", "run"]
