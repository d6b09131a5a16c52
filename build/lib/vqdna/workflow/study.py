"""The study plan: which tokenizers, models and ablation runs a config asks for.

The Snakefile only expands what these functions return, so the plan is testable without
Snakemake. Names are the wildcards that appear in output paths and in every table:

- a *tokenizer* name is a key of ``config["tokenizers"]`` (``hrq``) or an ablation variant of
  one (``hrq~codebook_size=128``);
- a *model* name is a tokenizer name, optionally with a pre-training override
  (``hrq~mask_ratio=0.15``): the same tokenizer artefact is reused, only pre-training reruns.

A *replicate* ``r`` is one run of the whole pipeline: the learned tokenizer trained with seed
``r`` (:func:`tokenizer_seed`), pre-training with seed ``r`` and fine-tuning with the seeds
:func:`finetune_seed` derives from ``r`` and each of ``config["seeds"]``. Rule-based tokenizers
(char, k-mer) and BPE (deterministic for a given corpus) are built once, at seed 0.
"""

from __future__ import annotations

import copy
import json
import math

import yaml

#: ablation knobs that change the tokenizer (VQ-VAE/HRQ) and so retrain it
TOKENIZER_ABLATIONS = ("codebook_size", "code_dim", "levels", "ema", "dead_code_threshold", "stride")
#: ablation knobs that only change masked-modeling pre-training
PRETRAIN_ABLATIONS = ("mask_ratio",)
#: the knobs the paper ablates, with the number of its table (Li et al. 2024, Tables 7-9)
PAPER_TABLES = {"codebook_size": 7, "code_dim": 8, "mask_ratio": 9}
CODEBOOK_TYPES = ("vq", "hrq")
SEPARATOR = "~"
#: tokenizer types whose training draws random numbers: retrained in every replicate
SEEDED_TOKENIZER_TYPES = CODEBOOK_TYPES


def variant_name(base: str, knob: str, value) -> str:
    """``hrq`` + ``codebook_size`` + 128 -> ``hrq~codebook_size=128`` (lower-case booleans)."""
    if isinstance(value, bool):
        value = str(value).lower()
    return f"{base}{SEPARATOR}{knob}={value}"


def parse_variant(name: str) -> tuple[str, str | None, object]:
    """``hrq~codebook_size=128`` -> ``("hrq", "codebook_size", 128)``; ``hrq`` -> ``("hrq", None, None)``."""
    base, _, override = name.partition(SEPARATOR)
    if not override:
        return base, None, None
    knob, value = override.split("=", 1)
    return base, knob, yaml.safe_load(value)


def base_name(name: str) -> str:
    """The config tokenizer a variant derives from."""
    return parse_variant(name)[0]


def tokenizer_spec(config: dict, name: str) -> dict:
    """Resolved parameters of a tokenizer name: its config entry, for vq/hrq merged over the
    shared ``vqvae`` section, with an ablation override applied. A ``levels`` variant deeper
    than the encoder gets ``depth = levels`` (one encoder block per level)."""
    base, knob, value = parse_variant(name)
    if base not in config["tokenizers"]:
        raise KeyError(f"unknown tokenizer {base!r}; config has {sorted(config['tokenizers'])}")
    entry = copy.deepcopy(config["tokenizers"][base])
    if entry["type"] in CODEBOOK_TYPES:
        entry = {**copy.deepcopy(config["vqvae"]), **entry}
    if knob is not None:
        if knob not in TOKENIZER_ABLATIONS:
            raise KeyError(f"{name!r}: {knob!r} is not a tokenizer ablation {TOKENIZER_ABLATIONS}")
        entry[knob] = value
        if knob == "levels" and value > entry.get("depth", value):
            entry["depth"] = value  # each HRQ level taps its own encoder block
    if entry["type"] in CODEBOOK_TYPES:
        from vqdna.core.settings import VQVAEConfig, check_vq_training  # plan time: what VQVAE would refuse

        try:
            VQVAEConfig.from_spec(entry)
            check_vq_training(entry, f"tokenizer {name!r}")
        except ValueError as error:
            raise ValueError(f"tokenizer {name!r}: {error}") from error
    return entry


