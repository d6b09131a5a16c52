"""Suite definitions, task planning from config, prepare_task and the GUE download guard.
Embedded-suite tests need no ../shared; GUE/covid-mini tests skip where it is absent."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from vqdna.data import annotation, gue, prepare, suites, tasks

PROTOCOL_KEYS = {"epochs", "lr", "batch_size", "max_tokens"}


def config(shared=None, **suite_options):
    return {
        "data": {
            "gue_dir": str(shared / "GUE") if shared else None,
            "shared_dir": str(shared) if shared else None,
            "suites": suite_options,
        }
    }


def test_gue_declares_all_28_tasks_with_protocol_and_paper_numbers():
    gue_tasks = suites.load_suites()["gue"]["tasks"]
    assert len(gue_tasks) == 28
    assert all(PROTOCOL_KEYS <= set(spec["protocol"]) for spec in gue_tasks.values())
    assert gue_tasks["covid"]["metric"] == "macro_f1" and gue_tasks["covid"]["num_classes"] == 9
    assert {spec["metric"] for name, spec in gue_tasks.items() if name != "covid"} == {"mcc"}
    assert gue_tasks["tf_0"]["paper"] == {"DNABERT-2": 71.99, "VQDNA-HRQ": 72.48}
    assert (
        gue_tasks["prom_core_tata"]["protocol"]["epochs"] == 10
        and gue_tasks["EMP_H3"]["protocol"]["max_tokens"] == 128
    )
    assert (
        gue_tasks["covid"]["paper"]["VQDNA-VQ"] == 73.16 and gue_tasks["EMP_H3"]["paper"]["VQDNA-HRQ"] == 79.2
    )
    assert gue_tasks["splice_reconstructed"]["paper"]["VQDNA-HRQ"] == 89.53


def test_every_suite_task_has_metric_and_protocol():
    for suite in suites.load_suites().values():
        for spec in suite["tasks"].values():
            assert spec["metric"] in ("mcc", "macro_f1") and PROTOCOL_KEYS <= set(spec["protocol"])


def test_fresh_machine_runs_embedded_and_skips_the_rest_with_reasons():
    run, skipped = suites.plan_tasks(config())
    assert run == [
        ("embedded", t)
        for t in (
            "yeast_species",
            "genus",
            "coding",
            "species_1k",
            "species_10k",
            "species_32k",
            "yeast_species_1k",
            "yeast_species_10k",
        )
    ]
    assert len(skipped) == 29 and all("is not set" in reason for *_, reason in skipped)
    assert suites.enabled_tasks(config()) == run


def test_unknown_task_in_config_is_an_error():
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        suites.plan_tasks(config(embedded={"tasks": ["nope"]}))


def test_gue_plan_on_shared_data(shared_data):
    run, skipped = suites.plan_tasks(
        config(shared_data, embedded={"enabled": False}, covid_mini={"enabled": False})
    )
    assert len(run) == 13 and all(suite == "gue" for suite, _ in run)
    reasons = {task: reason for _, task, reason in skipped}
    assert "train.csv absent" in reasons["EMP_H3"] and reasons["covid"].endswith("virus/covid absent")
    reduced, _ = suites.plan_tasks(
        config(
            shared_data,
            gue={"reduced_train": True},
            embedded={"enabled": False},
            covid_mini={"enabled": False},
        )
    )
    assert len(reduced) == 27


def test_prepare_embedded_task_with_max_train(tmp_path):
    cfg = config(embedded={"max_train": 500, "task_params": {"yeast_species": {"n_per_class": 300}}})
    out = prepare.prepare_task("embedded", "yeast_species", cfg, tmp_path / "yeast_species")
    splits, meta = tasks.read_task(out)
    assert meta["label_source"] == "annotation-derived" and meta["num_classes"] == 3
    assert meta["label_names"] == [
        "Saccharomyces cerevisiae",
        "Saccharomyces kudriavzevii",
        "Saccharomyces mikatae",
    ]
    assert meta["max_length"] == 200 and meta["mode"] == "full" and meta["paper"] == {}
    assert len(splits["train"]) == 500 and meta["deviations"][0].startswith("train subsampled to 500 of ")
    assert meta["counts"]["test"] > 50


@pytest.mark.parametrize("task", ["genus", "coding"])
def test_prepare_other_embedded_tasks(tmp_path, task):
    out = prepare.prepare_task("embedded", task, config(), tmp_path / task)
    splits, meta = tasks.read_task(out)
    assert meta["num_classes"] == 2 and 2500 < sum(meta["counts"].values()) <= 3000


def test_prepare_failure_leaves_no_folder(tmp_path):
    cfg = config(embedded={"task_params": {"genus": {"species": ["Drosophila melanogaster"]}}})
    with pytest.raises(ValueError):  # one genus -> one class
        prepare.prepare_task("embedded", "genus", cfg, tmp_path / "genus")
    assert not (tmp_path / "genus").exists() and list(tmp_path.iterdir()) == []


def test_prepare_gue_full_and_reduced_train(shared_data, tmp_path):
    cfg = config(shared_data, gue={"reduced_train": True, "max_train": 1000})
    full = tasks.read_task(prepare.prepare_task("gue", "tf_0", cfg, tmp_path / "tf_0"))[1]
    assert full["mode"] == "full" and full["counts"] == {"train": 1000, "dev": 1000, "test": 1000}
    assert full["deviations"] == ["train subsampled to 1000 of 32378 (stratified, seed 0)"]
    assert full["protocol"]["epochs"] == 3 and full["paper"]["DNABERT-2"] == 71.99
    reduced = tasks.read_task(prepare.prepare_task("gue", "EMP_H3", cfg, tmp_path / "EMP_H3"))[1]
    assert reduced["mode"] == "reduced-train" and reduced["deviations"][0].startswith("reduced-train")
    assert reduced["counts"] == {"train": 1000, "dev": 149, "test": 1497}
    assert reduced["deviations"][1] == "train subsampled to 1000 of 1348 (stratified, seed 0)"


def test_max_dev_subsamples_dev_as_a_note_and_keeps_test_whole(shared_data, tmp_path):
    cfg = config(shared_data, gue={"max_train": 200, "max_dev": 100})
    splits, meta = tasks.read_task(prepare.prepare_task("gue", "prom_core_tata", cfg, tmp_path / "t"))
    assert meta["counts"] == {"train": 200, "dev": 100, "test": 613}
    assert meta["notes"] == ["dev subsampled to 100 of 613 (stratified, seed 0)"]
    assert not any("dev" in d for d in meta["deviations"])  # a note, not a protocol group
    assert abs(splits["dev"]["label"].mean() - 0.5) < 0.05  # stratified


def test_covid_mini_has_five_classes_and_splits_by_genome(shared_data, tmp_path):
    out = prepare.prepare_task("covid_mini", "who_variant", config(shared_data), tmp_path / "covid")
    splits, meta = tasks.read_task(out)
    assert meta["num_classes"] >= 5 and meta["metric"] == "macro_f1" and meta["max_length"] == 1000
    genomes = meta["source"]["genomes"]
    train, dev, test = (set(genomes[s]) for s in ("train", "dev", "test"))
    assert not (train & dev or train & test or dev & test) and len(train | dev | test) > 100
    for split in splits.values():
        assert split["label"].nunique() == meta["num_classes"]


def test_genome_fragments_no_genome_in_two_splits(tmp_path, yeast_chromosome):
    records = {f"g{i}": yeast_chromosome[i * 5000 : (i + 1) * 5000] for i in range(30)}
    fasta = tmp_path / "g.fa"
    fasta.write_text("".join(f">{name} strain\n{seq}\n" for name, seq in records.items()))
    table = tmp_path / "labels.tsv"
    table.write_text(
        "name\tclade\n" + "".join(f"{n} x\t{'abc'[i % 3] if i < 27 else ''}\n" for i, n in enumerate(records))
    )
    splits, names, genomes = tasks.genome_fragments_task(
        fasta, table, "name", "clade", 1000, 5, {"train": 0.6, "dev": 0.2, "test": 0.2}, seed=1
    )
    assert names == ["a", "b", "c"]
    owners = {split: set(frame["genome"]) for split, frame in splits.items()}
    assert not (
        owners["train"] & owners["dev"] or owners["train"] & owners["test"] or owners["dev"] & owners["test"]
    )
    assert {s: sorted(o) for s, o in owners.items()} == genomes
    assert sum(len(o) for o in owners.values()) == 27


def test_a_new_suite_is_one_file(tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "d").mkdir()
    negatives = (f">n{i}\n{'ACGT'[i % 4] * 5}{i:b}\n".replace("1", "C").replace("0", "G") for i in range(40))
    (tmp_path / "d" / "neg.fa").write_text("".join(negatives))
    (tmp_path / "d" / "pos.fa").write_text(
        "".join(f">p{i}\nTTTTT{i:b}\n".replace("1", "A").replace("0", "T") for i in range(40))
    )
    (tmp_path / "bench" / "mine.yaml").write_text(
        "suite: mine\nenabled_by_default: true\nlocation: shared_dir\nlabel_source: test\n"
        "defaults: {metric: mcc, protocol: {epochs: 1, lr: 0.001, batch_size: 8, max_tokens: 16}}\n"
        "tasks:\n  t:\n    format: fasta_classes\n    label_names: [neg, pos]\n"
        "    params: {files: [d/neg.fa, d/pos.fa]}\n"
    )
    cfg = {"data": {"benchmarks_dir": str(tmp_path / "bench"), "shared_dir": str(tmp_path)}}
    assert suites.enabled_tasks(cfg) == [("mine", "t")]
    splits, meta = tasks.read_task(prepare.prepare_task("mine", "t", cfg, tmp_path / "out"))
    assert meta["label_names"] == ["neg", "pos"] and sum(meta["counts"].values()) == 80


def make_zip(tmp_path):
    archive = tmp_path / "GUE.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("GUE/tf/0/train.csv", "sequence,label\nACGT,0\n")
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def test_download_gue_refuses_unset_or_wrong_hash_then_unpacks(tmp_path):
    archive, sha = make_zip(tmp_path)
    cfg = {"data": {"gue_dir": str(tmp_path / "data" / "GUE"), "gue_download": {"url": archive.as_uri()}}}
    with pytest.raises(RuntimeError, match=f"sha256 is unset.*{sha}"):
        gue.download_gue(cfg)
    with pytest.raises(RuntimeError, match="does not match"):
        gue.download_gue(cfg, trusted_sha256="0" * 64)
    assert not (tmp_path / "data" / "GUE").exists()
    out = gue.download_gue(cfg, trusted_sha256=sha)
    assert (out / "tf" / "0" / "train.csv").exists()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["GUE"]


def test_download_gue_offline_fails_at_once_saying_where(tmp_path):
    cfg = {
        "data": {
            "gue_dir": str(tmp_path / "GUE"),
            "gue_download": {"url": "http://127.0.0.1:9/GUE.zip", "sha256": "0" * 64, "timeout_s": 2},
        }
    }
    with pytest.raises(RuntimeError, match=r"offline: .*tf/0/train.csv"):
        gue.download_gue(cfg)


def test_long_species_tasks_share_no_base_between_splits(tmp_path):
    """Table 6 analogue: 32 kbp Drosophila windows, overlapping within a split, never across."""
    out = prepare.prepare_task("embedded", "species_32k", config(), tmp_path / "species_32k")
    splits, meta = tasks.read_task(out)
    assert meta["num_classes"] == 6 and meta["max_length"] == 32000 and meta["coverage_bp"] is None
    assert {len(s) for frame in splits.values() for s in frame["sequence"]} == {32000}
    assert all(frame["label"].nunique() == 6 for frame in splits.values())
    params = suites.load_suites()["embedded"]["tasks"]["species_32k"]["params"]
    frames, _, _ = annotation.annotation_task(**params)
    for species, _ in frames["train"].groupby("species"):
        spans = {
            name: [(s, s + 32000) for s in frame.loc[frame["species"] == species, "start"]]
            for name, frame in frames.items()
        }
        for a, b in [("train", "dev"), ("train", "test"), ("dev", "test")]:
            assert not any(s1 < e2 and s2 < e1 for s1, e1 in spans[a] for s2, e2 in spans[b]), (species, a, b)
        starts = sorted(start for start, _ in spans["train"])
        assert min(b - a for a, b in zip(starts, starts[1:])) == 8000  # overlapping within train


def test_long_species_tasks_are_probed_alone_in_pooled_windows():
    """A task's `evaluation` overrides the config: the species tasks are probed over every base
    in pooled 125 bp windows and not fine-tuned; other tasks keep the config's sections."""
    probe = {"max_bp": 128, "window": "centre", "pooling": "fixed"}
    pooled = {"max_bp": 125, "window": "centre", "pooling": "sliding"}
    cfg = {"finetune": {"lr": 1e-3}, "linear_probe": probe}
    assert suites.finetunes(cfg, "embedded", "coding")
    assert suites.probe_settings(cfg, "embedded", "coding") == probe
    for task in ("species_1k", "species_10k", "species_32k", "yeast_species_1k", "yeast_species_10k"):
        assert not suites.finetunes(cfg, "embedded", task)
        assert suites.probe_settings(cfg, "embedded", task) == pooled
    assert not suites.finetunes({"finetune": {"enabled": False}}, "embedded", "coding")


