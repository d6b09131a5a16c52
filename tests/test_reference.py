"""Publishing a run as the tracked reference and comparing a fresh run with it."""

from __future__ import annotations

import json

import pytest

from vqdna import reference


def make_run(root, mcc=0.42, steps_per_s=3.0):
    (root / "finetune" / "t" / "hrq" / "rep0" / "seed0").mkdir(parents=True)
    record = {"stage": "finetune", "mcc": mcc, "history": [{"loss": 0.5}], "steps_per_s": steps_per_s}
    (root / "finetune" / "t" / "hrq" / "rep0" / "seed0" / "metrics.json").write_text(json.dumps(record))
    (root / "summary").mkdir()
    (root / "summary" / "results.md").write_text("# results\n")
    (root / "provenance.json").write_text(json.dumps(reference.provenance({"profile": "test"})))
    return root


def test_publish_then_compare(tmp_path):
    run = make_run(tmp_path / "run")
    time_log = tmp_path / "run.time"
    time_log.write_text(
        '\tCommand being timed: "snakemake --cores all"\n'
        "\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03.5\n"
        "\tMaximum resident set size (kbytes): 2048000\n"
    )
    published = reference.publish(run, tmp_path / "ref", time_log)
    assert {p.name for p in published} == {"metrics.json", "results.md", "provenance.json"}
    provenance = json.loads((tmp_path / "ref" / "provenance.json").read_text())
    assert provenance["run"]["wall_time_s"] == pytest.approx(3723.5)
    assert provenance["run"]["peak_rss_mib"] == pytest.approx(2000)
    assert provenance["config_sha256"] == reference.config_hash({"profile": "test"})

    fresh = make_run(tmp_path / "fresh", steps_per_s=9.0)  # timings differ: still identical
    rows = reference.compare(fresh, tmp_path / "ref")
    assert [r["status"] for r in rows] == ["identical"]
    assert reference.main(["compare", str(fresh), str(tmp_path / "ref")]) == 0

    changed = make_run(tmp_path / "changed", mcc=0.43)
    rows = reference.compare(changed, tmp_path / "ref")
    assert rows[0]["status"] == "differs" and rows[0]["differences"] == [
        {"key": "mcc", "reference": 0.42, "fresh": 0.43}
    ]
    assert reference.main(["compare", str(changed), str(tmp_path / "ref")]) == 1
    assert "mcc" in reference.compare_markdown(rows, "ref")


def test_publish_leaves_the_tracked_reference_inside_the_run_folder_out(tmp_path):
    """A clone's results/ holds results/reference/<profile>/ (tracked): publishing the run must not
    copy it into the new reference (it did once: every metrics file twice, nested)."""
    run = make_run(tmp_path / "results")
    old = run / "reference" / "cpu-default" / "finetune" / "t" / "vq" / "rep0" / "seed0"
    old.mkdir(parents=True)
    (old / "metrics.json").write_text(json.dumps({"stage": "finetune", "mcc": 0.1}))
    published = reference.publish(run, tmp_path / "ref")
    assert not any("reference" in p.relative_to(tmp_path / "ref").parts for p in published)
    assert not (tmp_path / "ref" / "reference").exists()


def test_publish_refuses_an_unfinished_run(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        reference.publish(tmp_path / "run", tmp_path / "ref")


def test_time_log_must_be_a_time_v_log(tmp_path):
    (tmp_path / "log").write_text("hello\n")
    with pytest.raises(ValueError, match="not a /usr/bin/time -v log"):
        reference.read_time_log(tmp_path / "log")


def test_a_partial_rerun_is_compared_on_what_it_ran(tmp_path):
    """One task rerun from scratch: its files must be identical; the rest of the reference is
    not 'missing' with --ran-only, and a differing file still fails."""
    reference.publish(make_run(tmp_path / "run"), tmp_path / "ref")
    other = tmp_path / "ref" / "finetune" / "gue" / "tf_2" / "char" / "rep0" / "seed0" / "metrics.json"
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps({"stage": "finetune", "mcc": 0.1}))
    rerun = make_run(tmp_path / "rerun")
    assert {r["status"] for r in reference.compare(rerun, tmp_path / "ref")} == {"identical", "missing"}
    assert reference.main(["compare", str(rerun), str(tmp_path / "ref"), "--ran-only"]) == 0
    assert (
        reference.main(
            ["compare", str(make_run(tmp_path / "off", mcc=0.5)), str(tmp_path / "ref"), "--ran-only"]
        )
        == 1
    )