def model_spec(config: dict, name: str) -> dict:
    """``{"tokenizer": name, "pretrain": {...}}`` for a model name."""
    tokenizer, pretrain = name, copy.deepcopy(config["pretrain"])
    base, knob, value = parse_variant(name)
    if knob in PRETRAIN_ABLATIONS:
        tokenizer, pretrain[knob] = base, value
    tokenizer_spec(config, tokenizer)  # validates the name
    return {"tokenizer": tokenizer, "pretrain": pretrain}


def ablation_runs(config: dict) -> list[dict]:
    """One record per ablation run: ``{"ablation", "value", "tokenizer", "model"}``.

    Empty unless ``config["ablations"]["enabled"]``. Tokenizer knobs apply to the configured
    codebook tokenizers only; ``levels`` to HRQ only (levels=1 *is* VQ).
    """
    ablations = config.get("ablations", {})
    if not ablations.get("enabled"):
        return []
    runs = []
    for base in ablations.get("tokenizers", []):
        spec = tokenizer_spec(config, base)
        for knob in TOKENIZER_ABLATIONS + PRETRAIN_ABLATIONS:
            if knob == "levels" and spec["type"] != "hrq":
                continue
            for value in ablations.get(knob, []):
                current = spec.get(knob) if knob in TOKENIZER_ABLATIONS else config["pretrain"][knob]
                if knob == "code_dim" and current is None:
                    current = spec["dim"]
                is_default = same_knob_value(current, value)
                name = base if is_default else variant_name(base, knob, value)
                runs.append(
                    {
                        "ablation": knob,
                        "value": value,
                        "tokenizer_base": base,
                        "tokenizer": model_spec(config, name)["tokenizer"],
                        "model": name,
                    }
                )
    return runs


def ablation_defaults(runs: list[dict]) -> dict:
    """knob -> the study's default value of it (the run that *is* the base model)."""
    return {run["ablation"]: run["value"] for run in runs if run["model"] == run["tokenizer_base"]}


def ablation_outputs(runs: list[dict]) -> tuple[list[str], list[str]]:
    """(table stems, figure stems) the summary writes for these ablation runs: every knob's
    long table and figure, the paper layout of each knob the paper ablates (Tables 7-9), and
    one table of the knobs beyond the paper."""
    knobs = sorted({run["ablation"] for run in runs})
    tables = [f"ablation_{k}" for k in knobs] + [f"ablation_{k}_paper" for k in knobs if k in PAPER_TABLES]
    if any(k not in PAPER_TABLES for k in knobs):
        tables.append("ablations_beyond_paper")
    return tables, [f"ablation_{k}" for k in knobs]


def same_knob_value(a, b) -> bool:
    """Whether two ablation knob values name the same setting: a boolean equals only a boolean
    (numpy's included), numbers compare as numbers (``64 == 64.0``), and None equals nothing."""
    if a is None or b is None:
        return False
    a_bool, b_bool = (type(v).__name__ in ("bool", "bool_") for v in (a, b))
    if a_bool or b_bool:
        return a_bool and b_bool and bool(a) == bool(b)
    return math.isclose(float(a), float(b))


def parse_task(name: str) -> tuple[str, str]:
    """``"covid_mini/who_variant"`` -> ``("covid_mini", "who_variant")``."""
    suite, sep, task = name.partition("/")
    if not (suite and sep and task):
        raise ValueError(f"task {name!r} must be written suite/task")
    return suite, task


def compared_models(config: dict) -> list[str]:
    """The tokenizers of the main comparison: ``config["compared"]`` when given (an ablation study
    compares only the tokenizers it ablates), else every config tokenizer, in config order."""
    names = config.get("compared") or list(config["tokenizers"])
    unknown = [n for n in names if n not in config["tokenizers"]]
    if unknown:
        raise KeyError(f"compared: {unknown} are not config tokenizers {sorted(config['tokenizers'])}")
    return list(names)


def all_models(config: dict) -> list[str]:
    return list(dict.fromkeys(compared_models(config) + [r["model"] for r in ablation_runs(config)]))


def all_tokenizers(config: dict) -> list[str]:
    return list(dict.fromkeys(model_spec(config, m)["tokenizer"] for m in all_models(config)))


