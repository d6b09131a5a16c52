"""One schema per file the user writes: suite files (benchmarks/*.yaml), the typed settings, and
the README's own example of a new dataset, run as printed. Each error names the file, the task
(or section) and the key."""

import re
import shutil
from pathlib import Path

import pytest
import yaml

from vqdna.core import settings
from vqdna.data import corpus, prepare, splitting, suites, tasks

REPO = Path(__file__).resolve().parents[1]
GOOD_TASK = {"format": "gue_csv", "metric": "mcc", "num_classes": 2, "params": {"path": "x"}}


def _suite_dir(tmp_path: Path, text: str, name: str = "mine.yaml") -> Path:
    folder = tmp_path / "benchmarks"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder


def _suite(tmp_path: Path, task: dict, defaults: dict | None = None, **top) -> Path:
    suite = {"suite": "mine", "location": "shared_dir", **top, "tasks": {"t1": task}}
    if defaults is not None:
        suite["defaults"] = defaults
    return _suite_dir(tmp_path, yaml.safe_dump(suite, sort_keys=False))


def test_every_shipped_suite_file_passes_the_schema():
    loaded = suites.load_suites()
    assert set(loaded) == {"gue", "embedded", "covid_mini", "extra"}


@pytest.mark.parametrize(
    "change, key",
    [
        (
            {"evalution": {"finetune": False}},
            r"tasks\.t1: unknown key 'evalution' \(did you mean 'evaluation'\?\)",
        ),
        ({"evaluation": {"finetune": "false"}}, r"tasks\.t1\.evaluation\.finetune: expected true or false"),
        (
            {"evaluation": {"linear_probe": {"max_bp": 0}}},
            r"tasks\.t1\.evaluation\.linear_probe\.max_bp: must be >= 1",
        ),
        (
            {"evaluation": {"linear_probe": {"pooling": "mean"}}},
            r"tasks\.t1\.evaluation\.linear_probe\.pooling: 'mean' is not one of",
        ),
        (
            {"evaluation": {"linear_probe": {"windw": "centre"}}},
            r"tasks\.t1\.evaluation\.linear_probe: unknown key 'windw'",
        ),
        ({"max_length": 0}, r"tasks\.t1\.max_length: must be >= 1, got 0"),
        ({"max_length": "500"}, r"tasks\.t1\.max_length: expected an integer"),
        ({"coverage_bp": -5}, r"tasks\.t1\.coverage_bp: must be >= 1, got -5"),
        ({"coverage_bp": 0}, r"tasks\.t1\.coverage_bp: must be >= 1, got 0"),
        ({"metric": "auc"}, r"tasks\.t1\.metric: 'auc' is not one of"),
        ({"num_classes": 1}, r"tasks\.t1\.num_classes: must be >= 2"),
        ({"num_classes": 2.0}, r"tasks\.t1\.num_classes: expected an integer"),
        ({"label_names": ["a", "b", "c"]}, r"tasks\.t1\.label_names: 3 names for num_classes 2"),
        ({"label_names": ["a", "a"]}, r"tasks\.t1\.label_names: 'a' appears twice"),
        ({"protocol": {"epochs": 0}}, r"tasks\.t1\.protocol\.epochs: must be >= 1"),
        ({"protocol": {"lr": -1}}, r"tasks\.t1\.protocol\.lr: must be > 0"),
        ({"protocol": {"lr": "3e-5"}}, r"tasks\.t1\.protocol\.lr: expected a number.*write it with a dot"),
        ({"protocol": {"max_tokens": 0}}, r"tasks\.t1\.protocol\.max_tokens: must be >= 1"),
        ({"protocol": {"epoch": 3}}, r"tasks\.t1\.protocol: unknown key 'epoch'"),
        ({"paper": {"DNABERT-2": "high"}}, r"tasks\.t1\.paper\.DNABERT-2: expected a number"),
        ({"official_rows": {"train": -1}}, r"tasks\.t1\.official_rows\.train: must be >= 0"),
        ({"format": "parquet"}, r"tasks\.t1\.format: 'parquet' is not one of"),
        ({"params": {}}, r"tasks\.t1\.params: missing required key 'path'"),
        ({"params": {"path": 3}}, r"tasks\.t1\.params\.path: expected a string"),
        (
            {"params": {"path": "x", "fractions": {"train": 1}}},
            r"tasks\.t1\.params: unknown parameter 'fractions' for format 'gue_csv'",
        ),
        ({"description": 3}, r"tasks\.t1\.description: expected a string"),
    ],
)
def test_a_bad_task_key_is_an_error_naming_file_task_and_key(tmp_path, change, key):
    folder = _suite(tmp_path, {**GOOD_TASK, **change})
    with pytest.raises(ValueError, match=rf"{re.escape(str(folder / 'mine.yaml'))}: {key}"):
        suites.load_suites(folder)


