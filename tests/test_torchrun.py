"""Multi-process training through the workflow: with resources.<stage>.processes = 2 the rule
runs the training under a real torchrun (2 gloo ranks on CPU, vqdna/workflow/launch.py), then the
notebook resumes at the last step and writes the outputs. About a minute per workflow run."""

import json
import re

import pytest
import yaml
from test_workflow import snakemake

TARGETS = ("tokenizers/hrq/seed0/metrics.json", "models/hrq/rep0/metrics.json")


def run(tmp_path, name: str, overlay: dict) -> dict[str, dict]:
    """The smoke study's HRQ tokenizer and its pre-training, with ``overlay``: -> their records."""
    workdir, extra = tmp_path / name, tmp_path / f"{name}.yaml"
    extra.write_text(yaml.safe_dump(overlay))
    result = snakemake(
        "--configfile",
        "config/smoke.yaml",
        str(extra),
        "--config",
        f"workdir={workdir}",
        "--",
        *(str(workdir / t) for t in TARGETS),
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not list(workdir.glob("**/resume.pt"))  # the notebook took the final checkpoint and removed it
    return {t: json.loads((workdir / t).read_text()) for t in TARGETS}


def launch_history(log) -> list[dict]:
    """The history that rank 0 of the torchrun launch printed into the job's log."""
    return json.loads(re.search(r"^history: (.*)$", log.read_text(), re.MULTILINE)[1])


@pytest.mark.slow
def test_two_torchrun_processes_train_the_workflow_stages(tmp_path):
    two = run(
        tmp_path, "two", {"resources": {"train_tokenizer": {"processes": 2}, "pretrain": {"processes": 2}}}
    )
    assert all(record["world_size"] == 2 for record in two.values())
    vq = launch_history(tmp_path / "two" / "logs/tokenizers/hrq/seed0.log")
    mlm = launch_history(tmp_path / "two" / "logs/pretrain/hrq/rep0.log")
    assert vq[-1]["loss"] < vq[0]["loss"] and mlm[-1]["val_loss"] < mlm[0]["val_loss"]
    assert mlm[-1]["train_loss"] < mlm[0]["train_loss"]
    assert two[TARGETS[1]]["final_val_loss"] == mlm[-1]["val_loss"]  # the notebook trained nothing more

    # One process at the same effective batch (2 micro-batches of half the batch, accumulated)
    # sees the same micro-batches: the records agree up to float summation order.
    one = run(tmp_path, "one", {"vqvae": {"micro_batch_size": 8}, "pretrain": {"micro_batch_size": 4}})
    assert all("world_size" not in record for record in one.values())
    for target in TARGETS:
        for key, value in one[target].items():
            if key in ("spec", "pretrain", "steps_per_s"):  # micro_batch_size; timing
                continue
            numbers = all(
                isinstance(v, (int, float)) for v in (value if isinstance(value, list) else [value])
            )
            expected = pytest.approx(value, rel=1e-5, abs=1e-6) if numbers else value
            assert two[target][key] == expected, (target, key)


def dry_run(tmp_path, overlay: dict):
    extra = tmp_path / "overlay.yaml"
    extra.write_text(yaml.safe_dump(overlay))
    return snakemake(
        "-n",
        "-p",
        "--configfile",
        "config/paper.yaml",
        str(extra),
        "--config",
        f"workdir={tmp_path}",
        "--",
        str(tmp_path / TARGETS[1]),
    )


def test_gpus_per_job_set_the_torchrun_processes(tmp_path):
    """paper.yaml on a 4-GPU pre-training job: torchrun with 4 processes; 1 GPU: the notebook alone."""
    result = dry_run(tmp_path, {"resources": {"pretrain": {"gpu": 4}}})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    commands = [line for line in result.stdout.splitlines() if "vqdna.workflow.notebook" in line]
    assert sum("--nproc_per_node=4 -m vqdna.workflow.launch pretrain" in c for c in commands) == 1
    assert sum("torch.distributed.run" in c for c in commands) == 1  # the tokenizer job: one GPU
    result = dry_run(tmp_path, {"resources": {"pretrain": {"gpu": 1, "processes": 2}}})
    assert result.returncode != 0 and "2 processes on device cuda" in result.stdout + result.stderr
