"""Typed checks of what a user writes: one closed schema per file kind (suite YAML files, the
typed settings, tokenizer parameters), each error naming the file (or section), the entry and
the key, and saying what was expected.

A schema is built from a few checkers: :class:`Int`, :class:`Num`, :class:`Bool`, :class:`Str`,
:class:`List`, :class:`Map` (named keys, closed: an unknown key is an error naming the known
ones) and :class:`Dict` (free keys, one value type). ``checker.check(value, where)`` raises
``ValueError(f"{_at(where)}: ...")``; ``where`` grows with the key path (``tasks.EMP_H3.protocol.lr``).
No torch or pandas here: the plan runs these at DAG time.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class ContractError(ValueError):
    """A value that breaks its schema (a ``ValueError``, so existing handlers catch it)."""


def _shown(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def _at(where: str) -> str:
    """``where`` as a message prefix (the file alone: ``path: `` -> ``path``)."""
    return where[:-2] if where.endswith(": ") else where


def _join(where: str, key) -> str:
    return f"{where}.{key}" if where and not where.endswith(": ") else f"{where}{key}"


@dataclass(frozen=True)
class Int:
    """An integer (not a bool, not 6.5, not "6") in ``minimum..maximum``; ``None`` if nullable."""

    minimum: int | None = None
    maximum: int | None = None
    nullable: bool = False

    def check(self, value, where: str) -> None:
        if value is None and self.nullable:
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            null = " or null" if self.nullable else ""
            raise ContractError(f"{_at(where)}: expected an integer{null}, got {_shown(value)}")
        if self.minimum is not None and value < self.minimum:
            raise ContractError(f"{_at(where)}: must be >= {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ContractError(f"{_at(where)}: must be <= {self.maximum}, got {value}")


@dataclass(frozen=True)
class Num:
    """A real number (int or float, finite, not a bool) within the bounds (``exclusive_*``: strict)."""

    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    nullable: bool = False

    def check(self, value, where: str) -> None:
        if value is None and self.nullable:
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
            hint = ""
            if isinstance(value, str) and re.fullmatch(r"[-+]?\d+e[-+]?\d+", value.strip(), re.IGNORECASE):
                hint = f" (YAML reads {value} as text: write it with a dot, e.g. {value.replace('e', '.0e')})"
            raise ContractError(f"{_at(where)}: expected a number, got {_shown(value)}{hint}")
        bounds = [
            (self.minimum, lambda b: value >= b, ">="),
            (self.maximum, lambda b: value <= b, "<="),
            (self.exclusive_minimum, lambda b: value > b, ">"),
            (self.exclusive_maximum, lambda b: value < b, "<"),
        ]
        for bound, holds, sign in bounds:
            if bound is not None and not holds(bound):
                raise ContractError(f"{_at(where)}: must be {self.range()}, got {value}")

    def range(self) -> str:
        low = (
            f"> {self.exclusive_minimum}"
            if self.exclusive_minimum is not None
            else (f">= {self.minimum}" if self.minimum is not None else "")
        )
        high = (
            f"< {self.exclusive_maximum}"
            if self.exclusive_maximum is not None
            else (f"<= {self.maximum}" if self.maximum is not None else "")
        )
        return " and ".join(part for part in (low, high) if part) or "a number"


@dataclass(frozen=True)
class Bool:
    """``true`` / ``false`` (not the strings 'false' / 'no', not 0 / 1)."""

    nullable: bool = False

    def check(self, value, where: str) -> None:
        if value is None and self.nullable:
            return
        if not isinstance(value, bool):
            raise ContractError(f"{_at(where)}: expected true or false, got {_shown(value)}")


@dataclass(frozen=True)
class Str:
    """A string, one of ``choices`` when given, matching ``pattern`` when given."""

    choices: tuple = ()
    pattern: str | None = None
    nullable: bool = False

    def check(self, value, where: str) -> None:
        if value is None and self.nullable:
            return
        if not isinstance(value, str):
            raise ContractError(f"{_at(where)}: expected a string, got {_shown(value)}")
        if self.choices and value not in self.choices:
            raise ContractError(f"{_at(where)}: {value!r} is not one of {list(self.choices)}")
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise ContractError(f"{_at(where)}: {value!r} does not match {self.pattern}")


@dataclass(frozen=True)
class List:
    """A list of ``item`` values, at least ``min_items`` of them, optionally without repeats."""

    item: object
    min_items: int = 0
    unique: bool = False
    nullable: bool = False

    def check(self, value, where: str) -> None:
        if value is None and self.nullable:
            return
        if not isinstance(value, list):
            raise ContractError(f"{_at(where)}: expected a list, got {_shown(value)}")
        if len(value) < self.min_items:
            raise ContractError(f"{_at(where)}: needs at least {self.min_items} entries, got {len(value)}")
        for i, item in enumerate(value):
            self.item.check(item, f"{where}[{i}]")
        if self.unique:
            seen = set()
            for item in value:
                if item in seen:
                    raise ContractError(f"{_at(where)}: {item!r} appears twice")
                seen.add(item)


@dataclass(frozen=True)
class Map:
    """A mapping with named keys (closed: another key is an error naming the known ones);
    ``required`` keys must be present unless checked ``partial``."""

    keys: dict
    required: tuple = ()
    nullable: bool = False

    def check(self, value, where: str, partial: bool = False) -> None:
        if value is None and self.nullable:
            return
        if not isinstance(value, dict):
            raise ContractError(f"{_at(where)}: expected a mapping, got {_shown(value)}")
        for key in value:
            if key not in self.keys:
                hint = _suggest(key, self.keys)
                raise ContractError(f"{_at(where)}: unknown key {key!r}{hint}; known: {sorted(self.keys)}")
        if not partial:
            for key in self.required:
                if key not in value:
                    raise ContractError(f"{_at(where)}: missing required key {key!r}")
        for key, item in value.items():
            self.keys[key].check(item, _join(where, key))


@dataclass(frozen=True)
class Dict:
    """A mapping with free keys (each a string matching ``key_pattern``) and values of one kind."""

    value: object
    key_pattern: str | None = None
    min_items: int = 0

    def check(self, value, where: str) -> None:
        if not isinstance(value, dict):
            raise ContractError(f"{_at(where)}: expected a mapping, got {_shown(value)}")
        if len(value) < self.min_items:
            raise ContractError(f"{_at(where)}: needs at least {self.min_items} entries, got {len(value)}")
        for key, item in value.items():
            if not isinstance(key, str) or (self.key_pattern and not re.fullmatch(self.key_pattern, key)):
                expected = self.key_pattern or "text"
                raise ContractError(f"{_at(where)}: key {key!r} is not a name matching {expected}")
            self.value.check(item, _join(where, key))


@dataclass(frozen=True)
class Any:
    """Anything (documented free-form values)."""

    def check(self, value, where: str) -> None:
        return None


def _suggest(key, known) -> str:
    import difflib

    close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------- YAML with file-named errors


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key written twice in one mapping (PyYAML keeps the last
    silently: a second task of the same name would replace the first). Keys merged in with
    ``<<: *anchor`` may be overridden, as YAML intends."""


