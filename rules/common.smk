# Shared helpers: the study plan (from vqdna.study / vqdna.suites) and the notebook runner.
import json
import shlex
from pathlib import Path

from vqdna import stages, study, suites

W = config["workdir"]
TASKS = suites.enabled_tasks(config)  # [(suite, task)], tasks whose data is absent are dropped
MODELS = study.compared_models(config)
ABLATION_RUNS = study.ablation_runs(config)
study.check_memory(config)  # a stage that cannot fit in gpu_memory_gb fails here, at plan time
SEEDS = config["seeds"]
PROBE_SEEDS = config["linear_probe"]["seeds"]

wildcard_constraints:
    suite=r"[A-Za-z0-9_\-]+",
    task=r"[A-Za-z0-9_\-\.]+",
    seed=r"\d+",
    tokenizer=r"[A-Za-z0-9_\-~=\.]+",
    model=r"[A-Za-z0-9_\-~=\.]+",


def nb_params(**params):
    """Notebook parameters as one shell-quoted YAML (JSON) string for `papermill -y`."""
    return shlex.quote(json.dumps(params, default=str))


# Execute a jupytext notebook with papermill and render it to HTML (vqdna/notebook.py). Rules
# declare input.notebook (the .py source), output.notebook (.ipynb), output.html, params.nb, log.
RUN_NOTEBOOK = "python -m vqdna.notebook {input.notebook} {output.notebook} --params {params.nb} > {log} 2>&1"


def scale_params(resume_path):
    """Training-at-scale settings for a training notebook; resume_path is not an output: it
    survives a failed (preempted) job, and the rerun resumes from it."""
    keys = ("precision", "activation_checkpointing", "checkpoint_every")
    return {"resume_path": resume_path, **{k: config[k] for k in keys if k in config}}


def job_resources(kind):
    """Cluster-schedulable resources per job kind; GPU requested only when config asks."""
    gpu = 1 if config["device"] == "cuda" else 0
    mem = {"light": 2000, "train": 6000}[kind]
    return {"mem_mb": mem, "gpu": gpu if kind == "train" else 0}


def task_dir(wildcards):
    return f"{W}/data/{wildcards.suite}/{wildcards.task}"


def tokenizer_dir(name):
    return f"{W}/tokenizers/{name}/tokenizer"


def model_tokenizer(wildcards):
    return tokenizer_dir(study.model_spec(config, wildcards.model)["tokenizer"])


def finetune_metrics(models=None, tasks=None, seeds=None):
    return [f"{W}/finetune/{s}/{t}/{m}/seed{seed}/metrics.json"
            for s, t in (tasks or TASKS) for m in (models or MODELS) for seed in (seeds or SEEDS)]


def probe_metrics(models=None, tasks=None):
    return [f"{W}/linear_probe/{s}/{t}/{m}/seed{seed}/metrics.json"
            for s, t in (tasks or TASKS) for m in (models or MODELS) for seed in PROBE_SEEDS]


def baseline_metrics(tasks=None):
    return [f"{W}/baseline/{s}/{t}/metrics.json" for s, t in (tasks or TASKS)]


def tokenizer_metrics(names=None):
    return [f"{W}/tokenizers/{n}/metrics.json" for n in (names or MODELS)]


def all_targets():
    return [f"{W}/index.md"]


def ablation_metrics():
    """Metrics files of every ablation run (empty when ablations are off)."""
    if not ABLATION_RUNS:
        return []
    probe_task = [study.parse_task(config["ablations"]["probe_task"])]
    finetune_tasks = [study.parse_task(t) for t in config["ablations"]["finetune_tasks"]]
    paths = []
    for run in ABLATION_RUNS:
        paths += tokenizer_metrics([run["tokenizer"]])
        if run["ablation"] in study.PRETRAIN_ABLATIONS:
            paths += finetune_metrics([run["model"]], finetune_tasks)
        else:
            paths += probe_metrics([run["model"]], probe_task)
    return sorted(set(paths))


def sarscov2_enabled():
    return config["sarscov2"]["enabled"] and sarscov2_dir().is_dir()


def sarscov2_dir():
    return Path(config["data"].get("shared_dir") or "") / "sars_cov_2"
