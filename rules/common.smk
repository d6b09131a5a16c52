# Shared helpers: the study plan (from vqdna.workflow.study / vqdna.data.suites) and the notebook runner.
import json
import shlex
import sys
from pathlib import Path

from vqdna.analysis import baselines
from vqdna.data import corpus, gue, prepare
from vqdna.workflow import plan
from vqdna.analysis import pages
from vqdna.workflow import study
from vqdna.data import suites

W = config["workdir"]
TASKS = suites.enabled_tasks(config)  # [(suite, task)], tasks whose data is absent are dropped
MODELS = study.compared_models(config)
ABLATION_RUNS = study.ablation_runs(config)
study.check_memory(config)  # a stage that cannot fit in gpu_memory_gb fails here, at plan time
REPLICATES = study.replicates(config)  # full-pipeline replicates (tokenizer, pre-training, fine-tuning)
SEEDS = config["seeds"]  # fine-tuning seeds within each replicate
# Tasks the study fine-tunes: finetune.enabled (default true) and each task's `evaluation.finetune`
# (benchmarks/*.yaml: the long-sequence species tasks are read whole only by the window-pooled
# probe, so they are probed alone). The switch is not a fine-tuning setting: it is kept out of the
# jobs' settings, so turning it on again reruns nothing.
FINETUNE_TASKS = [task for task in TASKS if suites.finetunes(config, *task)]
FINETUNE = {key: value for key, value in config["finetune"].items() if key != "enabled"}

# Run in the Snakemake process itself, never submitted: seconds of work, or needs the network.
localrules: index, download_gue, provenance, compare


wildcard_constraints:
    suite=r"[A-Za-z0-9_\-]+",
    task=r"[A-Za-z0-9_\-\.]+",
    seed=r"\d+",
    rep=r"\d+",
    tseed=r"\d+",
    tokenizer=r"[A-Za-z0-9_\-~=\.]+",
    model=r"[A-Za-z0-9_\-~=\.]+",


def nb_params(**params):
    """Notebook parameters as one shell-quoted YAML (JSON) string for `papermill -y`."""
    return shlex.quote(json.dumps(params, default=str))


def logged(log_path, function, *args, **kwargs):
    """Run a `run:` rule's work with its output, and a failure's traceback, in the rule's log
    (a `run:` block writes to the Snakemake process's own streams otherwise)."""
    import contextlib
    import traceback

    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as handle, contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
        try:
            return function(*args, **kwargs)
        except Exception:
            traceback.print_exc()
            raise


# Execute a jupytext notebook with papermill and render it to HTML (vqdna/workflow/notebook.py). Rules
# declare input.notebook (the .py source), output.notebook (.ipynb), output.html, params.nb, log,
# and params.settings: the config a job depends on. params.nb is a function of the job's paths,
# which Snakemake does not compare between runs; params.settings is a plain value, so a changed
# setting reruns the job (--rerun-triggers params).
NOTEBOOK = "python -m vqdna.workflow.notebook {input.notebook} {output.notebook} --params {params.nb}"
RUN_NOTEBOOK = f"{NOTEBOOK} > {{log}} 2>&1"


def scale_params(resume_path):
    """Training-at-scale settings for a training notebook; resume_path is not an output: it
    survives a failed (preempted) job, and the rerun resumes from it."""
    keys = ("precision", "activation_checkpointing", "checkpoint_every")
    return {"resume_path": resume_path, **{k: config[k] for k in keys if k in config}}


# Stages whose networks train or run on the configured device: on `device: cuda` they ask for a GPU.
GPU_STAGES = ("train_tokenizer", "pretrain", "finetune", "linear_probe")
# Used where config["resources"] names neither the stage nor `default` (runtime in minutes).
FALLBACK_RESOURCES = {"runtime": 60, "mem_mb": 2000}


def job_resources(stage):
    """What one job of `stage` asks a scheduler for: runtime (minutes), mem_mb, gpu, and
    cpus_per_task = the job's threads. Values come from config["resources"][stage] over its
    `default` entry; `gpu`, where neither sets it, is 1 for GPU_STAGES on `device: cuda`, else 0.
    The Slurm executor plugin turns them into --time, --mem, --gpus and --cpus-per-task; a local run
    enforces mem_mb and gpu only when limited with --resources (e.g. --resources gpu=1)."""
    table = config.get("resources", {})
    spec = {**FALLBACK_RESOURCES, **table.get("default", {}), **table.get(stage, {})}
    spec.pop("processes", None)  # not a scheduler request: see training_processes
    if "gpu" not in spec:
        spec["gpu"] = int(config["device"] == "cuda" and stage in GPU_STAGES)
    return {**spec, "cpus_per_task": lambda wildcards, threads: threads}


