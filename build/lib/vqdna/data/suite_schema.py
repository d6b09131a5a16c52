"""The closed schema of the suite files in ``benchmarks/`` (one YAML file per suite; the layout is
in vqdna.data.suites' docstring): every key typed and in range, each format's builder
``params`` (:data:`FORMAT_PARAMS`), the cross-key rules of a task, each error naming the file,
the task and the key. No torch or pandas here: the plan checks suite files at DAG time.
"""

from __future__ import annotations

from vqdna.core.contracts import (
    Any,
    Bool,
    ContractError,
    Dict,
    Int,
    List,
    Map,
    Num,
    Str,
    at,
    shown,
    suggest,
)

NAME = r"[A-Za-z0-9_\-]+"  # the Snakefile's {suite} wildcard
TASK_NAME = r"[A-Za-z0-9_\-\.]+"  # the Snakefile's {task} wildcard
FRACTIONS = Map(
    {split: Num(exclusive_minimum=0, maximum=1) for split in ("train", "dev", "test")},
    required=("train", "dev", "test"),
)
PROBE = Map(
    {
        "max_bp": Int(minimum=1, nullable=True),
        "window": Str(choices=("centre", "start")),
        "pooling": Str(choices=("fixed", "sliding")),
    }
)
#: the ``params`` each format's builder reads, with their types; ``required`` ones have no default
FORMAT_PARAMS = {
    "gue_csv": Map({"path": Str()}, required=("path",)),
    "fasta_classes": Map(
        {"files": List(Str(), min_items=2), "fractions": FRACTIONS, "unique_ids": Bool()}, required=("files",)
    ),
    "csv_table": Map(
        {"path": Str(), "sequence_col": Str(), "label_col": Str(), "fractions": FRACTIONS}, required=("path",)
    ),
    "genome_fragments": Map(
        {
            "fasta": Str(),
            "labels": Str(),
            "name_col": Str(),
            "label_col": Str(),
            "fragment_length": Int(minimum=1),
            "min_genomes": Int(minimum=1),
            "fractions": FRACTIONS,
            "max_n_fraction": Num(minimum=0, maximum=1),
            "fragments_per_genome": Int(minimum=1, nullable=True),
        },
        required=("fasta", "labels", "fragment_length", "min_genomes"),
    ),
    "annotation": Map(
        {
            "kind": Str(choices=("species", "genus", "coding")),
            "species": List(Str(), min_items=1, unique=True, nullable=True),
            "length": Int(minimum=1),
            "n_per_class": Int(minimum=1),
            "fractions": FRACTIONS,
            "n_blocks": Int(minimum=1),
            "max_n_fraction": Num(minimum=0, maximum=1),
            "step": Int(minimum=1, nullable=True),
            "within": Str(choices=("block", "split")),
            "genus": Str(nullable=True),
        },
        required=("kind",),
    ),
}
TASK = Map(
    {
        "format": Str(choices=tuple(FORMAT_PARAMS)),
        "params": Dict(Any()),  # checked per format: FORMAT_PARAMS
        "metric": Str(choices=("mcc", "macro_f1")),
        "num_classes": Int(minimum=2),
        "label_names": List(Str(), min_items=2, unique=True),
        "max_length": Int(minimum=1),
        "coverage_bp": Int(minimum=1),
        "evaluation": Map({"finetune": Bool(), "linear_probe": PROBE}),
        "protocol": Map(
            {
                "epochs": Int(minimum=1),
                "lr": Num(exclusive_minimum=0),
                "batch_size": Int(minimum=1),
                "max_tokens": Int(minimum=1),
                "warmup_steps": Int(minimum=0),
            }
        ),
        "paper": Dict(Num()),
        "official_rows": Map({split: Int(minimum=0) for split in ("train", "dev", "test")}),
        "description": Str(),
    },
    required=("format", "params", "metric"),
)
SUITE = Map(
    {
        "suite": Str(pattern=NAME),
        "description": Str(),
        "enabled_by_default": Bool(),
        "location": Str(choices=("gue_dir", "shared_dir"), nullable=True),
        "label_source": Str(),
        "paper_units": Str(),
        "defaults": Map(TASK.keys),  # checked partially: the tasks hold the rest
        "tasks": Dict(Any(), key_pattern=TASK_NAME, min_items=1),  # each checked as TASK, merged
    },
    required=("suite", "tasks"),
)


def check_suite_file(path, suite) -> None:
    """The top level of a suite file and its ``defaults`` (partially: tasks complete them)."""
    if not isinstance(suite, dict):
        raise ContractError(f"{path}: expected a mapping with suite: and tasks:, got {shown(suite)}")
    SUITE.check(suite, f"{path}: ")
    for name, spec in suite["tasks"].items():
        if spec is not None and not isinstance(spec, dict):
            raise ContractError(f"{path}: tasks.{name}: expected a mapping, got {shown(spec)}")


def check_task(path, name: str, spec: dict) -> None:
    """One task of a suite file, merged with the suite's defaults: every key typed and in range,
    the params of its format (required ones present), and the cross-key rules."""
    where = f"{path}: tasks.{name}"
    TASK.check(spec, where)
    _check_format_params(spec["format"], spec["params"], f"{where}.params")
    names, classes = spec.get("label_names"), spec.get("num_classes")
    if names is not None and classes is not None and len(names) != classes:
        raise ContractError(f"{where}.label_names: {len(names)} names for num_classes {classes}")
    fractions = spec["params"].get("fractions")
    if fractions is not None and abs(sum(fractions.values()) - 1) > 1e-6:
        raise ContractError(f"{where}.params.fractions: must sum to 1, got {sum(fractions.values())}")


def check_params(fmt: str, params: dict, where: str) -> None:
    """Builder parameters of format ``fmt`` that override a task's (config ``task_params``):
    known keys, each of its type (required ones come from the task)."""
    _check_format_params(fmt, params, where, partial=True)


def _check_format_params(fmt: str, params, where: str, partial: bool = False) -> None:
    schema = FORMAT_PARAMS[fmt]
    if isinstance(params, dict):
        for key in params:
            if key not in schema.keys:
                hint, known = suggest(key, schema.keys), sorted(schema.keys)
                raise ContractError(
                    f"{at(where)}: unknown parameter {key!r} for format {fmt!r}{hint}; known: {known}"
                )
    schema.check(params, where, partial=partial)