def with_ablation_defaults(records, runs: list[dict]):
    """Ablation tables need a row for the default value too, but that run *is* the base model
    (e.g. ``hrq`` at its configured codebook size), whose records carry no ablation label.
    Append a labelled copy of the base records for every such run. ``records``: the DataFrame
    of :func:`vqdna.workflow.records.collect_metrics`."""
    import pandas as pd

    copies = []
    for run in runs:
        if run["model"] != run["tokenizer_base"]:
            continue
        base = records[
            (records["tokenizer"] == run["model"])
            & records["ablation_name"].isna()
            & (records["stage"] != "baseline")
        ]
        copies.append(base.assign(ablation_name=run["ablation"], ablation_value=run["value"]))
    return pd.concat([records, *copies], ignore_index=True) if copies else records


def trusted_classes(config: dict) -> list[str]:
    """The tokenizer classes of one's own (``module:Class`` types) the config names: the only
    classes the workflow lets ``load_tokenizer`` import from the tokenizer folders it wrote
    (``trust_remote_code``); a folder naming any other class is refused."""
    return sorted({entry["type"] for entry in config["tokenizers"].values() if ":" in entry["type"]})


#: rules whose jobs take ``threads_per_job`` CPUs; sarscov2 and efficiency take a whole node
THREADED_RULES = ("train_tokenizer", "pretrain", "finetune", "linear_probe")
WHOLE_NODE_RULES = ("sarscov2", "efficiency")


def job_cpus(config: dict, node_cpus: int) -> dict[str, int]:
    """CPUs each rule's job asks a scheduler for (``cpus_per_task`` = its threads)."""
    threads = int(config.get("threads_per_job", 1))
    return {**dict.fromkeys(THREADED_RULES, threads), **dict.fromkeys(WHOLE_NODE_RULES, node_cpus)}


def check_cpus(config: dict, node_cpus: int, declared: str, largest_node: int | None = None) -> None:
    """A job may not ask for more CPUs than one node has: Slurm would keep it pending forever.
    ``node_cpus``: what the Snakemake profile declares a node has (``declared`` says where); every rule's
    request must fit it (else the plan stops here, naming the rule and the limit), and when the
    scheduler reports its largest node (``largest_node``), the declaration must fit that."""
    for rule, cpus in job_cpus(config, node_cpus).items():
        if cpus > node_cpus:
            raise ValueError(
                f"rule {rule}: its jobs ask for {cpus} CPUs (threads_per_job), more than the "
                f"{node_cpus} CPUs one node has ({declared}); lower threads_per_job"
            )
    if largest_node is not None and node_cpus > largest_node:
        rules = ", ".join(WHOLE_NODE_RULES)
        raise ValueError(
            f"{declared} declares nodes of {node_cpus} CPUs, but the largest node the scheduler "
            f"reports has {largest_node}: the jobs of rules {rules} (and any asking more than "
            f"{largest_node}) would pend forever; set it to at most {largest_node} (--cores {largest_node})"
        )


def replicates(config: dict) -> list[int]:
    """The full-pipeline replicates of the main comparison."""
    return [int(r) for r in config["replicates"]]


def ablation_replicates(config: dict, knob: str | None = None) -> list[int]:
    """Replicates of the encoder-level runs (pre-training, probe, fine-tuning) of ablation knob
    ``knob``: ``ablations.knob_replicates[knob]`` when given, else ``ablations.replicates``
    (default: the first replicate). Pre-training dominates an ablation's cost, so a study
    spends its replicates on the knobs whose claims need them."""
    ablations = config.get("ablations", {})
    default = ablations.get("replicates", replicates(config)[:1])
    chosen = ablations.get("knob_replicates", {}).get(knob, default)
    return [int(r) for r in chosen]


def ablation_tokenizer_replicates(config: dict) -> list[int]:
    """Training seeds of every ablated tokenizer (``ablations.tokenizer_replicates``, default:
    :func:`ablation_replicates`): training and measuring a tokenizer costs a fraction of
    pre-training an encoder on it, so reconstruction, usage and perplexity get more seeds."""
    ablations = config.get("ablations", {})
    return [int(r) for r in ablations.get("tokenizer_replicates", ablation_replicates(config))]


def tokenizer_seed(config: dict, name: str, replicate: int) -> int:
    """The training seed of tokenizer ``name`` in ``replicate``: the replicate for VQ/HRQ and for
    tokenizer classes of your own (``module:Class``: they may draw random numbers), 0 for the
    built-in tokenizers whose construction draws none."""
    kind = tokenizer_spec(config, name)["type"]
    return int(replicate) if kind in SEEDED_TOKENIZER_TYPES or ":" in kind else 0


