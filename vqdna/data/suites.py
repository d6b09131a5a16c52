"""Benchmark suites: the YAML definitions in ``benchmarks/`` and the prepared-task builder.

Config keys (all under ``config["data"]``; every one optional):

    gue_dir: path | null        GUE folder (``<gue_dir>/<group>/<task>/{train,dev,test}.csv``);
                                null or absent folder -> every GUE task is skipped with a reason
    shared_dir: path | null     folder with the other real sets (``sars_cov_2/``, ``cnnprom/``,
                                ``nucleic_transformer/``); null/absent -> those suites are skipped
    benchmarks_dir: path        suite YAML folder (default: the repository's ``benchmarks/``)
    seed: int                   splits and subsampling (default 0)
    gue_download: {url, sha256, timeout_s}   for :func:`download_gue`
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

GUE download (:func:`download_gue`): the official zip's sha256 is not published, so
``gue_download.sha256`` ships unset and nothing is unpacked until the user supplies a hash they
trust (config value or ``trusted_sha256=``); a mismatch refuses too. Offline it fails at once,
saying where to put the unpacked files.

Suite YAML schema (one file per suite; adding a task is one entry under ``tasks``)::

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
import hashlib
import logging
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from vqdna.core import contracts
from vqdna.data import corpus, tasks

log = logging.getLogger(__name__)

BENCHMARKS_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
GUE_URL = "https://drive.google.com/uc?export=download&id=1uOrwlf07qGQuruXqGXWMpPn8avBoW7T-"
DEFAULT_FRACTIONS = {"train": 0.8, "dev": 0.1, "test": 0.1}
EVALUATION_KEYS = set(contracts.TASK.keys["evaluation"].keys)  # a task's `evaluation` (schema above)


# ---------------------------------------------------------------- definitions


def load_suites(benchmarks_dir=None) -> dict[str, dict]:
    """Every ``*.yaml`` suite file, keyed by its ``suite`` name; each task already merged with
    the suite's ``defaults``. Each file is checked against the closed suite schema
    (:mod:`vqdna.core.contracts`: every key typed and in range, each format's params, no key or task
    written twice, no suite name used by two files); every error names the file, the task and
    the key."""
    suites, files = {}, {}
    for path in sorted(Path(benchmarks_dir or BENCHMARKS_DIR).glob("*.yaml")):
        suite = contracts.read_yaml(path)
        contracts.check_suite_file(path, suite)
        name = suite["suite"]
        if name in files:
            raise ValueError(f"{path}: suite name {name!r} is already used by {files[name]}")
        files[name] = path
        defaults = suite.get("defaults") or {}
        suite["tasks"] = {task: _merge(defaults, spec or {}) for task, spec in suite["tasks"].items()}
        for task, spec in suite["tasks"].items():
            contracts.check_task(path, task, spec)
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


def check_params(fmt: str, params: dict, where: str) -> None:
    """A builder parameter the format does not know, or of the wrong type, is an error naming it
    (a typo would otherwise silently run with the default)."""
    contracts.check_params(fmt, params, where)


def _merge(base: dict, override: dict) -> dict:
    """``override`` over ``base``; nested dicts (protocol, params) are merged key by key."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return merged


def _options(config: dict, suite: str) -> dict:
    return (config.get("data", {}).get("suites", {}) or {}).get(suite, {}) or {}


