"""The workflow itself: lint, dry runs of every study config, and the smoke config end to end
(every stage, every tokenizer) on real data. The end-to-end run takes a few minutes."""

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from vqdna.data import suites

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--cores", "2"]


def snakemake(*args, cwd=REPO, timeout=900, pythonpath=None):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [*SNAKEMAKE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/paper.yaml"])
def test_dry_run(configfile, tmp_path):
    result = snakemake("-n", "--configfile", configfile, "--config", f"workdir={tmp_path}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rule finetune" in result.stdout or "finetune" in result.stdout


def test_species_profile_plans_the_probe_alone(tmp_path):
    """config/species.yaml (its tasks declare `evaluation: {finetune: false}`): every species
    length is probed, nothing is fine-tuned, and the summary declares no fine-tuning table or figure."""
    result = snakemake(
        "-n", "--configfile", "config/config.yaml", "config/species.yaml", "--config", f"workdir={tmp_path}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = dict(re.findall(r"^([a-z_0-9]+)\s+(\d+)$", result.stdout, re.MULTILINE))
    assert "finetune" not in jobs and jobs["linear_probe"] == "72"  # 4 tasks x 6 tokenizers x 3 replicates
    summary = result.stdout[result.stdout.index("rule summary:") :].split("\n\n")[0]
    assert "species_length.md" in summary and "finetune" not in summary.split("output:")[1]


def notebook_default_inputs() -> dict[str, list[str]]:
    """notebook -> the ``results/...`` paths its parameters cell reads by default (outputs of a
    notebook run by hand go under results/by_hand/, which no rule writes)."""
    import ast

    found = {}
    for source in sorted((REPO / "notebooks").glob("*.py")):
        cell = source.read_text().split('tags=["parameters"]', 1)[1].split("# %%", 1)[0]
        strings = [
            n.value
            for n in ast.walk(ast.parse(cell))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        ]
        found[source.name] = [
            s for s in strings if s.startswith("results/") and not s.startswith("results/by_hand/")
        ]
    return found


def assert_notebook_defaults_are_run_outputs(plan: str, workdir: Path) -> None:
    """Every notebook's default input is a file (or lies in a folder) the default study writes:
    a user can open any notebook after `snakemake --cores all` and run it as it is."""
    outputs = {
        o.strip() for line in re.findall(r"^\s+output: (.+)$", plan, re.MULTILINE) for o in line.split(",")
    }
    checked = 0
    for notebook, paths in notebook_default_inputs().items():
        for path in paths:
            if "*" in path:  # summary.py's glob of every record
                continue
            planned = str(workdir / path.removeprefix("results/"))
            assert any(planned == o or planned.startswith(o + "/") for o in outputs), (notebook, path)
            checked += 1
    assert checked >= 10


def test_fresh_machine_plans_the_embedded_suite_alone(tmp_path):
    """Without downloaded data (no GUE, no ../shared) the default study still plans: only the
    embedded tasks, no SARS-CoV-2 notebook. The ablation study plans too: VQ and HRQ alone on
    `coding`, every tokenizer variant with 3 seeds, measured on the task's test sequences."""
    missing = tmp_path / "no-data"
    override = tmp_path / "fresh.yaml"
    override.write_text(yaml.safe_dump({"data": {"gue_dir": str(missing), "shared_dir": str(missing)}}))
    result = snakemake(
        "-n",
        "--configfile",
        "config/config.yaml",
        str(override),
        "--config",
        f"workdir={tmp_path / 'results'}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    planned = set(re.findall(r"wildcards: suite=(\w+), task=(\w+)", result.stdout))
    assert planned == {("embedded", "coding"), ("embedded", "species_1k")}
    finetune_jobs = r"rule finetune:.*?wildcards: suite=(\w+), task=(\w+)"
    finetuned = set(re.findall(finetune_jobs, result.stdout, re.DOTALL))
    assert finetuned == {("embedded", "coding")}  # species_1k is probed alone
    jobs = {m[1] for m in re.finditer(r"^([a-z_0-9]+)\s+(\d+)$", result.stdout, re.MULTILINE)}
    assert "sarscov2" not in jobs and {"finetune", "linear_probe", "train_tokenizer"} <= jobs
    assert_notebook_defaults_are_run_outputs(result.stdout, tmp_path / "results")

    ablations = snakemake(
        "-n",
        "--configfile",
        "config/config.yaml",
        "config/ablations.yaml",
        str(override),
        "--config",
        f"workdir={tmp_path / 'ablations'}",
    )
    assert ablations.returncode == 0, ablations.stdout + ablations.stderr
    planned = set(re.findall(r"wildcards: suite=(\w+), task=(\w+)", ablations.stdout))
    assert planned == {("embedded", "coding")}
    trained = set(re.findall(r"wildcards: tokenizer=([^,\s]+), tseed=(\d)", ablations.stdout))
    assert {name.split("~")[0] for name, _ in trained} == {"vq", "hrq"}
    names = {name for name, _ in trained}
    assert trained == {(name, seed) for name in names for seed in "012"}
    assert "hrq~stride=4" in names and "vq~levels=3" not in names
    tokenizer_inputs = re.findall(r"rule train_tokenizer:\n\s+input: ([^\n]+)", ablations.stdout)
    assert tokenizer_inputs and all("data/embedded/coding" in line for line in tokenizer_inputs)
    jobs = dict(re.findall(r"^([a-z_0-9]+)\s+(\d+)$", ablations.stdout, re.MULTILINE))
    assert "sarscov2" not in jobs and jobs["train_tokenizer"] == str(3 * len(names))


def test_config_is_validated_against_the_schema(tmp_path):
    result = snakemake("-n", "--config", "device=tpu", f"workdir={tmp_path}")
    assert result.returncode != 0 and "device" in result.stdout + result.stderr


def readme_tokenizer_module(folder: Path) -> Path:
    """The extending guide's example tokenizer class ("A tokenizer: one class and one config
    entry", docs/extending.md), written out as my_tokenizers.py in ``folder``."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "extending.md").read_text(), flags=re.S)
    (code,) = [b for b in blocks if "class PurinePyrimidine" in b]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "my_tokenizers.py").write_text(code)
    return folder


def guide_suite(root: Path) -> dict:
    """docs/extending.md's suite of one's own, followed to the letter: the benchmarks folder with
    the guide's `benchmarks/my_suite.yaml` added, and its GUE-format task made of real sequence
    (100 bp windows of yeast chromosome I, label 0, and of fly chromosome 4, label 1; train, dev
    and test from separate regions). -> the config overlay that enables it (the GUE suite off:
    the guide's task takes its place)."""
    from vqdna.data.genomes import embedded_genomes, read_contigs

    guide = (REPO / "docs" / "extending.md").read_text()
    (block,) = [
        b
        for b in re.findall(r"```yaml\n(.*?)```", guide, flags=re.S)
        if b.startswith("# benchmarks/my_suite.yaml")
    ]
    benchmarks = root / "benchmarks"
    shutil.copytree(REPO / "benchmarks", benchmarks, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (benchmarks / "my_suite.yaml").write_text(block)
    genomes = {g["species"]: g for g in embedded_genomes()}
    yeast = next(g for s, g in genomes.items() if "cerevisiae" in s.lower())
    fly = next(g for s, g in genomes.items() if "melanogaster" in s.lower())
    chromosomes = [next(iter(read_contigs(g["fasta"]).values())) for g in (yeast, fly)]
    folder = root / "shared" / "my_data" / "enhancers"
    folder.mkdir(parents=True)
    for split, (start, n) in {"train": (0, 120), "dev": (20_000, 30), "test": (40_000, 30)}.items():
        rows = [
            f"{chromosome[start + 100 * i : start + 100 * (i + 1)]},{label}"
            for label, chromosome in enumerate(chromosomes)
            for i in range(n)
        ]
        (folder / f"{split}.csv").write_text("sequence,label\n" + "\n".join(rows) + "\n")
    shared = REPO.parent / "shared" / "data" / "sars_cov_2"
    if shared.is_dir():  # the smoke study's SARS-CoV-2 notebook reads the same shared_dir
        (root / "shared" / "sars_cov_2").symlink_to(shared)
    (enable,) = re.findall(r"Enable it like a built-in suite: `(data: \{.*?\})`", guide, flags=re.S)
    overlay = yaml.safe_load(enable)
    overlay["data"].update(benchmarks_dir=str(benchmarks), shared_dir=str(root / "shared"))
    overlay["data"]["suites"]["gue"] = {"enabled": False}
    return overlay


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path):
    """The smoke study end to end, extended the way docs/extending.md says: a suite file of one's
    own with a GUE-format task, and a tokenizer class of one's own added by one config entry (its
    module on PYTHONPATH): both trained, pre-trained on, fine-tuned and tabled like the rest."""
    modules = readme_tokenizer_module(tmp_path / "modules")
    overlay = tmp_path / "extended.yaml"
    extension = {**guide_suite(tmp_path), "tokenizers": {"ry": {"type": "my_tokenizers:PurinePyrimidine"}}}
    overlay.write_text(yaml.safe_dump(extension))
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["data"] = {
        **config["data"],
        **extension["data"],
        "suites": {**config["data"]["suites"], **extension["data"]["suites"]},
    }
    work = tmp_path / "work"
    result = snakemake(
        "--configfile",
        "config/smoke.yaml",
        str(overlay),
        "--config",
        f"workdir={work}",
        pythonpath=modules,
        timeout=2400,  # about 5 minutes alone; far longer beside other work on 2 cores
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]

    probed = suites.enabled_tasks(config)
    finetuned = [task for task in probed if suites.finetunes(config, *task)]
    assert ("embedded", "species_1k") in set(probed) - set(finetuned)  # a probe-only task beside the rest
    assert ("my_suite", "my_enhancers") in finetuned  # the guide's own suite
    tokenizers = [*config["tokenizers"], "ry"]
    for stage, tasks in (("finetune", finetuned), ("linear_probe", probed)):
        table = pd.read_csv(work / "summary" / f"{stage}.csv")
        ranked = table[~table["is_reference"]]
        assert sorted(zip(ranked["task"], ranked["tokenizer"])) == sorted(
            (task, tok) for _, task in tasks for tok in tokenizers
        )
        assert ranked["mean"].map(math.isfinite).all()
        assert (table["is_reference"].groupby(table["task"]).sum() >= 1).all()  # k-mer spectrum row per task
    for name in (
        "results.md",
        "summary.html",
        "efficiency.md",
        "claims.md",
        "species_length.md",
        "figures/finetune_scores.png",
    ):
        assert (work / "summary" / name).stat().st_size > 0, name
    for tok in tokenizers:
        assert (work / "tokenizers" / tok / "seed0" / "train_tokenizer.html").exists()
        assert (work / "models" / tok / "rep0" / "pretrain.html").exists()
    pretext = pd.read_csv(work / "summary" / "pretext.csv")
    assert set(pretext["tokenizer"]) == set(tokenizers) and pretext["unigram_loss"].gt(0).all()
    provenance = json.loads((work / "provenance.json").read_text())
    assert provenance["config_sha256"] and provenance["libraries"]["torch"] and provenance["machine"]["cores"]
    if (REPO.parent / "shared" / "data" / "sars_cov_2").is_dir():
        record = json.loads((work / "sarscov2" / "metrics.json").read_text())
        assert record["n_genomes"] >= 10 and record["lineage_structure"]
    # every rendered notebook reads clean: no library warnings, no path of the machine's Python
    pages = sorted(work.glob("**/*.html"))
    assert pages
    for page in pages:
        text = page.read_text()
        assert "Warning:" not in text and sys.prefix not in text, page

    # nothing left to do, and a changed fine-tuning parameter reruns exactly the fine-tuning jobs
    assert (
        "Nothing to be done"
        in snakemake(
            "-n",
            "--configfile",
            "config/smoke.yaml",
            str(overlay),
            "--config",
            f"workdir={work}",
            pythonpath=modules,
        ).stdout
    )
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump({"finetune": {**config["finetune"], "epochs": 2}}))
    dry = snakemake(
        "-n",
        "--configfile",
        "config/smoke.yaml",
        str(overlay),
        str(changed),
        "--config",
        f"workdir={work}",
        pythonpath=modules,
    )
    jobs = {
        m[1]: int(m[2]) for m in re.finditer(r"^([a-z_]+)\s+(\d+)$", dry.stdout, re.MULTILINE)
    }  # job stats
    assert jobs.get("finetune") == len(finetuned) * len(tokenizers) * len(config["replicates"])
    assert set(jobs) - {"total", "finetune", "summary", "index", "provenance", "all"} == set(), jobs


def test_fresh_clone_plans_the_whole_study(tmp_path):
    """A clone of the repository (no ../shared beside it) plans every stage of the embedded study:
    no tracked file sits at a rule's output path, so nothing looks done already."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    result = snakemake("-n", cwd=clone)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {m[1]: int(m[2]) for m in re.finditer(r"^([a-z_0-9]+)\s+(\d+)$", result.stdout, re.MULTILINE)}
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    replicates, tokenizers = len(config["replicates"]), len(config["tokenizers"])
    assert jobs["pretrain"] == replicates * tokenizers
    # coding is fine-tuned and probed, species_1k probed alone
    assert jobs["finetune"] == jobs["linear_probe"] / 2 == replicates * tokenizers
    assert {
        "corpus",
        "prepare_task",
        "train_tokenizer",
        "kmer_baseline",
        "summary",
        "efficiency",
        "index",
        "provenance",
    } <= set(jobs)
    tracked = subprocess.run(
        ["git", "ls-files", "results"], cwd=clone, capture_output=True, text=True
    ).stdout.split()
    assert tracked and all(path.startswith("results/reference/") for path in tracked)


def tiny_config(tmp_path: Path) -> Path:
    """A small study that runs every stage of the main comparison: one embedded task, one
    replicate with two fine-tuning seeds, smoke-sized models. (Snakemake merges --configfile over
    config/config.yaml, so every default tokenizer runs: an overlay can add keys but not remove them.)"""
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["replicates"], config["seeds"] = [0], [0, 1]
    config["data"]["suites"] = {
        "embedded": {
            "enabled": True,
            "tasks": ["coding"],
            "max_train": 100,
            "task_params": {"coding": {"length": 64, "n_per_class": 150}},
        },
        "gue": {"enabled": False},
        "covid_mini": {"enabled": False},
        "extra": {"enabled": False},
    }
    config["sarscov2"]["enabled"] = False
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def metrics_of(workdir: Path) -> dict[str, dict]:
    """Every metrics JSON of a run, timing fields dropped, keyed by path relative to the run."""
    from vqdna.analysis.compare import TIMING_KEYS

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if not any(t in k for t in TIMING_KEYS)}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return {
        str(p.relative_to(workdir)): clean(json.loads(p.read_text()))
        for p in sorted(workdir.glob("**/metrics.json"))
    }


@pytest.mark.slow
def test_rerun_and_interrupted_run_give_identical_metrics(tmp_path):
    """Run the tiny study twice from scratch, the second time interrupted by SIGTERM while a
    training job runs and then resumed: every metrics file (timings aside) is identical, and
    nothing the interruption left behind survives."""
    import signal
    import time

    config = tiny_config(tmp_path)
    first, second = tmp_path / "first", tmp_path / "second"
    result = snakemake("--configfile", str(config), "--config", f"workdir={first}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    process = subprocess.Popen(
        [*SNAKEMAKE, "--configfile", str(config), "--config", f"workdir={second}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and not list(second.glob("logs/pretrain/*/rep*.log")):
        time.sleep(0.5)
    time.sleep(2)  # inside the job: kernel started, training under way
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0, output[-2000:]
    assert not list(second.glob("models/*/rep*/model.pt")) or len(metrics_of(second)) < len(metrics_of(first))

    result = snakemake("--configfile", str(config), "--config", f"workdir={second}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    a, b = metrics_of(first), metrics_of(second)
    assert set(a) == set(b) and len(a) >= 12
    different = [path for path in a if a[path] != b[path]]
    assert not different, different


def test_the_plan_builds_without_torch():
    """Building the DAG (what every `snakemake` call does first) imports no torch: the rules import
    only the light plan modules, so a dry run takes seconds, not torch's import."""
    code = (
        "import sys\nfrom snakemake.cli import main\ntry:\n    main(['-n', '-q', '--cores', '1'])\n"
        "except SystemExit as done:\n    assert not done.code, done.code\n"
        "print('torch imported:', 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert "torch imported: False" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
