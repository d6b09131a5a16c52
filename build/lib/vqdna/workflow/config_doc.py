"""The config reference, generated: one row per key of ``config/schema.yaml`` with its type,
its default (``config/config.yaml``) and what it means (the schema's description, else the
comment beside the key in ``config/config.yaml``). ``config/README.md`` holds the output between
two markers, and a test regenerates it, so no key goes undocumented and no entry goes stale.

``python -m vqdna.workflow.config_doc`` prints the table."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BEGIN = "<!-- generated: python -m vqdna.workflow.config_doc -->"
END = "<!-- end generated -->"


def _config_comments(text: str) -> dict[str, str]:
    """dotted key -> the comment on its line in config.yaml (nesting from indentation)."""
    comments, stack = {}, []
    for line in text.splitlines():
        match = re.match(r"^(\s*)([A-Za-z_][\w]*):(.*)$", line)
        if not match:
            continue
        indent, key, rest = len(match[1]), match[2], match[3]
        stack = [(i, k) for i, k in stack if i < indent] + [(indent, key)]
        if "#" in rest:
            comments[".".join(k for _, k in stack)] = rest.split("#", 1)[1].strip()
    return comments


def _type(spec: dict) -> str:
    if "enum" in spec:
        return " \\| ".join(str(v) for v in spec["enum"])
    if "$ref" in spec:
        return spec["$ref"].rsplit("/", 1)[-1].replace("_", " ")
    kind = spec.get("type", "object" if "properties" in spec else "")
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


def _default(config: dict, path: list[str]):
    value = config
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return "–"
        value = value[key]
    if isinstance(value, dict):
        return "(section)"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def rows(
    schema_path=ROOT / "config" / "schema.yaml", config_path=ROOT / "config" / "config.yaml"
) -> list[dict]:
    """One row per schema key (nested sections included, dotted), in schema order."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    text = Path(config_path).read_text()
    config, comments = yaml.safe_load(text), _config_comments(text)
    definitions = schema.get("definitions", {})
    out = []

    def walk(properties: dict, prefix: list[str]) -> None:
        for key, spec in properties.items():
            path = [*prefix, key]
            name = ".".join(path)
            resolved = definitions.get(spec.get("$ref", "").rsplit("/", 1)[-1], {}) if "$ref" in spec else {}
            meaning = spec.get("description") or comments.get(name) or resolved.get("description", "")
            out.append(
                {"key": name, "type": _type(spec), "default": _default(config, path), "meaning": meaning}
            )
            if "properties" in spec:
                walk(spec["properties"], path)

    walk(schema["properties"], [])
    return out


def table() -> str:
    """The Markdown table of :func:`rows` (``|`` in a cell escaped)."""
    lines = ["| key | type | default (config/config.yaml) | meaning |", "|---|---|---|---|"]
    for row in rows():
        cells = [f"`{row['key']}`", row["type"], f"`{row['default']}`", row["meaning"] or "–"]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(), end="")
