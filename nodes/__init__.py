"""ComfyUI node classes (classic API), one module per group of nodes.

Each module listed in ``_NODE_MODULES`` defines ``NODE_CLASS_MAPPINGS`` and
``NODE_DISPLAY_NAME_MAPPINGS``; this package merges them. Node ids all start with
``HumanSD`` and categories with ``HumanSD/``.
"""
from __future__ import annotations

import importlib

_NODE_MODULES = (
    "pose_nodes",
    "model_nodes",
    "sampling_nodes",
    "training_data_nodes",
    "training_nodes",
)

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}

for _name in _NODE_MODULES:
    _module = importlib.import_module(f".{_name}", __name__)
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
