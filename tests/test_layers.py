"""The package's layers and sizes hold: every import, inside functions too, points to a lower layer or
to a module of its own layer's subpackage, and no module imports its own package's __init__.

    core < model < {tokenizers, data} < train < workflow < analysis

tokenizers and data are siblings: neither imports the other. The test reads the source with
``ast``, so an import that only runs in one branch or one function still counts."""

import ast
import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vqdna"
LAYERS = {"core": 0, "model": 1, "tokenizers": 2, "data": 2, "train": 3, "workflow": 4, "analysis": 5}


def imports(package: Path) -> dict[str, set[str]]:
    """Module name -> the vqdna modules it imports (``from a import b`` counts ``a.b`` when
    that is a module, ``a`` otherwise)."""
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    graph[name].add(target if target in modules else node.module)
        graph[name] = {t for t in graph[name] if t in modules and t != name}
    return graph


def violations(package: Path = PACKAGE) -> list[str]:
    """Every import that breaks the layer order, as 'importer -> imported (why)'."""
    found = []
    for importer, targets in sorted(imports(package).items()):
        layer = importer.split(".")[1] if importer.count(".") else None
        for target in sorted(targets):
            target_layer = target.split(".")[1] if target.count(".") else None
            if layer is None or target_layer is None:
                continue  # the top-level vqdna/__init__ (a docstring) and its importers
            if target == f"vqdna.{layer}":
                found.append(f"{importer} -> {target} (its own package's __init__)")
            elif target_layer != layer and LAYERS[target_layer] >= LAYERS[layer]:
                found.append(f"{importer} -> {target} ({layer} may not import {target_layer})")
    return found


def cycles(package: Path = PACKAGE) -> list[list[str]]:
    """Import cycles: groups of more than one module that each reach the others."""
    graph = imports(package)
    reach = {}
    for module in graph:
        seen, todo = set(), [module]
        while todo:
            for target in graph[todo.pop()] - seen:
                seen.add(target)
                todo.append(target)
        reach[module] = seen
    groups = {tuple(sorted(m for m in reach[module] if module in reach[m])) for module in graph}
    return sorted(list(group) for group in groups if len(group) > 1)


def test_every_import_points_down_the_layers():
    assert LAYERS.keys() == {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert violations() == []


def test_there_is_no_import_cycle():
    assert cycles() == []


def test_a_planted_upward_import_fails(tmp_path):
    """The check can fail: a function-level import of analysis from core, and a module importing
    its own package, are both caught."""
    copy = tmp_path / "vqdna"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "core" / "sequence.py", "a") as f:
        f.write("\n\ndef planted():\n    from vqdna.analysis import tables\n\n    return tables\n")
    with open(copy / "model" / "encoder.py", "a") as f:
        f.write("\nfrom vqdna.model import quantizer  # noqa\nimport vqdna.model\n")
    found = violations(copy)
    assert "vqdna.core.sequence -> vqdna.analysis.tables (core may not import analysis)" in found
    assert "vqdna.model.encoder -> vqdna.model (its own package's __init__)" in found
    assert len(found) == 2
    shutil.rmtree(copy)
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "model" / "encoder.py", "a") as f:
        f.write("\nfrom vqdna.model import quantizer  # noqa\n")
    with open(copy / "model" / "quantizer.py", "a") as f:
        f.write("\n\ndef planted():\n    from vqdna.model import encoder\n\n    return encoder\n")
    assert cycles(copy) == [["vqdna.model.encoder", "vqdna.model.quantizer"]]


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def oversized(package: Path = PACKAGE) -> list[str]:
    """Modules over MAX_MODULE_LINES lines and functions (methods and nested ones included) over
    MAX_FUNCTION_LINES, counted from the ``def`` line (decorators excluded) to the last line."""
    found = []
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package.parent).as_posix()
        text = path.read_text()
        if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
            found.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    return found


def test_no_module_or_function_is_too_long():
    assert oversized() == []


def test_a_planted_long_module_and_function_fail(tmp_path):
    copy = tmp_path / "vqdna"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (copy / "core" / "planted.py").write_text(f"def planted():\n{body}    return 0\n")
    (copy / "core" / "long.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    assert oversized(copy) == [
        f"vqdna/core/long.py: {MAX_MODULE_LINES + 1} lines",
        f"vqdna/core/planted.py:1 planted: {MAX_FUNCTION_LINES + 2} lines",
    ]