@pytest.mark.parametrize(
    "params, key",
    [
        ({"files": ["a.fa"]}, r"params\.files: needs at least 2 entries"),
        ({"files": ["a.fa", "b.fa"], "unique_ids": "no"}, r"params\.unique_ids: expected true or false"),
        ({"files": ["a.fa", "b.fa"], "fractions": {"train": 0.8, "dev": 0.2}}, r"params\.fractions: missing"),
        (
            {"files": ["a.fa", "b.fa"], "fractions": {"train": 0.8, "dev": 0.1, "test": 0.2}},
            r"params\.fractions: must sum to 1",
        ),
        (
            {"files": ["a.fa", "b.fa"], "fractions": {"train": 1.0, "dev": 0, "test": 0}},
            r"params\.fractions\.dev: must be > 0",
        ),
    ],
)
def test_fasta_classes_params_are_typed(tmp_path, params, key):
    folder = _suite(tmp_path, {"format": "fasta_classes", "metric": "mcc", "params": params})
    with pytest.raises(ValueError, match=rf"mine.yaml: tasks\.t1\.{key}"):
        suites.load_suites(folder)


@pytest.mark.parametrize(
    "params, key",
    [
        ({"fasta": "g.fa", "labels": "l.tsv", "min_genomes": 2}, r"missing required key 'fragment_length'"),
        (
            {"fasta": "g.fa", "labels": "l.tsv", "fragment_length": 0, "min_genomes": 2},
            r"fragment_length: must be",
        ),
        (
            {
                "fasta": "g.fa",
                "labels": "l.tsv",
                "fragment_length": 10,
                "min_genomes": 2,
                "max_n_fraction": 2,
            },
            r"<= 1",
        ),
    ],
)
def test_genome_fragment_params_are_typed(tmp_path, params, key):
    folder = _suite(tmp_path, {"format": "genome_fragments", "metric": "macro_f1", "params": params})
    with pytest.raises(ValueError, match=rf"mine.yaml: tasks\.t1\.params.*{key}"):
        suites.load_suites(folder)


@pytest.mark.parametrize(
    "params, key",
    [
        ({"kind": "family"}, r"params\.kind: 'family' is not one of"),
        ({"kind": "coding", "length": -1}, r"params\.length: must be >= 1"),
        ({"kind": "coding", "within": "genome"}, r"params\.within: 'genome' is not one of"),
        ({"kind": "coding", "step": 0}, r"params\.step: must be >= 1"),
    ],
)
def test_annotation_params_are_typed(tmp_path, params, key):
    folder = _suite(tmp_path, {"format": "annotation", "metric": "mcc", "params": params})
    with pytest.raises(ValueError, match=rf"tasks\.t1\.{key}"):
        suites.load_suites(folder)


@pytest.mark.parametrize(
    "top, key",
    [
        ({"enabled_by_default": "yes please"}, r"enabled_by_default: expected true or false"),
        ({"location": "home_dir"}, r"location: 'home_dir' is not one of"),
        ({"suit": "x"}, r"unknown key 'suit' \(did you mean 'suite'\?\)"),
        ({"suite": "my suite"}, r"suite: 'my suite' does not match"),
    ],
)
def test_a_bad_top_level_key_is_an_error_naming_the_file(tmp_path, top, key):
    folder = _suite(tmp_path, GOOD_TASK, **top)
    with pytest.raises(ValueError, match=rf"mine.yaml: {key}"):
        suites.load_suites(folder)


