"""The study on a real Slurm, not a mock: a one-node cluster on localhost
(profiles/slurm/localhost-cluster.sh, Debian packages) runs a slice of the smoke study through
snakemake-executor-plugin-slurm (the shipped profiles/slurm, only its site settings overridden:
the node's CPUs and the status command of a cluster without accounting). Its metrics must equal a
local run's, timing fields aside, and its jobs must carry the config's resources.

The cluster test touches the system (apt-get installs, daemons started as root), so it runs only
when asked: ``VQDNA_TEST_SLURM=1 python -m pytest tests/test_slurm.py`` (.ci/run sets it)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "profiles" / "slurm" / "localhost-cluster.sh"
TIMING = re.compile(r"_per_s$|time|wall")  # fields that measure speed, not results
# Site settings of the localhost cluster over the shipped profile: it has no accounting, so sacct
# sees no job (ask squeue; check early); its node's CPUs come from Slurm (`--cores`, slurm_site).
SLURM = [
    "--profile",
    "profiles/slurm",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
]
#: how to run the cluster test, which installs packages and starts daemons
OPT_IN = "VQDNA_TEST_SLURM"
RUN_IT = f"{OPT_IN}=1 python -m pytest tests/test_slurm.py"
# Resources the slice asks for; the test reads them back from Slurm.
RESOURCES = {"pretrain": {"runtime": 7, "mem_mb": 1234}}


def snakemake(*args, timeout=600):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_snakemake(*args, log: Path):
    """Snakemake in the background, stdout and stderr to `log`."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


def untimed(record):
    """A metrics record without its timing fields, at any depth."""
    if isinstance(record, dict):
        return {k: untimed(v) for k, v in record.items() if not TIMING.search(k)}
    if isinstance(record, list):
        return [untimed(v) for v in record]
    return record


def test_paper_profile_plans_with_per_stage_resources(tmp_path):
    """config/paper.yaml through the Slurm profile: each stage's resources come from its config entry,
    GPUs only for the network stages, CPUs = threads (threads_per_job 4)."""
    result = snakemake(
        "-n",
        "--profile",
        "profiles/slurm",
        "--configfile",
        "config/paper.yaml",
        "--config",
        f"workdir={tmp_path}",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    planned = dict(
        re.findall(r"^rule (\w+):.*?^    resources: ([^\n]*)", result.stdout, re.MULTILINE | re.DOTALL)
    )
    assert "runtime=2880, gpu=1, cpus_per_task=4, mem_mb=128000" in planned["pretrain"]
    assert "runtime=720, gpu=1, cpus_per_task=4, mem_mb=32000" in planned["finetune"]
    assert "runtime=240, gpu=0, cpus_per_task=1, mem_mb=32000" in planned["kmer_baseline"]
    assert "gpu=0, cpus_per_task=16" in planned["sarscov2"]  # threads: all of the Snakemake profile's cores


@pytest.fixture(scope="module")
def localhost_slurm():
    """Start the cluster (installing the packages when missing); stop it afterwards if we started it.
    Only when asked: it changes the system."""
    if os.environ.get(OPT_IN) != "1":
        pytest.skip(
            f"touches the system (apt-get installs slurmctld/slurmd/munge, starts daemons as root): "
            f"run it with {RUN_IT}"
        )
    if os.geteuid() != 0:
        pytest.skip("the localhost Slurm cluster needs root (apt-get, munged, slurmctld, slurmd)")
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        pytest.skip("Slurm is not installed and apt-get is not available to install it")
    was_up = subprocess.run([str(CLUSTER), "status"], capture_output=True).returncode == 0
    started = subprocess.run([str(CLUSTER), "start"], capture_output=True, text=True, timeout=600)
    assert started.returncode == 0, started.stdout + started.stderr
    yield slurm_site()
    if not was_up:
        subprocess.run([str(CLUSTER), "stop"], capture_output=True, timeout=60)


def slurm_site() -> list[str]:
    """The localhost cluster's site settings over the shipped profile: its node's CPUs, as Slurm
    reports them (the profile's `cores: 16` would make whole-node jobs pend on a smaller node)."""
    shown = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, timeout=30)
    cpus = max(int(c) for c in shown.stdout.replace("+", "").split() if c.isdigit())
    return [*SLURM, "--cores", str(cpus)]