def training_processes(stage):
    """How many data-parallel processes train one train_tokenizer or pretrain job: config
    resources.<stage>.processes, else the job's `gpu` when above 1, else 1. On `device: cuda`
    each process needs its own GPU."""
    resources = job_resources(stage)
    processes = config.get("resources", {}).get(stage, {}).get("processes")
    processes = processes or (resources["gpu"] if resources["gpu"] > 1 else 1)
    if processes > 1 and config["device"] == "cuda" and processes > resources["gpu"]:
        raise ValueError(f"resources.{stage}: {processes} processes on device cuda need as many GPUs, "
                         f"but the job asks for gpu={resources['gpu']}")
    return processes


def train_command(stage):
    """The shell command of a train_tokenizer or pretrain job. One process: the notebook alone.
    N > 1: first `torchrun --standalone --nproc_per_node=N -m vqdna.workflow.launch` trains on N ranks
    (gloo on CPU, NCCL on GPUs) and keeps the finished resume checkpoint; then the notebook
    resumes at the last step, trains nothing and writes the outputs as usual."""
    processes = training_processes(stage)
    if processes == 1:
        return RUN_NOTEBOOK
    torchrun = f"python -m torch.distributed.run --standalone --nproc_per_node={processes}"
    return f"({torchrun} -m vqdna.workflow.launch {stage} {{params.nb}} && {NOTEBOOK}) > {{log}} 2>&1"


def training_settings(stage, settings):
    """The tracked `settings` param of a train_tokenizer or pretrain job, plus the process count
    when above 1 (a changed count reruns the job; one-process jobs keep the settings they had)."""
    processes = training_processes(stage)
    return {**settings, "processes": processes} if processes > 1 else settings


def task_dir(wildcards):
    return f"{W}/data/{wildcards.suite}/{wildcards.task}"


def tokenizer_dir(name, replicate=0):
    """The trained tokenizer that ``replicate`` uses (VQ/HRQ: one per replicate; others: one)."""
    return f"{W}/tokenizers/{name}/seed{study.tokenizer_seed(config, name, replicate)}/tokenizer"


def model_tokenizer(wildcards):
    return tokenizer_dir(study.model_spec(config, wildcards.model)["tokenizer"], wildcards.rep)


def finetune_paths(suite, task, model, rep):
    """The metrics files one fine-tuning job writes: one per fine-tuning seed of the replicate."""
    return [f"{W}/finetune/{suite}/{task}/{model}/rep{rep}/seed{seed}/metrics.json" for seed in SEEDS]


def finetune_metrics(models=None, tasks=None, reps=None):
    """Fine-tuning metrics files of the study's fine-tuned tasks (FINETUNE_TASKS) or of ``tasks``."""
    return [path for s, t in (FINETUNE_TASKS if tasks is None else tasks) for m in (models or MODELS)
            for rep in (reps or REPLICATES) for path in finetune_paths(s, t, m, rep)]


def probe_metrics(models=None, tasks=None, reps=None):
    return [f"{W}/linear_probe/{s}/{t}/{m}/rep{rep}/metrics.json"
            for s, t in (tasks or TASKS) for m in (models or MODELS) for rep in (reps or REPLICATES)]


def pretrain_metrics(models=None, reps=None):
    return [f"{W}/models/{m}/rep{rep}/metrics.json" for m in (models or MODELS) for rep in (reps or REPLICATES)]


def baseline_metrics(tasks=None):
    return [f"{W}/baseline/{s}/{t}/metrics.json" for s, t in (tasks or TASKS)]


def tokenizer_metrics(names=None, reps=None):
    """Tokenizer records of ``names`` in ``reps``, once per distinct trained tokenizer."""
    return sorted({f"{W}/tokenizers/{n}/seed{study.tokenizer_seed(config, n, rep)}/metrics.json"
                   for n in (names or MODELS) for rep in (reps or REPLICATES)})


def all_targets():
    """The index page, the run's provenance and, where this profile has a tracked reference,
    the comparison with it."""
    targets = [f"{W}/index.md", f"{W}/provenance.json"]
    if reference_available():
        targets.append(f"{W}/compare.md")
    return targets


def reference_available():
    folder = config.get("reference_dir")
    return bool(folder) and Path(folder).is_dir() and Path(W).resolve() != Path(folder).resolve()


