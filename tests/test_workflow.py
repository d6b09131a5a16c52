"""The workflow itself: lint, dry runs of every profile, and the smoke config end to end
(every stage, every tokenizer) on real data. The end-to-end run takes a few minutes."""
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from vqdna import suites

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--cores", "2"]


def snakemake(*args, cwd=REPO, timeout=900):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/paper.yaml"])
def test_dry_run(configfile, tmp_path):
    result = snakemake("-n", "--configfile", configfile, "--config", f"workdir={tmp_path}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rule finetune" in result.stdout or "finetune" in result.stdout


def test_fresh_machine_plans_the_embedded_suite_alone(tmp_path):
    """Without downloaded data (no GUE, no ../shared) the default study, ablations included,
    still plans: only the embedded tasks, no SARS-CoV-2 notebook."""
    missing = tmp_path / "no-data"
    override = tmp_path / "fresh.yaml"
    override.write_text(yaml.safe_dump({"data": {"gue_dir": str(missing), "shared_dir": str(missing)}}))
    result = snakemake("-n", "--configfile", "config/config.yaml", "config/ablations.yaml", str(override),
                       "--config", f"workdir={tmp_path / 'results'}")
    assert result.returncode == 0, result.stdout + result.stderr
    planned = set(re.findall(r"wildcards: suite=(\w+), task=(\w+)", result.stdout))
    assert planned == {("embedded", "coding")}
    jobs = {m[1] for m in re.finditer(r"^([a-z_0-9]+)\s+(\d+)$", result.stdout, re.MULTILINE)}
    assert "sarscov2" not in jobs and {"finetune", "linear_probe", "train_tokenizer"} <= jobs


def test_config_is_validated_against_the_schema(tmp_path):
    result = snakemake("-n", "--config", "device=tpu", f"workdir={tmp_path}")
    assert result.returncode != 0 and "device" in result.stdout + result.stderr


@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path):
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    result = snakemake("--configfile", "config/smoke.yaml", "--config", f"workdir={tmp_path}")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]

    tasks = suites.enabled_tasks(config)
    tokenizers = list(config["tokenizers"])
    for stage in ("finetune", "linear_probe"):
        table = pd.read_csv(tmp_path / "summary" / f"{stage}.csv")
        ranked = table[~table["is_reference"]]
        assert sorted(zip(ranked["task"], ranked["tokenizer"])) == sorted(
            (task, tok) for _, task in tasks for tok in tokenizers)
        assert ranked["mean"].map(math.isfinite).all()
        assert (table["is_reference"].groupby(table["task"]).sum() >= 1).all()  # k-mer spectrum row per task
    for name in ("results.md", "summary.html", "efficiency.md", "claims.md", "figures/finetune_scores.png"):
        assert (tmp_path / "summary" / name).stat().st_size > 0, name
    for tok in tokenizers:
        assert (tmp_path / "tokenizers" / tok / "train_tokenizer.html").exists()
        assert (tmp_path / "models" / tok / "pretrain.html").exists()
    if (REPO.parent / "shared" / "data" / "sars_cov_2").is_dir():
        record = json.loads((tmp_path / "sarscov2" / "metrics.json").read_text())
        assert record["n_genomes"] >= 10 and record["lineage_structure"]

    # nothing left to do, and a changed fine-tuning parameter reruns exactly the fine-tuning jobs
    assert "Nothing to be done" in snakemake("-n", "--configfile", "config/smoke.yaml", "--config",
                                             f"workdir={tmp_path}").stdout
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump({"finetune": {**config["finetune"], "epochs": 2}}))
    dry = snakemake("-n", "--configfile", "config/smoke.yaml", str(changed), "--config", f"workdir={tmp_path}")
    jobs = {m[1]: int(m[2]) for m in re.finditer(r"^([a-z_]+)\s+(\d+)$", dry.stdout, re.MULTILINE)}  # job stats
    assert jobs.get("finetune") == len(tasks) * len(tokenizers) * len(config["seeds"])
    assert set(jobs) - {"total", "finetune", "summary", "index", "all"} == set(), jobs
