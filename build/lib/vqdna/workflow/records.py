"""The metrics record every workflow job writes: its JSON schema, validation at write time
(:func:`write_record`, so a malformed record fails its own job, not the summary) and at read
time (:func:`collect_metrics`, one row per record with its protocol and coverage labels).

Scores are stored as fractions. Every row carries a ``protocol`` label built from the run's
deviations from the paper's protocol ("full protocol" when there are none), and every
fine-tuning and linear-probe row its bp ``coverage`` (the bases each tokenizer saw,
vqdna.train.stages.coverage); tables never pool or rank rows whose labels differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

import jsonschema
import pandas as pd

from vqdna.core.metrics import METRICS, OUTCOME_FIELDS, bootstrap_interval
from vqdna.core.protocol import SHORT_FINETUNE, deviation_tags, profile_deviations, protocol_label
from vqdna.train.coverage import COVERAGE_FIELDS
from vqdna.workflow import study
from vqdna.workflow.study import base_name

if TYPE_CHECKING:
    from vqdna.tokenizers import Tokenizer

#: coverage of records written before coverage was recorded; the k-mer reference reads whole sequences
UNRECORDED_COVERAGE = "not recorded"
WHOLE_SEQUENCES = "whole sequences"

_FRACTION = {"type": "number", "minimum": -1, "maximum": 1}
_ABLATION = {
    "oneOf": [
        {"type": "null"},
        {
            "type": "object",
            "required": ["name", "value"],
            "properties": {"name": {"type": "string"}, "value": {"type": ["number", "string", "boolean"]}},
        },
    ]
}
_COMMON = {
    "tokenizer": {"type": "string", "minLength": 1},
    "seed": {"type": "integer"},
    "deviations": {"type": "array", "items": {"type": "string"}},
    "ablation": _ABLATION,
}
METRICS_SCHEMA = {
    "type": "object",
    "required": ["stage"],
    "properties": {
        "stage": {"enum": ["finetune", "linear_probe", "baseline", "tokenizer", "pretrain", "sarscov2"]}
    },
    "oneOf": [
        {  # one classification run: a fine-tuned / probed model, or the k-mer spectrum reference
            "properties": {
                "stage": {"enum": ["finetune", "linear_probe", "baseline"]},
                **_COMMON,
                "suite": {"type": "string", "minLength": 1},
                "task": {"type": "string", "minLength": 1},
                "metric": {"enum": ["mcc", "macro_f1", "accuracy"]},
                "mcc": _FRACTION,
                "macro_f1": _FRACTION,
                "accuracy": _FRACTION,
                "paper": {"type": "object", "additionalProperties": {"type": "number"}},
                **{k: {"type": "array", "items": {"type": "integer", "minimum": 0}} for k in OUTCOME_FIELDS},
            },
            "required": [
                "stage",
                "suite",
                "task",
                "tokenizer",
                "seed",
                "metric",
                "mcc",
                "macro_f1",
                "accuracy",
                "deviations",
            ],
            # a model's run also says which bases it saw (vqdna.train.stages.coverage)
            "if": {"properties": {"stage": {"enum": ["finetune", "linear_probe"]}}},
            "then": {
                "properties": {
                    "coverage": {"type": "string", "minLength": 1},
                    "bp_seen": {
                        "type": "object",
                        "required": ["mean", "min", "max"],
                        "properties": {k: {"type": "number", "minimum": 0} for k in ("mean", "min", "max")},
                    },
                    "n_cut": {"type": "integer", "minimum": 0},
                },
                "required": ["coverage", "bp_seen", "n_cut"],
            },
        },
        {  # one trained VQ/HRQ tokenizer (Tables 7/8 reconstruction, Table 1 code usage)
            "properties": {
                "stage": {"const": "tokenizer"},
                **_COMMON,
                "recon_accuracy": {"type": "number", "minimum": 0, "maximum": 1},
                "code_usage": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "number", "minimum": 0, "maximum": 1},
                },
                "perplexity": {"type": "array", "minItems": 1, "items": {"type": "number", "minimum": 0}},
                "bp_per_token": {"type": "number", "exclusiveMinimum": 0},
            },
            "required": ["stage", "tokenizer", "recon_accuracy", "code_usage", "perplexity", "bp_per_token"],
        },
        {  # one pre-trained encoder: gathered with the rest, used by no table here
            "properties": {"stage": {"const": "pretrain"}, **_COMMON},
            "required": ["stage", "tokenizer"],
        },
        {  # the SARS-CoV-2 analysis (paper Fig. 5): its own page, not gathered into the tables
            "properties": {
                "stage": {"const": "sarscov2"},
                "n_genomes": {"type": "integer", "minimum": 1},
                "lineage_structure": {"type": "array"},
                "code_changes": {"type": "array"},
                "fine_level_more_sensitive": {"type": "string"},
            },
            "required": [
                "stage",
                "n_genomes",
                "lineage_structure",
                "code_changes",
                "fine_level_more_sensitive",
            ],
        },
    ],
}
_VALIDATOR = jsonschema.Draft202012Validator(METRICS_SCHEMA)


def validate_record(record: Mapping) -> dict:
    """Check one metrics JSON record against :data:`METRICS_SCHEMA`; return it as a dict.

    Classification records (``stage`` finetune / linear_probe / baseline) need ``suite, task,
    tokenizer, seed, metric`` (the task's primary metric: ``mcc`` or ``macro_f1``), the three
    scores ``mcc, macro_f1, accuracy`` as fractions, and ``deviations`` (list of str, empty for
    the paper's protocol); optional ``paper`` ({published model name: score x100}). Fine-tuning
    and linear-probe records also need ``coverage`` (label), ``bp_seen`` ({mean, min, max} bp
    per sequence) and ``n_cut`` (sequences longer than the coverage).
    Tokenizer records (``stage`` tokenizer) need ``tokenizer, recon_accuracy`` (fraction),
    ``code_usage`` (fractions) and ``perplexity`` (one entry per codebook level; one "level" =
    the whole vocabulary for char / k-mer / BPE) and ``bp_per_token``. Pre-training records
    (``stage`` pretrain) need ``tokenizer`` only.
    Any record may carry ``ablation``: null or ``{"name": knob, "value": v}``; extra keys are
    allowed. Raises ``ValueError`` with the schema's message.
    """
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(dict(record)))
    if error is not None:
        raise ValueError(f"invalid metrics record: {error.message}")
    return dict(record)


def collect_metrics(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Read and validate metrics JSONs -> one row per record.

    Columns: the record's keys plus ``score`` (the primary metric's value), ``protocol``,
    ``coverage`` (see the module docstring),
    ``base_tokenizer`` (``hrq~codebook_size=128`` -> ``hrq``), ``ablation_name``,
    ``ablation_value`` and ``path``. A file listed twice (the workflow asks for a base model's
    runs both as study and as ablation outputs) is read once.
    """
    rows = []
    for path in dict.fromkeys(Path(p).resolve() for p in paths):
        try:
            record = validate_record(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as error:  # JSONDecodeError is a ValueError
            raise ValueError(f"{path}: {error}") from error
        ablation = record.pop("ablation", None) or {}
        record.update(
            path=str(path),
            ablation_name=ablation.get("name"),
            ablation_value=ablation.get("value"),
            base_tokenizer=base_name(record["tokenizer"]),
            protocol=protocol_label(record.get("deviations", [])),
            coverage=record.get("coverage")
            or (WHOLE_SEQUENCES if record.get("stage") == "baseline" else UNRECORDED_COVERAGE),
        )
        if "metric" in record:
            record["score"] = record[record["metric"]]
        rows.append(record)
    return pd.DataFrame(rows)


def write_record(record: Mapping, path: str | Path) -> dict:
    """Validate ``record`` (:func:`validate_record`) and write it to ``path`` as JSON; the job
    fails here, before anything is written, when the record is malformed. Returns the record."""
    record = validate_record(record)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(record, indent=2, default=_plain))
    return record


def _plain(value):
    """numpy scalars (pandas' to_dict hands them out) as the Python numbers they hold."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON: {value!r} ({type(value).__name__})")


# ------------------------------------------------------------------ building records


def ablation_of(name: str) -> dict | None:
    """``hrq~codebook_size=128`` -> ``{"name": "codebook_size", "value": 128}``; None for a base name."""
    _, knob, value = study.parse_variant(name)
    return None if knob is None else {"name": knob, "value": value}


def world_size(history: list[dict]) -> int:
    """How many data-parallel processes trained a run, from its history (1 when not recorded)."""
    return history[-1].get("world_size", 1) if history else 1


def _world_field(world: int) -> dict:
    """``{"world_size": n}`` for a run trained by n > 1 processes; nothing for one process, so
    single-process records stay as they always were."""
    return {"world_size": world} if world > 1 else {}


def tokenizer_record(name: str, spec: dict, stats: dict, profile: str, seed: int = 0, world: int = 1) -> dict:
    """The metrics JSON of a tokenizer job (``seed``: its training seed; ``world``: how many
    processes trained it, recorded as ``world_size`` when > 1)."""
    return {
        "stage": "tokenizer",
        "tokenizer": name,
        "type": spec["type"],
        "seed": seed,
        "ablation": ablation_of(name),
        "deviations": profile_deviations(profile),
        "profile": profile,
        "spec": spec,
        **stats,
        **_world_field(world),
    }


def pretrain_record(
    name: str,
    tokenizer: Tokenizer,
    encoder: dict,
    settings: dict,
    history: list[dict],
    profile: str,
    deviations: list[str] = (),
    replicate: int = 0,
) -> dict:
    """The metrics JSON of a pre-training job: final losses and the pretext check, i.e. the
    held-out masked-token loss against the unigram (frequency-only) loss of the same targets
    (``unigram_margin``: nats below it; ``unigram_margin_fraction``: as a share of it), and
    ``world_size`` when more than one process trained it."""
    last = history[-1]
    val, unigram = last.get("val_loss"), last.get("unigram_loss")
    margin = None if val is None or unigram is None else unigram - val
    return {
        "stage": "pretrain",
        "tokenizer": name,
        "seed": replicate,
        "replicate": replicate,
        "ablation": ablation_of(name),
        "profile": profile,
        "tokenizer_type": tokenizer.name,
        "encoder": encoder,
        "pretrain": settings,
        "vocab_size": tokenizer.vocab_size,
        "mlm_span": getattr(tokenizer, "mlm_span", 1)
        if settings.get("masking", "tokenizer") == "tokenizer"
        else 1,
        "final_train_loss": last["train_loss"],
        "final_val_loss": val,
        "final_val_accuracy": last.get("val_accuracy"),
        "unigram_loss": unigram,
        "unigram_margin": margin,
        "unigram_margin_fraction": None if margin is None else margin / unigram,
        # the position-aware and neighbour baselines of vqdna.train.pretext (None in older runs)
        "position_loss": last.get("position_loss"),
        "neighbour_loss": last.get("neighbour_loss"),
        "steps_per_s": last.get("steps_per_s"),
        "deviations": sorted(set(profile_deviations(profile)) | set(deviations)),
        **_world_field(world_size(history)),
    }


def evaluation_record(
    stage: str,
    task: tuple[dict, dict],
    name: str,
    seed: int,
    result: dict,
    profile: str,
    settings: dict | None = None,
    replicate: int = 0,
) -> dict:
    """The metrics JSON of a fine-tuning / linear-probe job: test scores (fractions), each with
    its 95% test-set bootstrap interval (``test_interval``, from the confusion matrix), the
    task's primary metric, the paper's published numbers and every protocol deviation.
    ``replicate``: the full-pipeline replicate; ``seed``: the fine-tuning seed within it."""
    _, meta = task
    deviations = (
        deviation_tags(meta.get("deviations", []))
        + profile_deviations(profile)
        + list(result.get("pretrain_deviations", []))
    )
    if stage == "finetune" and (settings or {}).get("protocol") != "benchmark":
        deviations.append(SHORT_FINETUNE)
    notes = list(meta.get("notes", []))  # conditions shown beside the score, not a protocol group
    if result.get("n_cut"):
        how = (
            "read in pooled windows"
            if result["coverage_pooling"] == "sliding"
            else f"cut to the {result['coverage']} window"
        )
        notes.append(
            f"{result['n_cut']} of {result['n_sequences']} sequences longer than "
            f"{result['coverage_bp']} bp, {how}"
        )
    return {
        "stage": stage,
        "suite": meta["suite"],
        "task": meta["task"],
        "tokenizer": name,
        "seed": seed,
        "replicate": replicate,
        "test_interval": {m: bootstrap_interval(result["confusion_matrix"], m, seed=seed) for m in METRICS},
        "metric": meta["metric"],
        **{k: float(result["test"][k]) for k in ("mcc", "macro_f1", "accuracy")},
        "deviations": sorted(set(deviations)),
        "deviation_details": meta.get("deviations", []),
        "notes": notes,
        "paper": meta.get("paper", {}),
        "ablation": ablation_of(name),
        "profile": profile,
        "settings": result.get("settings", settings),
        "max_tokens": result["max_tokens"],
        "truncated_fraction": result["truncated_fraction"],
        "confusion_matrix": result["confusion_matrix"],
        **{k: result[k] for k in OUTCOME_FIELDS if k in result},
        "vocab_usage": result.get("vocab_usage"),
        "task_recon_accuracy": result.get("task_recon_accuracy"),
        "select_by": result.get("select_by"),
        "best_step": result.get("best_step"),
        **{k: result.get(k) for k in COVERAGE_FIELDS},
    }