def test_unknown_evaluation_key_is_an_error(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "suite: mine\ntasks:\n  t:\n    format: annotation\n    params: {kind: coding}\n"
        "    metric: mcc\n    evaluation: {finetun: false}\n"
    )
    with pytest.raises(ValueError, match="tasks.t.evaluation: unknown key 'finetun'"):
        suites.load_suites(tmp_path)


def test_a_named_task_without_data_fails_the_plan_unless_optional(tmp_path):
    """`tasks: [prom_core_tata]` with no GUE folder stops the plan, naming the path and the way
    out; `optional: true` skips it with its reason; `tasks: all` skips what is absent."""
    missing = tmp_path / "no-gue"
    named = config(gue={"enabled": True, "tasks": ["prom_core_tata"]})
    named["data"]["gue_dir"] = str(missing)
    with pytest.raises(
        ValueError, match=r"data\.suites\.gue\.tasks names 'prom_core_tata'.*no-gue.*optional: true"
    ):
        suites.plan_tasks(named)
    named["data"]["suites"]["gue"]["optional"] = True
    run, skipped = suites.plan_tasks(named)
    assert ("gue", "prom_core_tata") not in run and (
        "gue",
        "prom_core_tata",
        f"data.gue_dir is not set or is not a folder ({missing})",
    ) in skipped
