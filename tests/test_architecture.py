"""The layout's rules, checked from the code's own imports (``ast``, function-level imports included).

ARCHITECTURE.md states them; here they are enforced:

* the core's sub-packages import each other in one direction only (:data:`LAYERS`: a part
  imports only parts of lower layers), so there is no cycle among them;
* ``pose/`` reaches nothing of ``training/`` or ``embedded/``;
* the core imports itself relatively (inside ComfyUI it is not importable as ``humansd_core``);
* nothing edits ``sys.path`` to reach the repository's own folders;
* the sources are Python 3.10 (the declared minimum), ``tomllib`` only through ``tomlfile``.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "humansd_core"
# Parts of the core (its top-level modules and sub-packages), bottom layer first.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors"}),
    frozenset({"defaults", "fileio", "tomlfile", "restricted_pickle", "process_memory", "lazy_exports"}),
    frozenset({"assets", "models", "sampling"}),
    frozenset({"pose"}),
    frozenset({"synthetic", "pipeline"}),
    frozenset({"training"}),
    frozenset({"embedded"}),
    frozenset({"commands", "cli", "humansd_core"}),  # "humansd_core": the package's own __init__
)
# The only places that put a folder on sys.path, and why.
SYS_PATH_EDITS = {
    "tests/support/comfy_inprocess.py": "ComfyUI's own folder, to import it in-process",
}


def _core_modules() -> dict[str, Path]:
    """``{"humansd_core.pose.render": path, "humansd_core.pose": path of its __init__, ...}``."""
    out = {}
    for path in CORE.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _core_modules()


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports(module: str) -> Iterator[tuple[str, int, bool]]:
    """``(absolute module imported, line, written relatively)`` for every import in ``module``, at any depth."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, False
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else str(node.module)
            for alias in node.names:
                name = f"{base}.{alias.name}"
                yield (name if name in MODULES else base), node.lineno, node.level > 0


def _part_graph() -> dict[str, dict[str, list[str]]]:
    """``{part: {imported part: ["module:line", ...]}}`` between different parts of the core."""
    graph: dict[str, dict[str, list[str]]] = {}
    for module in MODULES:
        for target, line, _ in _imports(module):
            if target.split(".")[0] == "humansd_core" and _part(target) != _part(module):
                graph.setdefault(_part(module), {}).setdefault(_part(target), []).append(f"{module}:{line}")
    return graph


def test_every_part_of_the_core_has_a_layer() -> None:
    placed = set().union(*LAYERS)
    assert {_part(m) for m in MODULES} <= placed, "a new part of the core: place it in LAYERS (and ARCHITECTURE.md)"


def test_parts_import_only_lower_layers_so_there_is_no_cycle() -> None:
    layer = {part: i for i, parts in enumerate(LAYERS) for part in parts}
    upward = [f"{part} -> {target} ({', '.join(where)})" for part, targets in _part_graph().items()
              for target, where in targets.items() if layer[target] >= layer[part]]
    assert not upward, "imports against the allowed direction:\n" + "\n".join(upward)


def test_pose_reaches_nothing_of_training_or_embedded() -> None:
    graph = _part_graph()
    reached, todo = set(), ["pose"]
    while todo:
        for target in graph.get(todo.pop(), {}):
            if target not in reached:
                reached.add(target)
                todo.append(target)
    assert not reached & {"training", "embedded"}, reached


def test_the_core_imports_itself_relatively() -> None:
    absolute = [f"{module}:{line} imports {target}" for module in MODULES
                for target, line, relative in _imports(module)
                if target.split(".")[0] == "humansd_core" and not relative]
    assert not absolute, "\n".join(absolute)


def _sources() -> list[Path]:
    folders = ("humansd_core", "nodes", "benchmarks", "tests", "docs")
    return [REPO / "__init__.py", *(p for folder in folders for p in sorted((REPO / folder).rglob("*.py")))]


def _sys_path_edits(tree: ast.AST) -> list[int]:
    """Lines that change ``sys.path`` (a call on it, an item or slice assignment, ``+=``)."""
    def is_sys_path(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "path" and \
            isinstance(node.value, ast.Name) and node.value.id == "sys"

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and is_sys_path(node.func.value):
            lines.append(node.lineno)
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(is_sys_path(t) or (isinstance(t, ast.Subscript) and is_sys_path(t.value)) for t in targets):
                lines.append(node.lineno)
    return lines


def test_nothing_edits_sys_path_to_reach_the_repository() -> None:
    found = [f"{path.relative_to(REPO)}:{line}" for path in _sources()
             for line in _sys_path_edits(ast.parse(path.read_text(encoding="utf-8")))
             if str(path.relative_to(REPO)) not in SYS_PATH_EDITS]
    assert not found, "run scripts as modules from the repository root instead:\n" + "\n".join(found)


NEWER_THAN_3_10 = {("tomllib", None), ("typing", "Self"), ("typing", "LiteralString"), ("typing", "Never"),
                   ("enum", "StrEnum"), ("datetime", "UTC"), ("asyncio", "TaskGroup")}


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_sources_are_python_3_10(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 10))  # no except*, no new syntax
    used = {(alias.name, None) for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names}
    used |= {(n.module, alias.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for alias in n.names}
    used |= {(n.module, None) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    newer = used & NEWER_THAN_3_10
    if path == CORE / "tomlfile.py":  # the one reader: tomllib from 3.11 on, tomli before
        newer -= {("tomllib", None)}
    assert not newer, f"{path.relative_to(REPO)} uses {sorted(map(str, newer))}, newer than Python 3.10"
