"""Typed checks of what a user writes, the checkers every closed schema is built from (the suite
files': vqdna.data.suite_schema; the typed settings': vqdna.core.settings), each error naming
the file (or section), the entry and the key, and saying what was expected.

A schema is built from a few checkers: :class:`Int`, :class:`Num`, :class:`Bool`, :class:`Str`,
:class:`List`, :class:`Map` (named keys, closed: an unknown key is an error naming the known
ones) and :class:`Dict` (free keys, one value type). ``checker.check(value, where)`` raises
``ValueError(f"{at(where)}: ...")``; ``where`` grows with the key path (``tasks.EMP_H3.protocol.lr``).
No torch or pandas here: the plan runs these at DAG time.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, field


class ContractError(ValueError):
    """A value that breaks its schema (a ``ValueError``, so existing handlers catch it)."""


def shown(value) -> str:
    """A value and its type, as error messages show it."""
    return f"{value!r} ({type(value).__name__})"


def at(where: str) -> str:
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
            raise ContractError(f"{at(where)}: expected an integer{null}, got {shown(value)}")
        if self.minimum is not None and value < self.minimum:
            raise ContractError(f"{at(where)}: must be >= {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ContractError(f"{at(where)}: must be <= {self.maximum}, got {value}")


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
            raise ContractError(f"{at(where)}: expected a number, got {shown(value)}{hint}")
        bounds = [
            (self.minimum, lambda b: value >= b, ">="),
            (self.maximum, lambda b: value <= b, "<="),
            (self.exclusive_minimum, lambda b: value > b, ">"),
            (self.exclusive_maximum, lambda b: value < b, "<"),
        ]
        for bound, holds, sign in bounds:
            if bound is not None and not holds(bound):
                raise ContractError(f"{at(where)}: must be {self.range()}, got {value}")

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
            raise ContractError(f"{at(where)}: expected true or false, got {shown(value)}")


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
            raise ContractError(f"{at(where)}: expected a string, got {shown(value)}")
        if self.choices and value not in self.choices:
            raise ContractError(f"{at(where)}: {value!r} is not one of {list(self.choices)}")
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise ContractError(f"{at(where)}: {value!r} does not match {self.pattern}")


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
            raise ContractError(f"{at(where)}: expected a list, got {shown(value)}")
        if len(value) < self.min_items:
            raise ContractError(f"{at(where)}: needs at least {self.min_items} entries, got {len(value)}")
        for i, item in enumerate(value):
            self.item.check(item, f"{where}[{i}]")
        if self.unique:
            seen = set()
            for item in value:
                if item in seen:
                    raise ContractError(f"{at(where)}: {item!r} appears twice")
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
            raise ContractError(f"{at(where)}: expected a mapping, got {shown(value)}")
        for key in value:
            if key not in self.keys:
                hint = suggest(key, self.keys)
                raise ContractError(f"{at(where)}: unknown key {key!r}{hint}; known: {sorted(self.keys)}")
        if not partial:
            for key in self.required:
                if key not in value:
                    raise ContractError(f"{at(where)}: missing required key {key!r}")
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
            raise ContractError(f"{at(where)}: expected a mapping, got {shown(value)}")
        if len(value) < self.min_items:
            raise ContractError(f"{at(where)}: needs at least {self.min_items} entries, got {len(value)}")
        for key, item in value.items():
            if not isinstance(key, str) or (self.key_pattern and not re.fullmatch(self.key_pattern, key)):
                expected = self.key_pattern or "text"
                raise ContractError(f"{at(where)}: key {key!r} is not a name matching {expected}")
            self.value.check(item, _join(where, key))


@dataclass(frozen=True)
class Any:
    """Anything (documented free-form values)."""

    def check(self, value, where: str) -> None:
        return None


def suggest(key, known) -> str:
    import difflib

    close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------- typed settings


@dataclass(frozen=True)
class Rules:
    """Per field of a settings dataclass, its checker (``field`` -> checker)."""

    fields: dict = field(default_factory=dict)

    def check(self, settings, section: str) -> None:
        for name, checker in self.fields.items():
            checker.check(getattr(settings, name), f"{section}.{name}")
