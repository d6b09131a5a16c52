# Shared helpers: the study plan (from vqdna.study / vqdna.suites) and the notebook runner.
import json
import shlex
from pathlib import Path

from vqdna import study, suites

W = config["workdir"]
TASKS = suites.enabled_tasks(config)  # [(suite, task)], tasks whose data is absent are dropped
MODELS = study.compared_models(config)
ABLATION_RUNS = study.ablation_runs(config)
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
    targets = [f"{W}/summary/results.md", f"{W}/summary/efficiency.md"]
    if sarscov2_enabled():
        targets.append(f"{W}/sarscov2/sarscov2.html")
    return targets