def test_a_bad_default_is_named_as_a_default(tmp_path):
    folder = _suite(tmp_path, GOOD_TASK, defaults={"protocol": {"lr": 0}})
    with pytest.raises(ValueError, match=r"mine.yaml: defaults\.protocol\.lr: must be > 0"):
        suites.load_suites(folder)


def test_a_task_written_twice_is_an_error(tmp_path):
    text = "suite: mine\ntasks:\n  t1: {format: annotation, metric: mcc, params: {kind: coding}}\n"
    text += "  t1: {format: annotation, metric: mcc, params: {kind: species}}\n"
    folder = _suite_dir(tmp_path, text)
    with pytest.raises(ValueError, match=r"mine.yaml: not valid YAML: .*'t1' appears twice.*line 4"):
        suites.load_suites(folder)


def test_a_suite_name_in_two_files_is_an_error_naming_both(tmp_path):
    text = "suite: mine\ntasks:\n  t1: {format: annotation, metric: mcc, params: {kind: coding}}\n"
    folder = _suite_dir(tmp_path, text, "a.yaml")
    _suite_dir(tmp_path, text, "b.yaml")
    with pytest.raises(ValueError, match=r"b.yaml: suite name 'mine' is already used by .*a.yaml"):
        suites.load_suites(folder)


def test_a_yaml_syntax_error_names_the_file(tmp_path):
    folder = _suite_dir(tmp_path, "suite: mine\ntasks: {t1: [unclosed\n")
    with pytest.raises(ValueError, match=r"mine.yaml: not valid YAML"):
        suites.load_suites(folder)


def test_a_merge_key_may_be_overridden(tmp_path):
    text = (
        "suite: mine\ntasks:\n  t1: &base {format: annotation, metric: mcc, params: {kind: coding}}\n"
        "  t2:\n    <<: *base\n    metric: macro_f1\n"
    )
    assert suites.load_suites(_suite_dir(tmp_path, text))["mine"]["tasks"]["t2"]["metric"] == "macro_f1"


def test_fasta_declared_classes_must_match_the_files(tmp_path):
    with pytest.raises(ValueError, match="label_names: 3 names for num_classes 2"):
        suites.load_suites(
            _suite(tmp_path, {**GOOD_TASK, "label_names": ["a", "b", "c"]}),
        )


# ---------------------------------------------------------------- the README's example, as printed


def _readme_dataset_block() -> str:
    readme = (REPO / "docs" / "extending.md").read_text()
    section = readme[readme.index("**One entry in `benchmarks/`.**") :]
    return re.search(r"```yaml\n(.*?)```", section, flags=re.S).group(1)


def test_the_readme_gue_format_example_runs_as_printed(tmp_path):
    """README "Extending": the new GUE-format folder appended to benchmarks/extra.yaml as printed,
    enabled as printed, is planned and prepared."""
    block = _readme_dataset_block()
    assert "my_enhancers:" in block and "format: gue_csv" in block
    folder = tmp_path / "benchmarks"
    shutil.copytree(REPO / "benchmarks", folder, ignore=shutil.ignore_patterns("*.py", "*.csv"))
    (folder / "extra.yaml").write_text((folder / "extra.yaml").read_text() + block)
    shared = tmp_path / "shared"
    task_dir = shared / "my_data" / "enhancers"
    task_dir.mkdir(parents=True)
    for split, n in (("train", 20), ("dev", 6), ("test", 6)):
        rows = [f"{'ACGT' * 10 if i % 2 else 'TTGA' * 10},{i % 2}" for i in range(n)]
        (task_dir / f"{split}.csv").write_text("sequence,label\n" + "\n".join(rows) + "\n")
    guide = (REPO / "docs" / "extending.md").read_text()
    enable = re.search(r"Then enable it: `(data\.suites\.extra: \{.*?\})`", guide)
    key, _, value = enable.group(1).partition(": ")
    config = {
        "data": {
            "benchmarks_dir": str(folder),
            "shared_dir": str(shared),
            "gue_dir": None,
            "suites": {
                "gue": {"enabled": False},
                "embedded": {"enabled": False},
                "covid_mini": {"enabled": False},
            },
        }
    }
    config["data"]["suites"][key.split(".")[-1]] = yaml.safe_load(value)
    run, skipped = suites.plan_tasks(config)
    assert run == [("extra", "my_enhancers")], skipped
    out = prepare.prepare_task("extra", "my_enhancers", config, tmp_path / "prepared")
    splits, meta = tasks.read_task(out)
    assert meta["protocol"] == {
        "epochs": 3,
        "lr": 3.0e-5,
        "batch_size": 32,
        "warmup_steps": 50,
        "max_tokens": 128,
    }
    assert meta["metric"] == "mcc" and len(splits["train"]) == 20 and meta["max_length"] == 500