def finetune_seed(replicate: int, seed: int) -> int:
    """The torch seed of fine-tuning run ``seed`` of ``replicate``: distinct for every pair, so
    that no two runs share a batch order or head initialisation."""
    return 1000 * int(replicate) + int(seed)


def mlm_shape(spec: dict) -> dict:
    """What sizes a masked LM over tokenizer ``spec`` without training it: its targets, and its
    embedding (learned over ``vocab_size``, or frozen ``codebook_sizes`` x ``code_dim``)."""
    kind = spec["type"]
    if kind in CODEBOOK_TYPES:
        from vqdna.core.settings import VQVAEConfig

        config = VQVAEConfig.from_spec(spec)
        return {
            "target_sizes": config.level_sizes,
            "codebook_sizes": config.level_sizes,
            "code_dim": config.code_dim or config.dim,
        }
    if ":" in kind:  # a tokenizer class of your own: its vocabulary is known once built
        from vqdna.tokenizers import tokenizer_class

        vocab = tokenizer_class(kind).from_spec(spec).vocab_size
        return {"target_sizes": [vocab], "vocab_size": vocab}
    vocab = {"char": 10, "kmer": 10 + 4 ** spec.get("k", 6), "bpe": spec.get("vocab_size", 0)}[kind]
    return {"target_sizes": [vocab], "vocab_size": vocab}


def memory_plan(config: dict) -> list[tuple]:
    """(estimate at the configured micro-batch, largest micro-batch that fits) for every VQ-VAE
    and masked LM the study trains, given ``config["gpu_memory_gb"]`` (vqdna.train.memory)."""
    from vqdna.train import memory

    budget = config["gpu_memory_gb"]
    precision = config.get("precision", "auto")
    precision = "bf16" if precision == "auto" else precision  # a GPU plan: auto is bf16 there
    checkpointing = bool(config.get("activation_checkpointing", False))
    plans, seen = [], set()
    for name in all_tokenizers(config):
        spec = tokenizer_spec(config, name)
        if spec["type"] not in CODEBOOK_TYPES:
            continue
        micro = spec.get("micro_batch_size") or spec["batch_size"]

        def vqvae(k, spec=spec):
            return memory.estimate_vqvae(spec, k, config["corpus"]["window"], precision, checkpointing)

        plans.append((name, vqvae(micro), memory.largest_micro_batch(vqvae, budget, micro)))
    for name in all_models(config):
        model = model_spec(config, name)
        settings = model["pretrain"]
        shape = mlm_shape(tokenizer_spec(config, model["tokenizer"]))
        key = (json.dumps(shape, sort_keys=True), json.dumps(settings, sort_keys=True))
        if key in seen:
            continue
        seen.add(key)
        micro = settings.get("micro_batch_size") or settings["batch_size"]

        def mlm(k, shape=shape, settings=settings):
            return memory.estimate_mlm(
                config["encoder"],
                micro_batch=k,
                tokens=settings["max_tokens"],
                mask_ratio=settings["mask_ratio"],
                precision=precision,
                checkpointing=checkpointing,
                **shape,
            )

        plans.append((name, mlm(micro), memory.largest_micro_batch(mlm, budget, micro)))
    return plans


def check_memory(config: dict) -> None:
    """Fail at plan time (``snakemake -n``) when a training stage cannot fit in the declared
    ``gpu_memory_gb``, naming the estimate and the largest micro-batch that fits. No-op when
    the config declares no GPU memory."""
    if not config.get("gpu_memory_gb"):
        return
    budget = config["gpu_memory_gb"]
    problems = [
        f"  {name}: {estimate}; largest micro-batch that fits: {fits or 'none (a smaller model)'}"
        for name, estimate, fits in memory_plan(config)
        if estimate.total_gb > budget
    ]
    if problems:
        raise ValueError(
            f"estimated peak GPU memory exceeds gpu_memory_gb={budget} (vqdna/train/memory.py); set "
            "vqvae.micro_batch_size / pretrain.micro_batch_size (gradients accumulate to the "
            "batch size) or activation_checkpointing:\n" + "\n".join(problems)
        )
