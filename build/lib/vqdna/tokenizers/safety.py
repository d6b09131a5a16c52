"""What a tokenizer takes from outside, checked: integer parameters (:func:`check_int`), the JSON
of a saved folder (:func:`read_json`), and whether the class a saved folder names may be
imported (:func:`check_trusted`: only with ``trust_remote_code``, never from inside the folder)."""

from __future__ import annotations

import json
import numbers
from pathlib import Path


def read_json(file: Path):
    """JSON of ``file``; a missing, unreadable or malformed file raises ``ValueError`` naming it."""
    if not file.is_file():
        raise ValueError(f"{file} is absent")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{file}: not valid JSON ({error})") from None


def check_int(name: str, value, minimum: int, maximum: int | None = None) -> int:
    """``value`` as a parameter ``name`` that must be an integer in ``minimum..maximum`` (a bool,
    a float such as 6.5 or a string is refused): ``ValueError`` naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"in {minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def check_trusted(file: Path, kind: str, trust_remote_code, built_in_types: list[str]) -> None:
    """A ``ValueError`` naming the file, the class and the flag unless ``trust_remote_code``
    covers the class ``kind`` (``module:Class``) that ``file`` names and its module lies outside
    the tokenizer folder; raised before anything is imported."""
    if isinstance(trust_remote_code, str):
        trusted = trust_remote_code == kind
    elif isinstance(trust_remote_code, bool) or trust_remote_code is None:
        trusted = bool(trust_remote_code)
    else:
        trusted = kind in set(trust_remote_code)
    if not trusted:
        raise ValueError(
            f"{file}: names the tokenizer class {kind!r}, which is not a built-in type "
            f"({built_in_types}); loading it would import and run that module's code, so "
            f"nothing was imported. If you trust this folder, pass trust_remote_code=True "
            f"(or trust_remote_code={kind!r}) to load_tokenizer / Tokenizer.from_pretrained"
        )
    folder = file.parent.resolve()
    for location in _module_locations(kind.partition(":")[0]):
        if location == folder or folder in location.parents:
            raise ValueError(
                f"{file}: the class {kind!r} would be imported from {location}, inside the "
                f"tokenizer folder itself; a folder's own code is never imported (put the module "
                f"on PYTHONPATH outside the folder). Nothing was imported"
            )


def _module_locations(module: str) -> list[Path]:
    """Where importing ``module`` would read code from (its not yet imported packages and the
    module itself), found without executing anything (``PathFinder.find_spec`` searches
    ``sys.path`` like ``import`` does, but runs no module)."""
    import importlib.machinery
    import sys

    locations, search, parts = [], None, module.split(".")
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        if name in sys.modules:  # already imported: importing it again runs nothing
            search = getattr(sys.modules[name], "__path__", None)
            continue
        try:
            spec = importlib.machinery.PathFinder.find_spec(name, search)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            break  # the import fails later, with its own error
        found = [spec.origin] if spec.origin not in (None, "namespace", "built-in", "frozen") else []
        found += list(spec.submodule_search_locations or [])
        locations += [Path(f).resolve() for f in found]
        search = spec.submodule_search_locations
    return locations