def _construct_unique(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, (str, int, float, bool)) and key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} appears twice in one mapping (first on line {seen[key] + 1})",
                key_node.start_mark,
            )
        if isinstance(key, (str, int, float, bool)):
            seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique)


def read_yaml(path) -> object:
    """The YAML of ``path``; a syntax error, a duplicate key or undecodable text is a
    ``ValueError`` naming the file (and the line, where YAML knows it)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ContractError(f"{path}: not UTF-8 text ({error})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ContractError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None


# ---------------------------------------------------------------- suite files (benchmarks/*.yaml)

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
        raise ContractError(f"{path}: expected a mapping with suite: and tasks:, got {_shown(suite)}")
    SUITE.check(suite, f"{path}: ")
    for name, spec in suite["tasks"].items():
        if spec is not None and not isinstance(spec, dict):
            raise ContractError(f"{path}: tasks.{name}: expected a mapping, got {_shown(spec)}")


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
                hint, known = _suggest(key, schema.keys), sorted(schema.keys)
                raise ContractError(
                    f"{_at(where)}: unknown parameter {key!r} for format {fmt!r}{hint}; known: {known}"
                )
    schema.check(params, where, partial=partial)


# ---------------------------------------------------------------- typed settings


@dataclass(frozen=True)
class Rules:
    """Per field of a settings dataclass, its checker (``field`` -> checker)."""

    fields: dict = field(default_factory=dict)

    def check(self, settings, section: str) -> None:
        for name, checker in self.fields.items():
            checker.check(getattr(settings, name), f"{section}.{name}")