def test_the_cluster_test_runs_only_when_asked(monkeypatch):
    """Without VQDNA_TEST_SLURM=1 the cluster fixture skips, saying how to run it; .ci/run asks."""
    monkeypatch.delenv(OPT_IN, raising=False)
    with pytest.raises(pytest.skip.Exception, match=RUN_IT.replace(".", r"\.")):
        next(localhost_slurm.__wrapped__())
    assert f"{OPT_IN}=1" in (REPO / ".ci" / "run").read_text()


def test_the_shipped_slurm_profile_declares_the_node_size():
    """The Snakemake profile's `cores` is the CPUs of one node: the plan (rules/common.smk) refuses a job
    asking more, and a declaration above the largest node Slurm reports."""
    from vqdna.workflow import study

    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    assert profile["executor"] == "slurm" and isinstance(profile["cores"], int)
    study.check_cpus(config, profile["cores"], "profiles/slurm cores")
    assert max(study.job_cpus(config, profile["cores"]).values()) == profile["cores"]
    with pytest.raises(ValueError, match=r"rule train_tokenizer: .* 4 CPUs .* 2 CPUs one node has"):
        study.check_cpus(config, 2, "profiles/slurm cores")
    with pytest.raises(ValueError, match=r"sarscov2, efficiency.*pend forever.*--cores 2"):
        study.check_cpus({**config, "threads_per_job": 1}, profile["cores"], "cores", largest_node=2)
    assert "study.check_cpus" in (REPO / "rules" / "common.smk").read_text()


def test_smoke_slice_through_slurm_equals_the_local_run(localhost_slurm, tmp_path):
    overlay = tmp_path / "slice.yaml"
    overlay.write_text(yaml.safe_dump({"resources": RESOURCES}))
    runs, logs = {}, {}
    # Both runs at once: the Slurm run mostly waits on the scheduler. Their outputs are disjoint.
    for name, how in (("slurm", localhost_slurm), ("local", ["--profile", "profiles/local", "--cores", "1"])):
        workdir = tmp_path / name
        targets = [
            workdir / "models/vq/rep0/metrics.json",
            workdir / "tokenizers/char/seed0/metrics.json",
            workdir / "baseline/embedded/yeast_species/metrics.json",
        ]
        logs[name] = tmp_path / f"{name}.log"
        runs[name] = start_snakemake(
            *how,
            "--configfile",
            "config/smoke.yaml",
            str(overlay),
            "--config",
            f"workdir={workdir}",
            "--",
            *map(str, targets),
            log=logs[name],
        )
    try:
        for name in ("slurm", "local"):
            assert runs[name].wait(timeout=900) == 0, logs[name].read_text()[-5000:]
            if name == "slurm":  # read the jobs back before Slurm forgets them (MinJobAge)
                log = logs[name].read_text()
                submitted = dict(re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+)/", log))
                pretrain = next(job for job, rule in submitted.items() if rule == "pretrain")
                shown = subprocess.run(["scontrol", "show", "job", pretrain], capture_output=True, text=True)
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()

    rules = set(submitted.values())
    assert {"corpus", "prepare_task", "train_tokenizer", "pretrain", "kmer_baseline"} <= rules, log[-3000:]
    assert "TimeLimit=00:07:00" in shown.stdout and "mem=1234M" in shown.stdout, shown.stdout + shown.stderr

    found = (tmp_path / "slurm").rglob("metrics.json")
    records = sorted(str(p.relative_to(tmp_path / "slurm")) for p in found)
    assert records == [
        "baseline/embedded/yeast_species/metrics.json",
        "models/vq/rep0/metrics.json",
        "tokenizers/char/seed0/metrics.json",
        "tokenizers/vq/seed0/metrics.json",
    ]
    for record in records:
        slurm, local = (json.loads((tmp_path / run / record).read_text()) for run in ("slurm", "local"))
        assert untimed(slurm) == untimed(local), record
    weights = [
        torch.load(tmp_path / run / "models/vq/rep0/model.pt", map_location="cpu", weights_only=True)
        for run in ("slurm", "local")
    ]
    slurm, local = (w["state_dict"] for w in weights)
    assert slurm.keys() == local.keys()
    for key in slurm:
        assert torch.equal(slurm[key], local[key]), key  # bit-identical pre-trained weights
