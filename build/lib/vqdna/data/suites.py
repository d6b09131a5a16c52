"""Benchmark suites: the YAML definitions in ``benchmarks/`` and which of their tasks a config runs
(plan time; building a task is vqdna.data.prepare, fetching GUE vqdna.data.gue).

Config keys (all under ``config["data"]``; every one optional):

    gue_dir: path | null        GUE folder (``<gue_dir>/<group>/<task>/{train,dev,test}.csv``);
                                null or absent folder -> every GUE task is skipped with a reason
    shared_dir: path | null     folder with the other real sets (``sars_cov_2/``, ``cnnprom/``,
                                ``nucleic_transformer/``); null/absent -> those suites are skipped
    benchmarks_dir: path        suite YAML folder (default: the repository's ``benchmarks/``)
    seed: int                   splits and subsampling (default 0)
    gue_download: {url, sha256, timeout_s}   for :func:`vqdna.data.gue.download_gue`
    suites:
      <suite>:                  gue | embedded | covid_mini | extra (= the YAML ``suite`` names)
        enabled: bool           default: the suite file's ``enabled_by_default``
        tasks: all | [names]    default all
        max_train: int | null   seeded stratified train subsample, recorded in ``deviations``
        max_dev: int | null     seeded stratified dev subsample (checkpoint selection only; test
                                stays whole), recorded in ``notes``: shown beside every score of the
                                task, not a protocol group of its own
        truncate: bool          cut sequences above ``max_length`` instead of failing (default false)
        reduced_train: bool     GUE-format tasks without train.csv: train on dev (default false)
        reduced_dev_fraction: float   share of dev kept as internal dev in reduced-train (0.1)
        task_params: {task: {param: value}}   overrides a task's builder ``params``

Suite YAML schema (one file per suite; adding a task is one entry under ``tasks``; the closed
schema that checks it is vqdna.data.suite_schema)::

    suite: name                 description: text          enabled_by_default: bool
    location: gue_dir | shared_dir | null    (the config key holding the data folder)
    label_source: text          paper_units: text (optional)
    defaults: {...}             task keys shared by every task (protocol/params merged key by key)
    tasks:
      <task>:
        format: gue_csv | fasta_classes | csv_table | genome_fragments | annotation
        params: {...}           builder arguments; paths are relative to ``location``
        metric: mcc | macro_f1  num_classes: int   label_names: [...]   (optional)
        max_length: int         (optional for window/fragment formats: the window length)
        coverage_bp: int        (optional) bp of each sequence every tokenizer sees; the config's
                                finetune/linear_probe ``max_bp`` lowers it further (stages.coverage)
        evaluation: {finetune: bool, linear_probe: {max_bp, window, pooling}}   (optional) how the
                                task is scored where the config's finetune / linear_probe sections
                                do not fit it: a long sequence is read whole only by the
                                window-pooled probe, so the species tasks are not fine-tuned
                                (:func:`finetunes`, :func:`probe_settings`)
        protocol: {epochs, lr, batch_size, max_tokens, warmup_steps}   (max_tokens: the official
                                BPE-token cap, recorded only: inputs are set in bp, stages.coverage)
        paper: {model: score}   official_rows: {train, dev, test}   description: text
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from vqdna.core.files import read_yaml
from vqdna.data import suite_schema

log = logging.getLogger(__name__)

BENCHMARKS_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


# ---------------------------------------------------------------- definitions


def load_suites(benchmarks_dir=None) -> dict[str, dict]:
    """Every ``*.yaml`` suite file, keyed by its ``suite`` name; each task already merged with
    the suite's ``defaults``. Each file is checked against the closed suite schema
    (:mod:`vqdna.data.suite_schema`: every key typed and in range, each format's params, no key or task
    written twice, no suite name used by two files); every error names the file, the task and
    the key."""
    suites, files = {}, {}
    for path in sorted(Path(benchmarks_dir or BENCHMARKS_DIR).glob("*.yaml")):
        suite = read_yaml(path)
        suite_schema.check_suite_file(path, suite)
        name = suite["suite"]
        if name in files:
            raise ValueError(f"{path}: suite name {name!r} is already used by {files[name]}")
        files[name] = path
        defaults = suite.get("defaults") or {}
        suite["tasks"] = {task: merge(defaults, spec or {}) for task, spec in suite["tasks"].items()}
        for task, spec in suite["tasks"].items():
            suite_schema.check_task(path, task, spec)
        suites[name] = suite
    return suites


@functools.lru_cache(maxsize=None)
def _evaluations(benchmarks_dir) -> dict[tuple[str, str], dict]:
    """Every task's ``evaluation``, read once per process: the workflow asks for it per job, and
    reading the suite files takes about 30 ms."""
    return {
        (name, task): spec.get("evaluation") or {}
        for name, suite in load_suites(benchmarks_dir).items()
        for task, spec in suite["tasks"].items()
    }


def _evaluation(config: dict, suite: str, task: str) -> dict:
    return _evaluations(config.get("data", {}).get("benchmarks_dir"))[(suite, task)]


def finetunes(config: dict, suite: str, task: str) -> bool:
    """Whether the study fine-tunes on ``suite/task``: the config's ``finetune.enabled``
    (default true) and the task's ``evaluation.finetune`` (default true)."""
    enabled = config.get("finetune", {}).get("enabled", True)
    return bool(enabled and _evaluation(config, suite, task).get("finetune", True))


