"""The pose editor of HumanSD Pose from JSON as a browser test sees it, on the shared
:class:`~.browser.ComfyPage` (real frontend, real Chromium, real mouse).

Joint positions on the page are computed here, independently of the editor's code, from
what the issue asks: the node's output canvas fitted whole into the widget's canvas box,
aspect kept, centred (no margin on the node; the panel keeps 24 CSS px); the node's
placement of the pose canvas onto its output size; OpenPose-18 text, COCO-17 joints. A
drag then moves the mouse by page pixels and the test checks the text moved by the pose
pixels those stand for.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

from humansd_core.pose.formats_openpose import COCO17_FROM_OPENPOSE18

from .browser import ComfyPage

NODE_TYPE = "HumanSDPoseFromJSON"
PANEL_MARGIN = 24
PANEL = ".humansd-panel"

_POSE_NODE = "(type) => app.graph.nodes.find((n) => n.type === type)?.id ?? null"
_WIDGET_VALUE = """([id, name]) => app.graph.getNodeById(id).widgets.find((w) => w.name === name).value"""
_EDITOR_READY = """(id) => { const e = app.graph.getNodeById(id)?.humansdPoseEditor;
    return Boolean(e && e.element.dataset.state === 'ok' && e.view.scene && e.element.isConnected
                   && e.view.canvas.clientWidth > 0 && !e.view.frameRequest); }"""
_EDITOR_STATE = """(id) => { const e = app.graph.getNodeById(id)?.humansdPoseEditor;
    return e ? {state: e.element.dataset.state, status: e.statusLabel.textContent, message: e.message.textContent,
                frame: e.frame, frames: e.doc?.frames.length ?? 0} : null; }"""
_SHOW_NODE = """([id, left, top]) => { const n = app.graph.getNodeById(id);
    app.canvas.ds.scale = 1; app.canvas.ds.offset = [left - n.pos[0], top - n.pos[1]];
    app.canvas.setDirty(true, true); }"""
_OUTPUT_SIZE = """(id) => { const s = app.graph.getNodeById(id).humansdPoseEditor.scene();
    return [s.output.width, s.output.height, s.frame.canvas_width, s.frame.canvas_height]; }"""
_BITMAP = """(selector) => { const c = document.querySelector(selector);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let text = ''; for (let i = 0; i < d.length; i += 0x8000) text += String.fromCharCode(...d.subarray(i, i + 0x8000));
    return [c.width, c.height, btoa(text)]; }"""
_UNDO_DEPTH = """() => { const t = app.extensionManager.workflow.activeWorkflow.changeTracker;
    return [t.undoQueue.length, t.redoQueue.length, t._restoringState]; }"""


def pixel_placement(src: tuple[int, int], dst: tuple[int, int], mode: str) -> tuple[float, float, float]:
    """``(scale, dx, dy)`` of the node's placement (humansd_core.pose.place_on_canvas)."""
    if mode not in ("fit", "fill"):
        return 1.0, 0.0, 0.0
    sx, sy = dst[0] / src[0], dst[1] / src[1]
    scale = min(sx, sy) if mode == "fit" else max(sx, sy)
    return scale, (dst[0] - src[0] * scale) / 2, (dst[1] - src[1] * scale) / 2


def fitted(box: dict[str, float], size: tuple[int, int], margin: float = 0.0) -> tuple[float, float, float]:
    """``(scale, left, top)`` in page pixels of a ``size`` canvas fitted whole in ``box``, centred."""
    scale = min((box["width"] - 2 * margin) / size[0], (box["height"] - 2 * margin) / size[1])
    return scale, box["x"] + (box["width"] - size[0] * scale) / 2, box["y"] + (box["height"] - size[1] * scale) / 2


def body(frame: dict[str, Any], person: int) -> list[float]:
    return frame["people"][person]["pose_keypoints_2d"]


def joint(frame: dict[str, Any], person: int, coco: int) -> list[float]:
    """``[x, y, c]`` of COCO-17 joint ``coco`` in a POSE_KEYPOINT frame's OpenPose-18 body."""
    k = COCO17_FROM_OPENPOSE18[coco]
    return body(frame, person)[3 * k: 3 * k + 3]