def test_the_extra_suite_keeps_its_split_fractions():
    """Removing `fractions` from extra.yaml's defaults changed nothing: the builders' default is
    the same 0.8/0.1/0.1."""
    assert prepare.DEFAULT_FRACTIONS == {"train": 0.8, "dev": 0.1, "test": 0.1}
    for spec in suites.load_suites()["extra"]["tasks"].values():
        assert "fractions" not in spec["params"]


# ---------------------------------------------------------------- typed settings


@pytest.mark.parametrize(
    "cls, values, key",
    [
        (settings.PretrainConfig, {"steps": "ten"}, r"pretrain\.steps: expected an integer"),
        (settings.PretrainConfig, {"steps": 2.5}, r"pretrain\.steps: expected an integer"),
        (settings.PretrainConfig, {"lr": -1}, r"pretrain\.lr: must be > 0"),
        (settings.PretrainConfig, {"mask_ratio": 1.5}, r"pretrain\.mask_ratio: must be > 0 and < 1"),
        (settings.PretrainConfig, {"batch_size": 0}, r"pretrain\.batch_size: must be >= 1"),
        (settings.PretrainConfig, {"masking": "span"}, r"pretrain\.masking: 'span' is not one of"),
        (settings.PretrainConfig, {"micro_batch_size": 0}, r"pretrain\.micro_batch_size: must be >= 1"),
        (settings.FinetuneConfig, {"epochs": 0}, r"finetune\.epochs: must be >= 1"),
        (settings.FinetuneConfig, {"lora_rank": True}, r"finetune\.lora_rank: expected an integer"),
        (settings.FinetuneConfig, {"select_by": "dev_mcc"}, r"finetune\.select_by: 'dev_mcc' is not one of"),
        (settings.FinetuneConfig, {"window": "middle"}, r"finetune\.window: 'middle' is not one of"),
        (settings.ProbeConfig, {"max_bp": 0}, r"linear_probe\.max_bp: must be >= 1"),
        (settings.ProbeConfig, {"pooling": "max"}, r"linear_probe\.pooling: 'max' is not one of"),
        (settings.CorpusConfig, {"val_fraction": 1.0}, r"corpus\.val_fraction: must be > 0 and < 1"),
        (
            settings.CorpusConfig,
            {"extra_fasta": [{"species": "x"}]},
            r"corpus\.extra_fasta\[0\]: missing required",
        ),
        (settings.VQVAEConfig, {"decay": 1.5}, r"vqvae\.decay: must be > 0 and < 1"),
        (settings.VQVAEConfig, {"codebook_size": 1}, r"vqvae\.codebook_size: must be >= 2"),
        (settings.VQVAEConfig, {"ema": "yes"}, r"vqvae\.ema: expected true or false"),
        (settings.VQVAEConfig, {"commitment_weight": -0.1}, r"vqvae\.commitment_weight: must be >= 0"),
    ],
)
def test_a_bad_setting_is_refused_naming_the_key(cls, values, key):
    with pytest.raises(ValueError, match=key):
        cls(**values)
    if cls is not settings.VQVAEConfig:
        with pytest.raises(ValueError, match=key):
            cls.from_dict(values)


def test_every_shipped_config_passes_the_typed_settings():
    for path in sorted((REPO / "config").glob("*.yaml")):
        if path.name == "schema.yaml":
            continue
        config = yaml.safe_load(path.read_text())
        for section, cls in settings.SECTIONS.items():
            if isinstance(config.get(section), dict):
                cls.from_dict({k: v for k, v in config[section].items() if k != "enabled"})
        if isinstance(config.get("vqvae"), dict):
            settings.VQVAEConfig.from_spec(config["vqvae"])
            settings.check_vq_training(config["vqvae"])