def _location(config: dict, suite: dict) -> Path | None:
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
        options = _options(config, name)
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
            check_params(
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
    root = _location(config, suite)
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


# ---------------------------------------------------------------- building one task


def prepare_task(suite: str, task: str, config: dict, out_dir) -> Path:
    """Build one task into the prepared-task folder ``out_dir`` (see docs/design.md), atomically.

    Applies the input policy, ``max_length`` (error unless ``truncate``), ``max_train`` and the
    label checks; ``meta.json`` records the protocol, paper numbers, source and every deviation.
    """
    definition = load_suites(config.get("data", {}).get("benchmarks_dir"))[suite]
    options = _options(config, suite)
    spec = _merge(definition["tasks"][task], {"params": options.get("task_params", {}).get(task, {})})
    seed = int(config.get("data", {}).get("seed", 0))
    root = _location(config, definition)
    built = BUILDERS[spec["format"]](spec["params"], root, options, seed)
    splits, deviations = built["splits"], list(built.get("deviations", []))
    max_length = spec.get("max_length") or max(int(s["sequence"].str.len().max()) for s in splits.values())
    deviations += tasks.apply_max_length(
        splits, max_length, options.get("truncate", False), f"{suite}/{task} "
    )
    deviations += tasks.subsample_split(splits, options.get("max_train"), seed)
    notes = tasks.subsample_split(splits, options.get("max_dev"), seed, split="dev")
    num_classes = tasks.check_labels(splits, spec.get("num_classes"), where=_sources(spec, root, suite, task))
    splits = tasks.drop_source(splits)
    meta = {
        "suite": suite,
        "task": task,
        "num_classes": num_classes,
        "label_names": spec.get("label_names")
        or built.get("label_names")
        or [str(i) for i in range(num_classes)],
        "metric": spec["metric"],
        "max_length": int(max_length),
        "protocol": spec.get("protocol", {}),
        "coverage_bp": spec.get("coverage_bp"),
        "mode": "reduced-train" if any(d.startswith("reduced-train") for d in deviations) else "full",
        "deviations": deviations,
        "notes": notes,
        "paper": spec.get("paper", {}),
        "paper_units": definition.get("paper_units"),
        "official_rows": spec.get("official_rows"),
        "label_source": definition.get("label_source"),
        "description": spec.get("description", definition.get("description")),
        "source": {
            "format": spec["format"],
            "location": str(root) if root else None,
            "params": spec["params"],
            "seed": seed,
            **built.get("source", {}),
        },
    }
    return tasks.write_task(out_dir, splits, meta)


def _sources(spec: dict, root, suite: str, task: str) -> str:
    """``suite/task (input files)``: what a label or split error is about."""
    params = spec.get("params", {})
    if spec["format"] == "gue_csv":
        files = [Path(root) / params["path"]]
    else:
        files = [Path(root) / params[key] for key in ("fasta", "labels", "path") if key in params]
        files += [Path(root) / f for f in params.get("files", [])]
    return f"{suite}/{task} ({', '.join(map(str, files)) or 'embedded genomes'})"


def _build_gue_csv(params, root, options, seed):
    splits, deviations = tasks.load_gue_task(
        root / params["path"],
        options.get("reduced_train", False),
        options.get("reduced_dev_fraction", 0.1),
        seed,
        keep_source=True,
    )
    return {"splits": splits, "deviations": deviations}


def _build_fasta_classes(params, root, options, seed):
    splits = tasks.fasta_classes_task(
        [root / f for f in params["files"]],
        params.get("fractions", DEFAULT_FRACTIONS),
        seed,
        params.get("unique_ids", True),
        keep_source=True,
    )
    return {"splits": splits}


def _build_csv_table(params, root, options, seed):
    splits = tasks.csv_table_task(
        root / params["path"],
        params.get("sequence_col", "sequence"),
        params.get("label_col", "label"),
        params.get("fractions", DEFAULT_FRACTIONS),
        seed,
        keep_source=True,
    )
    return {"splits": splits}


def _build_genome_fragments(params, root, options, seed):
    splits, label_names, genomes = tasks.genome_fragments_task(
        root / params["fasta"],
        root / params["labels"],
        params.get("name_col", "name"),
        params.get("label_col", "label"),
        params["fragment_length"],
        params["min_genomes"],
        params.get("fractions", DEFAULT_FRACTIONS),
        seed,
        params.get("max_n_fraction", 0.0),
        params.get("fragments_per_genome"),
    )
    return {"splits": splits, "label_names": label_names, "source": {"genomes": genomes}}


def _build_annotation(params, root, options, seed):
    splits, label_names, provenance = corpus.annotation_task(seed=seed, **params)
    return {"splits": splits, "label_names": label_names, "source": provenance}


#: the ``params`` each format's builder reads (their types: ``contracts.FORMAT_PARAMS``)
PARAMS = {fmt: set(schema.keys) for fmt, schema in contracts.FORMAT_PARAMS.items()}
BUILDERS = {
    "gue_csv": _build_gue_csv,
    "fasta_classes": _build_fasta_classes,
    "csv_table": _build_csv_table,
    "genome_fragments": _build_genome_fragments,
    "annotation": _build_annotation,
}


# ---------------------------------------------------------------- fetching GUE


def download_gue(config: dict, trusted_sha256: str | None = None) -> Path:
    """Fetch the official GUE zip, check its sha256 and unpack it so ``data.gue_dir`` exists.

    The expected hash is ``trusted_sha256`` or ``data.gue_download.sha256``; with neither, or
    on a mismatch, nothing is unpacked (the error shows the downloaded file's hash so a user who
    trusts it can pass it). Offline, it fails at once saying where to put the files.
    """
    settings = config.get("data", {})
    gue_dir = settings.get("gue_dir")
    if not gue_dir:
        raise ValueError("set data.gue_dir to the folder GUE should be unpacked to")
    gue_dir = Path(gue_dir)
    if gue_dir.is_dir() and any(gue_dir.iterdir()):
        return gue_dir
    fetch = settings.get("gue_download", {}) or {}
    expected = trusted_sha256 or fetch.get("sha256")
    url = fetch.get("url", GUE_URL)
    where = (
        f"download GUE.zip yourself ({url}) and unpack it so that {gue_dir}/tf/0/train.csv exists "
        f"(layout <gue_dir>/<group>/<task>/{{train,dev,test}}.csv), or point data.gue_dir at it"
    )
    gue_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=gue_dir.parent) as tmp:
        archive = Path(tmp) / "GUE.zip"
        try:
            timeout = fetch.get("timeout_s", 15)
            with urllib.request.urlopen(url, timeout=timeout) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError) as error:
            raise RuntimeError(f"cannot fetch GUE ({error}); offline: {where}") from error
        actual = hashlib.sha256(archive.read_bytes()).hexdigest()
        if expected is None:
            raise RuntimeError(
                f"no trusted sha256 for GUE (data.gue_download.sha256 is unset); the "
                f"downloaded file has sha256 {actual}: pass it if you trust it"
            )
        if actual != expected.lower():
            raise RuntimeError(f"GUE archive sha256 {actual} does not match the trusted {expected}")
        _unpack_gue(archive, Path(tmp) / "unpacked", gue_dir)
    return gue_dir


def _unpack_gue(archive: Path, scratch: Path, gue_dir: Path) -> None:
    """Unzip (refusing absolute or ``..`` member paths) and move the folder holding ``tf/`` to ``gue_dir``."""
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.namelist():
            if member.startswith("/") or ".." in Path(member).parts:
                raise RuntimeError(f"{archive}: unsafe member path {member!r}")
        bundle.extractall(scratch)
    roots = [p.parent.parent for p in scratch.rglob("tf/0") if "__MACOSX" not in p.parts]
    if not roots:
        raise RuntimeError(f"{archive}: no tf/0 folder inside; not the GUE archive")
    shutil.move(str(roots[0]), str(gue_dir))
