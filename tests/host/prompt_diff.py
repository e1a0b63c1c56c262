"""Compare two API-format prompts (``{node_id: {"class_type", "inputs"}}``) the way the twins must agree."""
from __future__ import annotations

from typing import Any


def prompt_mismatches(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Where ``ours`` and ``theirs`` differ: node ids, class types, each input (a literal widget value,
    or a link ``[node_id, slot]``). Other keys (the frontend's ``_meta`` titles) are not compared."""
    problems = [f"node {i}: only in the first prompt" for i in sorted(set(ours) - set(theirs))]
    problems += [f"node {i}: only in the second prompt" for i in sorted(set(theirs) - set(ours))]
    for node_id in sorted(set(ours) & set(theirs)):
        a_node, b_node = ours[node_id], theirs[node_id]
        if a_node["class_type"] != b_node["class_type"]:
            problems.append(f"node {node_id}: class {a_node['class_type']!r} != {b_node['class_type']!r}")
        for name in sorted(set(a_node["inputs"]) | set(b_node["inputs"])):
            a, b = a_node["inputs"].get(name, "<absent>"), b_node["inputs"].get(name, "<absent>")
            if a != b:
                problems.append(f"node {node_id} ({b_node['class_type']}).{name}: {a!r} != {b!r}")
    return problems