@pytest.mark.parametrize(
    "entry, key", [({"steps": "ten"}, "steps"), ({"lr": 0}, "lr"), ({"batch_size": 0}, "batch_size")]
)
def test_a_vq_entry_training_key_is_checked_at_plan_time(entry, key):
    from vqdna.workflow import study

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["tokenizers"]["vq"] = {**config["tokenizers"]["vq"], **entry}
    with pytest.raises(ValueError, match=rf"tokenizer 'vq': tokenizer 'vq'\.{key}"):
        study.tokenizer_spec(config, "vq")


# ---------------------------------------------------------------- input files: file and line


def _gue(tmp_path, train_rows, test_rows=None) -> Path:
    folder = tmp_path / "task"
    folder.mkdir()
    test_rows = test_rows or ["ACGT,0", "ACGA,1"]
    for split, rows in (("train", train_rows), ("dev", ["ACGT,0", "ACGA,1"]), ("test", test_rows)):
        (folder / f"{split}.csv").write_text("sequence,label\n" + "\n".join(rows) + "\n")
    return folder


def test_a_label_outside_the_declared_classes_names_file_and_line(tmp_path):
    folder = _gue(tmp_path, ["ACGT,0", "ACGA,1", "ACGG,2"])
    splits, _ = tasks.load_gue_task(folder, keep_source=True)
    with pytest.raises(ValueError, match=rf"{folder / 'train.csv'} line 4: label 2 is outside the declared"):
        splitting.check_labels(splits, 2)


def test_an_over_long_sequence_names_file_and_line(tmp_path):
    folder = _gue(tmp_path, ["ACGT,0", "ACGA,1"], ["ACGT,0", "ACGA,1", "ACGTACGT,1"])
    splits, _ = tasks.load_gue_task(folder, keep_source=True)
    with pytest.raises(ValueError, match=rf"{folder / 'test.csv'} line 4: length 8 exceeds max_length 4"):
        splitting.apply_max_length(splits, 4)


def test_an_over_long_fasta_record_names_file_and_record(tmp_path):
    files = []
    for label in range(2):
        path = tmp_path / f"c{label}.fa"
        path.write_text("".join(f">r{label}_{i}\n{'ACGT' * (i + 1)}{'A' * label}\n" for i in range(10)))
        files.append(path)
    splits = tasks.fasta_classes_task(files, {"train": 0.8, "dev": 0.1, "test": 0.1}, 0, keep_source=True)
    with pytest.raises(ValueError, match=r"c[01]\.fa record 'r[01]_\d': length \d+ exceeds max_length 3"):
        splitting.apply_max_length(splits, 3)
    plain = tasks.fasta_classes_task(files, {"train": 0.8, "dev": 0.1, "test": 0.1}, 0)
    assert list(plain["train"].columns) == ["sequence", "label"]  # the prepared task is unchanged


def test_a_corpus_fasta_header_without_sequence_is_an_error(tmp_path):
    path = tmp_path / "genome.fa"
    path.write_text(">chr1\nACGTACGT\n>chr2\n>chr3\nACGT\n")
    with pytest.raises(ValueError, match=rf"{path} line 3: record 'chr2' has no sequence"):
        corpus.contig_lengths(path)
    with pytest.raises(ValueError, match="has no sequence"):
        corpus.write_corpus([{"fasta": path}], tmp_path / "corpus", length=4)
    assert not (tmp_path / "corpus").exists()


def test_config_readme_documents_every_schema_key():
    """config/README.md's key table is generated from the schema (vqdna.workflow.config_doc): it is up to
    date, and every key has a meaning (a key without a description or comment fails here)."""
    from vqdna.workflow import config_doc

    text = (REPO / "config" / "README.md").read_text()
    block = text.split(config_doc.BEGIN, 1)[1].split(config_doc.END, 1)[0].lstrip("\n")
    assert block == config_doc.table()
    undocumented = [row["key"] for row in config_doc.rows() if not row["meaning"]]
    assert undocumented == []
    assert len(config_doc.rows()) > 100 and any(
        r["key"] == "ablations.knob_replicates" for r in config_doc.rows()
    )
