"""The pack imports cleanly in a real ComfyUI and every node is well described."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .comfy_server import PACK_NAME, ComfyHost
from .server_env import ServerEnv, server_environ

pytestmark = pytest.mark.host

# Import the installed pack as a package the way ComfyUI does (folder + __init__.py), in
# the server's interpreter, from its folder, so the test process keeps no second copy.
_LIST_NODES = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location(
    "humansd_pack_probe", sys.argv[1] + "/__init__.py", submodule_search_locations=[sys.argv[1]])
pack = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = pack
spec.loader.exec_module(pack)
print(json.dumps(sorted(pack.NODE_CLASS_MAPPINGS)))
"""


@pytest.fixture(scope="module")
def pack_node_ids(server_env: ServerEnv, installed_pack: Path) -> list[str]:
    out = subprocess.run([str(server_env.python), "-c", _LIST_NODES, str(installed_pack)], cwd=server_env.comfy_dir,
                         env=server_environ(), capture_output=True, text=True, check=True)
    ids = json.loads(out.stdout.strip().splitlines()[-1])
    assert ids, "the pack declares no nodes"
    return ids


def test_pack_imports_without_failure(comfy_host: ComfyHost) -> None:
    log = comfy_host.log_text()
    assert f"{PACK_NAME}" in log, "ComfyUI never tried to load the pack:\n" + comfy_host.log_tail()
    failed = [line for line in log.splitlines()
              if PACK_NAME in line and ("IMPORT FAILED" in line or "Cannot import" in line)]
    assert not failed, "\n".join(failed) + "\n" + comfy_host.log_tail()


def test_every_node_is_registered_and_described(comfy_host: ComfyHost, pack_node_ids: list[str]) -> None:
    info = comfy_host.object_info()
    missing = [node for node in pack_node_ids if node not in info]
    assert not missing, f"nodes missing from /object_info: {missing}"
    problems = []
    for node in pack_node_ids:
        spec = info[node]
        if not node.startswith("HumanSD"):
            problems.append(f"{node}: id lacks the HumanSD prefix")
        if not str(spec["category"]).startswith("HumanSD/"):
            problems.append(f"{node}: category {spec['category']!r} not under HumanSD/")
        if not spec.get("description"):
            problems.append(f"{node}: no DESCRIPTION")
        for section in ("required", "optional"):
            for name, entry in spec["input"].get(section, {}).items():
                options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
                if not options.get("tooltip"):
                    problems.append(f"{node}.{name}: no tooltip")
    assert not problems, "\n".join(problems)