def probe_settings(config: dict, suite: str, task: str) -> dict:
    """The linear-probe settings of ``suite/task``: the config's ``linear_probe`` section with
    the task's ``evaluation.linear_probe`` over it (a long sequence is probed in pooled windows)."""
    return {**config.get("linear_probe", {}), **(_evaluation(config, suite, task).get("linear_probe") or {})}


def merge(base: dict, override: dict) -> dict:
    """``override`` over ``base``; nested dicts (protocol, params) are merged key by key."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return merged


def suite_options(config: dict, suite: str) -> dict:
    """The config's ``data.suites.<suite>`` options (empty when absent)."""
    return (config.get("data", {}).get("suites", {}) or {}).get(suite, {}) or {}


def data_folder(config: dict, suite: dict) -> Path | None:
    """The folder the suite's ``location`` key names in ``config["data"]`` (None when unset)."""
    key = suite.get("location")
    value = config.get("data", {}).get(key) if key else None
    return Path(value) if value else None


# ---------------------------------------------------------------- which tasks run


def plan_tasks(config: dict) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """(tasks to run, skipped tasks with a reason) for the suites and tasks config enables. A
    task the config names (``tasks: [...]``) whose data is missing stops the plan with the path
    named, unless its suite is ``optional: true``; with ``tasks: all`` the tasks whose data is
    present run and the others are skipped with their reason (a fresh machine without data)."""
    suites = load_suites(config.get("data", {}).get("benchmarks_dir"))
    run, skipped = [], []
    for name, suite in suites.items():
        options = suite_options(config, name)
        if not options.get("enabled", suite.get("enabled_by_default", False)):
            continue
        wanted = options.get("tasks", "all")
        tasks = list(suite["tasks"]) if wanted in ("all", None) else wanted
        for task in tasks:
            if task not in suite["tasks"]:
                raise ValueError(f"config enables unknown task {task!r} of suite {name!r}")
        for task, params in (options.get("task_params") or {}).items():
            if task not in suite["tasks"]:
                raise ValueError(f"data.suites.{name}.task_params: unknown task {task!r} of suite {name!r}")
            suite_schema.check_params(  # a typo would otherwise silently run with the default
                suite["tasks"][task]["format"], params or {}, f"data.suites.{name}.task_params.{task}"
            )
        named = wanted not in ("all", None) and not options.get("optional", False)
        for task in tasks:
            reason = _missing_input(suite, suite["tasks"][task], config, options)
            if reason and named:
                raise ValueError(
                    f"data.suites.{name}.tasks names {task!r}, but its data is missing: {reason}. "
                    f"Put the data there, or set data.suites.{name}.optional: true to skip a named "
                    f"task whose data is absent"
                )
            if reason:
                skipped.append((name, task, reason))
            else:
                run.append((name, task))
    return run, skipped


def enabled_tasks(config: dict) -> list[tuple[str, str]]:
    """``[(suite, task)]`` that config enables and whose input files exist; every skipped task
    is logged with its reason (see :func:`plan_tasks`)."""
    run, skipped = plan_tasks(config)
    for suite, task, reason in skipped:
        log.warning("skipping %s/%s: %s", suite, task, reason)
    return run


def _missing_input(suite: dict, spec: dict, config: dict, options: dict) -> str | None:
    if spec["format"] == "annotation":
        return None
    root = data_folder(config, suite)
    if root is None or not root.is_dir():
        return f"data.{suite['location']} is not set or is not a folder ({root})"
    params = spec.get("params", {})
    if spec["format"] == "gue_csv":
        folder = root / params["path"]
        if not folder.is_dir():
            return f"{folder} absent"
        if not (folder / "train.csv").exists() and not options.get("reduced_train", False):
            return f"{folder}/train.csv absent (enable reduced_train to train on dev)"
        needed = [folder / "dev.csv", folder / "test.csv"]
    else:
        needed = [root / params[key] for key in ("fasta", "labels", "path") if key in params]
        needed += [root / f for f in params.get("files", [])]
    absent = [str(p) for p in needed if not p.exists()]
    return f"missing {absent}" if absent else None