class PoseEditorPage:
    """Drive the editor of one HumanSD Pose from JSON node on a :class:`ComfyPage`."""

    def __init__(self, page: ComfyPage) -> None:
        self.page = page
        self.node_id: int | None = None

    # -- workflows and the node ----------------------------------------------------------
    def load(self, workflow: dict[str, Any] | Path, name: str = "editor test", node_id: int | None = None) -> int:
        """Load a workflow, show its pose node at zoom 1 near the top left, wait for its editor."""
        if isinstance(workflow, Path):
            name, workflow = workflow.stem, json.loads(workflow.read_text())
        self.close_panel()
        self.page.load_graph_data(workflow, name)
        self.node_id = node_id if node_id is not None else self.page.evaluate(_POSE_NODE, NODE_TYPE)
        assert self.node_id is not None, "the workflow has no HumanSD Pose from JSON node"
        self.show()
        return self.node_id

    def show(self, left: float = 140, top: float = 120, node_id: int | None = None) -> None:
        """Pan (zoom 1) so the node's top left is at page point (left, top); wait for its editor."""
        self.page.evaluate(_SHOW_NODE, [node_id or self.node_id, left, top])
        self.wait_ready(node_id)

    def wait_ready(self, node_id: int | None = None, timeout_ms: int = 30_000) -> None:
        """Wait until the node's editor has read its text and drawn it."""
        self.page.page.wait_for_function(_EDITOR_READY, arg=node_id or self.node_id, timeout=timeout_ms)
        self.page.next_frame()

    def state(self, node_id: int | None = None) -> dict[str, Any]:
        return self.page.evaluate(_EDITOR_STATE, node_id or self.node_id)

    def text(self, node_id: int | None = None) -> str:
        return self.page.evaluate(_WIDGET_VALUE, [node_id or self.node_id, "pose_json"])

    def pose(self, node_id: int | None = None) -> list[dict[str, Any]]:
        """The pose_json value as a list of frames."""
        data = json.loads(self.text(node_id))
        return [data] if isinstance(data, dict) else data

    def prompt_pose(self) -> str:
        """pose_json of this node in the prompt the page would queue."""
        return self.page.graph_to_prompt()[str(self.node_id)]["inputs"]["pose_json"]

    def node_selector(self, node_id: int | None = None) -> str:
        """A CSS selector of the node's editor canvas (the editor element carries the node id)."""
        return f'.humansd-pose-editor[data-node="{node_id or self.node_id}"] canvas'

    # -- where joints are ------------------------------------------------------------------
    def output_size(self, node_id: int | None = None) -> tuple[tuple[int, int], tuple[int, int]]:
        """``((output w, h), (frame canvas w, h))`` of the frame the node widget shows."""
        ow, oh, cw, ch = self.page.evaluate(_OUTPUT_SIZE, node_id or self.node_id)
        return (ow, oh), (cw, ch)

    def box(self, selector: str) -> dict[str, float]:
        box = self.page.page.locator(selector).bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0, f"{selector} is not shown"
        return box

    def page_per_pose_pixel(self, selector: str, placement: str = "fit", margin: float = 0.0,
                            node_id: int | None = None) -> tuple[float, float, float, float, float]:
        """``(k, left, top, scale, offset...)``: page point of pose point p = origin + k * p."""
        output, canvas = self.output_size(node_id)
        view, left, top = fitted(self.box(selector), output, margin)
        scale, dx, dy = pixel_placement(canvas, output, placement)
        return view * scale, left + view * dx, top + view * dy, view, scale

    def joint_on_page(self, frame: dict[str, Any], person: int, coco: int, selector: str | None = None,
                      placement: str = "fit", margin: float = 0.0, node_id: int | None = None) -> tuple[float, float]:
        x, y, _ = joint(frame, person, coco)
        k, left, top, _, _ = self.page_per_pose_pixel(selector or self.node_selector(node_id), placement, margin,
                                                      node_id)
        return left + k * x, top + k * y

    def bitmap(self, selector: str) -> np.ndarray:
        """RGB pixels ``[H, W, 3]`` of a canvas element (e.g. the node widget's picture)."""
        width, height, data = self.page.evaluate(_BITMAP, selector)
        return np.frombuffer(base64.b64decode(data), np.uint8).reshape(height, width, 4)[..., :3].copy()

    # -- the frontend's history ------------------------------------------------------------
    def history_depth(self) -> tuple[int, int]:
        """``(undo steps, redo steps)`` of the active workflow's change tracker."""
        undo, redo, _ = self.page.evaluate(_UNDO_DEPTH)
        return undo, redo

    def undo(self, how: str = "Control+z") -> None:
        """Undo or redo, then wait for the reloaded editor: ``how`` is a key chord
        (``Control+z``, ``Control+y``) or a panel button (``undo``, ``redo``)."""
        undo, redo = self.history_depth()
        redoing = how in ("Control+y", "redo")
        expected = (undo + 1, redo - 1) if redoing else (undo - 1, redo + 1)
        if how in ("undo", "redo"):
            self.click(how)
        else:
            self.page.page.keyboard.press(how)
        self.page.page.wait_for_function(
            f"() => {{ const [u, r, busy] = ({_UNDO_DEPTH})(); return !busy && u === {expected[0]} && r === {expected[1]}; }}")
        self.wait_ready()

    # -- the panel -----------------------------------------------------------------------
    def open_panel(self, node_id: int | None = None) -> None:
        """Click the node's "Edit…" button and wait for the panel."""
        self.page.page.locator(f'.humansd-pose-editor[data-node="{node_id or self.node_id}"] .humansd-pose-open').click()
        self.page.page.locator(PANEL).wait_for(state="visible")
        self.page.page.wait_for_function("() => !document.querySelector('.humansd-panel canvas') ? false : "
                                         "document.querySelector('.humansd-panel canvas').clientWidth > 0")
        self.page.next_frame()

    def panel_open(self) -> bool:
        return self.page.page.locator(PANEL).count() > 0

    def close_panel(self) -> None:
        if self.panel_open():
            self.click("close")
            self.page.page.locator(PANEL).wait_for(state="detached")

    def click(self, action: str) -> None:
        """Click a panel button by its action (``data-action``)."""
        self.page.page.locator(f'{PANEL} [data-action="{action}"]').click()
        self.page.next_frame()

    panel_canvas = f"{PANEL} .humansd-panel-view canvas"

    def panel_joint_on_page(self, frame: dict[str, Any], person: int, coco: int) -> tuple[float, float]:
        """Page point of a joint in the panel at its fitted zoom (the node's placement is "fit" there too)."""
        return self.joint_on_page(frame, person, coco, self.panel_canvas, margin=PANEL_MARGIN)