def ablation_metrics():
    """Metrics files of every ablation run (empty when ablations are off)."""
    if not ABLATION_RUNS:
        return []
    probe_task = [study.parse_task(config["ablations"]["probe_task"])]
    finetune_tasks = [study.parse_task(t) for t in config["ablations"]["finetune_tasks"]]
    tokenizer_reps = study.ablation_tokenizer_replicates(config)
    paths = []
    for run in ABLATION_RUNS:
        reps = study.ablation_replicates(config, run["ablation"])
        paths += tokenizer_metrics([run["tokenizer"]], sorted(set(reps) | set(tokenizer_reps)))
        paths += pretrain_metrics([run["model"]], reps)
        if run["ablation"] in study.PRETRAIN_ABLATIONS:
            paths += finetune_metrics([run["model"]], finetune_tasks, reps)
        else:
            paths += probe_metrics([run["model"]], probe_task, reps)
    return sorted(set(paths))


def tokenizer_task_dirs(name):
    """Prepared folders of the ablation tasks a codebook tokenizer is measured on ("suite/task"
    -> folder): in an ablation study only, so the main study's tokenizer jobs are unchanged."""
    if not ABLATION_RUNS or study.tokenizer_spec(config, name)["type"] not in study.CODEBOOK_TYPES:
        return {}
    ablations = config["ablations"]
    names = dict.fromkeys([ablations["probe_task"], *ablations.get("finetune_tasks", [])])
    return {n: f"{W}/data/{n}" for n in names if study.parse_task(n) in TASKS}


def sarscov2_enabled():
    return config["sarscov2"]["enabled"] and sarscov2_dir().is_dir()


def sarscov2_dir():
    return Path(config["data"].get("shared_dir") or "") / "sars_cov_2"


def planned_jobs():
    """(stage, tokenizer, task) of every benchmarked job the study plans (vqdna.workflow.plan)."""
    paths = (tokenizer_metrics() + pretrain_metrics() + finetune_metrics() + probe_metrics() + baseline_metrics()
             + ablation_metrics() + ["efficiency.tsv"] + (["sarscov2.tsv"] if sarscov2_enabled() else []))
    return plan.jobs(paths)


if workflow.is_main_process:  # once per run (dry runs too), never in a cluster job
    try:
        slots = workflow.cores
    except Exception:  # --cores not given: Snakemake says so itself
        slots = 1
    print(plan.describe(planned_jobs(), slots, config["profile"]), file=sys.stderr)


def largest_slurm_node():
    """CPUs of the largest node `sinfo` reports; None without Slurm (or when it does not answer)."""
    import shutil
    import subprocess

    if not shutil.which("sinfo"):
        return None
    try:
        shown = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    counts = [int(c) for c in shown.stdout.replace("+", "").split() if c.isdigit()]
    return max(counts) if shown.returncode == 0 and counts else None


# A cluster run: the Snakemake profile's `cores` declares the CPUs of one node (profiles/slurm). No job may
# ask for more (it would pend forever): the plan stops here, naming the rule and the limit.
if workflow.is_main_process and not workflow.local_exec and workflow.resource_settings.cores:
    study.check_cpus(config, workflow.resource_settings.cores, "the Snakemake profile's cores: CPUs of one node",
                     largest_slurm_node())


# Every file the summary notebook writes, declared: tables as .csv (data) + .md (display), and
# one ablation table and figure per ablation knob of the plan.
SUMMARY_TABLES = ["finetune", "linear_probe", "pretext", "variance", "average_ranks", "tokenizers",
                  "tokenizer_comparison", "species_length", "task_differences", "effects", "claims"]
SUMMARY_FIGURES = ["finetune_scores", "linear_probe_scores", "finetune_ranks", "task_differences_finetune",
                   "task_differences_linear_probe"]


def summary_outputs():
    ablation_tables, ablation_figures = study.ablation_outputs(ABLATION_RUNS)
    tables = SUMMARY_TABLES + ablation_tables
    figures = SUMMARY_FIGURES + ablation_figures
    if not FINETUNE_TASKS:  # probe-only runs write no fine-tuning table or figure
        tables, figures = ([n for n in names if "finetune" not in n] for names in (tables, figures))
    out = {f"{t}_{ext}": f"{W}/summary/{t}.{ext}" for t in tables for ext in ("csv", "md")}
    out.update({f"figure_{f}": f"{W}/summary/figures/{f}.png" for f in figures})
    return out
