"""Bring UI-format (0.4) and API-format workflows to one comparable form.

The server only runs API prompts and has no UI -> API converter, so every shipped UI
workflow has an API twin. To check that the two say the same thing, both become
``{node_id: {"class_type", "widgets": {name: value}, "links": {input: (node_id, slot)}}}``.
UI ``widgets_values`` are positional: their names come from the server's
``/object_info`` (``input_order``), skipping the extra "control after generate" value
the UI stores after seed widgets.
"""
from __future__ import annotations

from typing import Any

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
SEED_NAMES = frozenset({"seed", "noise_seed"})
# Nodes that live only in the UI (text notes): they have no API form and no links.
FRONTEND_ONLY = frozenset({"Note", "MarkdownNote"})
Comparable = dict[str, dict[str, Any]]


def _widget_names(spec: dict[str, Any]) -> list[tuple[str, bool]]:
    """``(name, has_control_value)`` of a node's widget inputs, in UI order."""
    names = []
    for section in ("required", "optional"):
        inputs = spec["input"].get(section, {})
        for name in spec.get("input_order", {}).get(section, list(inputs)):
            entry = inputs[name]
            kind = entry[0]
            options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            if options.get("forceInput") or not (isinstance(kind, list) or kind in WIDGET_TYPES):
                continue
            control = kind == "INT" and (name in SEED_NAMES or bool(options.get("control_after_generate")))
            names.append((name, control))
    return names


def check_ui_structure(ui: dict[str, Any]) -> None:
    """Raise ``AssertionError`` unless ``ui`` is a consistent format-0.4 workflow."""
    assert ui.get("version") == 0.4, f"UI version {ui.get('version')!r}, expected 0.4"
    nodes = {node["id"]: node for node in ui["nodes"]}
    assert len(nodes) == len(ui["nodes"]), "duplicate node ids"
    assert ui["last_node_id"] >= max(nodes), "last_node_id below a node id"
    link_ids = [link[0] for link in ui["links"]]
    assert len(set(link_ids)) == len(link_ids), "duplicate link ids"
    assert not link_ids or ui["last_link_id"] >= max(link_ids), "last_link_id below a link id"
    for link_id, src, src_slot, dst, dst_slot, _type in ui["links"]:
        assert link_id in (nodes[src]["outputs"][src_slot].get("links") or []), f"link {link_id} not on its origin"
        assert nodes[dst]["inputs"][dst_slot].get("link") == link_id, f"link {link_id} not on its target"


def ui_to_comparable(ui: dict[str, Any], object_info: dict[str, Any]) -> Comparable:
    check_ui_structure(ui)
    origins = {link[0]: (str(link[1]), link[2]) for link in ui["links"]}
    out: Comparable = {}
    for node in ui["nodes"]:
        assert node.get("mode", 0) == 0, f"node {node['id']} is muted or bypassed"
        kind = node["type"]
        if kind in FRONTEND_ONLY:
            assert not node.get("inputs") and not node.get("outputs"), f"note {node['id']} has connections"
            continue
        assert kind in object_info, f"node {node['id']}: unknown type {kind!r}"
        values = list(node.get("widgets_values") or [])
        widgets: dict[str, Any] = {}
        for name, control in _widget_names(object_info[kind]):
            assert values, f"node {node['id']} ({kind}): no widget value for {name!r}"
            widgets[name] = values.pop(0)
            if control:
                values.pop(0)
        assert not values, f"node {node['id']} ({kind}): {len(values)} widget values left over"
        links = {inp["name"]: origins[inp["link"]] for inp in node.get("inputs", []) if inp.get("link") is not None}
        for name in links:
            widgets.pop(name, None)  # a widget turned into an input keeps a stale value in the UI
        out[str(node["id"])] = {"class_type": kind, "widgets": widgets, "links": links}
    return out


def api_to_comparable(api: dict[str, Any], object_info: dict[str, Any]) -> Comparable:
    out: Comparable = {}
    for node_id, node in api.items():
        kind = node["class_type"]
        assert kind in object_info, f"node {node_id}: unknown type {kind!r}"
        widgets, links = {}, {}
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int):
                links[name] = (value[0], value[1])
            else:
                widgets[name] = value
        out[str(node_id)] = {"class_type": kind, "widgets": widgets, "links": links}
    return out
