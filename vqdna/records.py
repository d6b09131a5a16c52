"""The metrics record every workflow job writes: its JSON schema, validation at write time
(:func:`write_record`, so a malformed record fails its own job, not the summary) and at read
time (:func:`collect_metrics`, one row per record with its protocol and coverage labels).

Scores are stored as fractions. Every row carries a ``protocol`` label built from the run's
deviations from the paper's protocol ("full protocol" when there are none), and every
fine-tuning and linear-probe row its bp ``coverage`` (the bases each tokenizer saw,
vqdna.stages.coverage); tables never pool or rank rows whose labels differ.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping

import jsonschema
import pandas as pd

from vqdna.study import base_name

#: label of rows without any deviation from the paper's protocol
FULL_PROTOCOL = "full protocol"
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
    "properties": {"stage": {"enum": ["finetune", "linear_probe", "baseline", "tokenizer", "pretrain"]}},
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
            },
            "required": ["stage", "suite", "task", "tokenizer", "seed", "metric",
                         "mcc", "macro_f1", "accuracy", "deviations"],
            # a model's run also says which bases it saw (vqdna.stages.coverage)
            "if": {"properties": {"stage": {"enum": ["finetune", "linear_probe"]}}},
            "then": {
                "properties": {
                    "coverage": {"type": "string", "minLength": 1},
                    "bp_seen": {"type": "object", "required": ["mean", "min", "max"],
                                "properties": {k: {"type": "number", "minimum": 0}
                                               for k in ("mean", "min", "max")}},
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
                "code_usage": {"type": "array", "minItems": 1,
                               "items": {"type": "number", "minimum": 0, "maximum": 1}},
                "perplexity": {"type": "array", "minItems": 1, "items": {"type": "number", "minimum": 0}},
                "bp_per_token": {"type": "number", "exclusiveMinimum": 0},
            },
            "required": ["stage", "tokenizer", "recon_accuracy", "code_usage", "perplexity", "bp_per_token"],
        },
        {  # one pre-trained encoder: gathered with the rest, used by no table here
            "properties": {"stage": {"const": "pretrain"}, **_COMMON},
            "required": ["stage", "tokenizer"],
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


def protocol_label(deviations: Iterable[str]) -> str:
    """Deviations -> one label: sorted and joined, or :data:`FULL_PROTOCOL`."""
    deviations = sorted(set(deviations))
    return "; ".join(deviations) if deviations else FULL_PROTOCOL



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
        record = validate_record(json.loads(Path(path).read_text()))
        ablation = record.pop("ablation", None) or {}
        record.update(
            path=str(path),
            ablation_name=ablation.get("name"),
            ablation_value=ablation.get("value"),
            base_tokenizer=base_name(record["tokenizer"]),
            protocol=protocol_label(record.get("deviations", [])),
            coverage=record.get("coverage") or (WHOLE_SEQUENCES if record.get("stage") == "baseline"
                                                else UNRECORDED_COVERAGE),
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
    Path(path).write_text(json.dumps(record, indent=2))
    return record
