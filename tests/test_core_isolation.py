"""``humansd_core`` never imports ComfyUI: checked statically and by importing it."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CORE_DIR = REPO_ROOT / "humansd_core"
HOST_MODULES = ("comfy", "comfy_extras", "comfy_api", "comfy_execution", "folder_paths", "nodes",
                "node_helpers", "server", "execution")

# Runs in a neutral directory whose only addition to sys.path holds a symlink to
# humansd_core: never the repo root, where the pack's own ``nodes/`` package would
# shadow ComfyUI's ``nodes`` module name.
_IMPORT_ALL = """
import importlib, importlib.util, json, pkgutil, sys
sys.path.insert(0, sys.argv[1])
assert importlib.util.find_spec("nodes") is None, "a 'nodes' module is importable before the test starts"
import humansd_core
names = ["humansd_core"] + [m.name for m in pkgutil.walk_packages(humansd_core.__path__, "humansd_core.")]
for name in names:
    importlib.import_module(name)
host = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"modules": names, "host": host, "file": humansd_core.__file__}))
"""


def _imported_roots(tree: ast.AST) -> set[str]:
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            roots.add(str(node.args[0].value).split(".")[0])
    return roots


def test_no_core_file_imports_comfyui() -> None:
    files = sorted(CORE_DIR.rglob("*.py"))
    assert len(files) > 5, f"only {len(files)} files under {CORE_DIR}"
    offenders = {}
    for path in files:
        found = _imported_roots(ast.parse(path.read_text(), filename=str(path))) & set(HOST_MODULES)
        if found:
            offenders[str(path.relative_to(REPO_ROOT))] = sorted(found)
    assert not offenders, f"humansd_core files importing ComfyUI modules: {offenders}"


def test_static_check_catches_host_imports() -> None:
    source = "import folder_paths\nfrom comfy.sd import VAE\nimport importlib\nimportlib.import_module('nodes')\n"
    assert _imported_roots(ast.parse(source)) >= {"folder_paths", "comfy", "nodes"}


def test_importing_every_core_module_loads_no_comfyui(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "humansd_core").symlink_to(CORE_DIR, target_is_directory=True)
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, str(site), json.dumps(HOST_MODULES)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(result["file"]).resolve() == CORE_DIR / "__init__.py"
    assert len(result["modules"]) > 5
    assert not result["host"], f"importing humansd_core pulled in ComfyUI modules: {result['host']}"
