"""The pose editor on HumanSD Pose from JSON in ComfyUI's real frontend, in headless Chromium.

Everything goes through the page as a user would: real mouse presses, moves (with steps)
and releases on the node's widget and in the panel, real keys (Ctrl+Z, Delete), the Run
button. The checks are on what travels: the node's pose_json value, the prompt the page
builds and the one the server ran, the saved workflow, and the skeleton image the run
saved, which must equal the core's render of the edited pose pixel for pixel.
"""
from __future__ import annotations

import base64
import copy
import io
import json
import math
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import requests
from PIL import Image

from humansd_core.pose import parse_pose_text, place_on_canvas, render_skeleton, skeleton_palette

from .browser import SCREENSHOT_DIR, VIEWPORT, ComfyPage
from .comfy_server import ComfyHost
from .comfy_setup import REPO_ROOT
from .pose_editor_page import PANEL, PoseEditorPage, body, joint

pytestmark = pytest.mark.host

WORKFLOWS = REPO_ROOT / "workflows"
MAIN = WORKFLOWS / "humansd_keypoints_to_image.json"
BATCH = WORKFLOWS / "humansd_pose_batch_to_images.json"
PRE_EDITOR = REPO_ROOT / "tests" / "data" / "editor" / "pre_editor_keypoints_to_image.json"
SKELETON_DATA = REPO_ROOT / "tests" / "data" / "skeleton"
LEFT_WRIST, RIGHT_WRIST, LEFT_ELBOW, LEFT_SHOULDER, RIGHT_SHOULDER = 9, 10, 7, 5, 6
ROUNDING = 0.006  # the editor writes coordinates it computes to 1/100 px
_TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def comfy_editor_page(browser, comfy_host: ComfyHost) -> Iterator[ComfyPage]:
    """One tab for the module (opening the frontend costs ~10 s here); each test loads its workflow."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        yield ComfyPage(context.new_page(), comfy_host.base_url).open()
    finally:
        context.close()


@pytest.fixture
def editor(comfy_editor_page: ComfyPage, request: pytest.FixtureRequest) -> Iterator[PoseEditorPage]:
    began = time.perf_counter()
    errors_before = len(comfy_editor_page.errors)
    yield PoseEditorPage(comfy_editor_page)
    _TIMES[request.node.name] = time.perf_counter() - began
    new_errors = comfy_editor_page.errors[errors_before:]
    assert not new_errors, f"the page reported errors: {new_errors}"


def teardown_module() -> None:
    if _TIMES:
        print("\npose editor browser tests (s): " + ", ".join(f"{k} {v:.1f}" for k, v in _TIMES.items())
              + f"; total {sum(_TIMES.values()):.1f}")


def _moved(before: list[float], after: list[float]) -> list[int]:
    """OpenPose-18 indices whose x, y or c differ."""
    return [k for k in range(18) if before[3 * k: 3 * k + 3] != after[3 * k: 3 * k + 3]]


def _assert_joint_moved(before: dict, after: dict, person: int, coco: int, dx: float, dy: float) -> None:
    bx, by, bc = joint(before, person, coco)
    ax, ay, ac = joint(after, person, coco)
    assert ax == pytest.approx(bx + dx, abs=ROUNDING) and ay == pytest.approx(by + dy, abs=ROUNDING), \
        f"joint {coco}: ({bx}, {by}) -> ({ax}, {ay}); expected a move by ({dx:.3f}, {dy:.3f})"
    assert ac == bc


def _drag_joint(editor: PoseEditorPage, frame: dict, person: int, coco: int, by: tuple[float, float],
                selector: str | None = None, margin: float = 0.0, steps: int = 8) -> tuple[float, float]:
    """Drag a joint's handle by ``by`` page pixels; returns the pose-pixel move that stands for."""
    start = editor.joint_on_page(frame, person, coco, selector, margin=margin)
    editor.page.drag(start, (start[0] + by[0], start[1] + by[1]), steps=steps)
    k = editor.page_per_pose_pixel(selector or editor.node_selector(), margin=margin)[0]
    return by[0] / k, by[1] / k


def _save_screenshot(editor: PoseEditorPage, name: str, rect: tuple[float, float, float, float]) -> None:
    """A page region as SCREENSHOT_DIR/<name>.png (the README's pictures come from these)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    editor.page.next_frame()
    left, top, width, height = rect
    editor.page.page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"),
                                clip={"x": left - 4, "y": top - 4, "width": width + 8, "height": height + 8})


def _png_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).copy()


def test_node_widget_draws_the_skeleton_where_the_joints_are(editor: PoseEditorPage) -> None:
    editor.load(MAIN)
    (frame,) = editor.pose()
    image = editor.bitmap(editor.node_selector())
    ratio = image.shape[1] / editor.box(editor.node_selector())["width"]  # device pixels per page pixel
    palette = skeleton_palette()
    box = editor.box(editor.node_selector())
    # midpoint of the left forearm (limb 8: left elbow -> left wrist) is drawn in colour 8
    (ex, ey), (wx, wy) = (editor.joint_on_page(frame, 0, c) for c in (LEFT_ELBOW, LEFT_WRIST))
    mx, my = ((ex + wx) / 2 - box["x"]) * ratio, ((ey + wy) / 2 - box["y"]) * ratio
    assert image[int(my), int(mx)].tolist() == palette[8].tolist()
    # the canvas is fitted whole, aspect kept, centred: the corners of the widget outside it are not black
    _, left, top, view, _ = editor.page_per_pose_pixel(editor.node_selector())
    assert math.isclose(view * 512, min(box["width"], box["height"]), rel_tol=1e-6)
    assert image[int((top - box["y"] + 3) * ratio), int((left - box["x"] + 3) * ratio)].tolist() == [0, 0, 0]
    editor.show(left=420, top=150)  # clear of the frontend's floating workflow menu
    _save_screenshot(editor, "pose_editor_node", editor.page.node_rect(editor.node_id))


def test_dragging_a_joint_edits_pose_json_the_prompt_and_the_history(editor: PoseEditorPage) -> None:
    editor.load(MAIN)
    original = editor.text()
    (before,) = editor.pose()
    dx, dy = _drag_joint(editor, before, 0, LEFT_WRIST, (37, -23))
    (after,) = editor.pose()
    _assert_joint_moved(before, after, 0, LEFT_WRIST, dx, dy)
    assert _moved(body(before, 0), body(after, 0)) == [7]  # OpenPose-18 left wrist only
    assert editor.prompt_pose() == editor.text()
    assert parse_pose_text(editor.text())[0].keypoints[0, LEFT_WRIST, 0] == pytest.approx(joint(after, 0, 9)[0])
    # the frontend's own history: Ctrl+Z brings the text back as it was, Ctrl+Y the edit again
    editor.undo()
    assert editor.text() == original
    editor.undo("Control+y")
    assert editor.pose() == [after]
    # dragging a shoulder moves the OpenPose neck with it (the shoulders' midpoint)
    dx, dy = _drag_joint(editor, after, 0, LEFT_SHOULDER, (10, 6))
    (moved,) = editor.pose()
    ls, rs = joint(moved, 0, LEFT_SHOULDER), joint(moved, 0, RIGHT_SHOULDER)
    assert body(moved, 0)[3:5] == pytest.approx([(ls[0] + rs[0]) / 2, (ls[1] + rs[1]) / 2], abs=ROUNDING)


def test_the_run_after_an_edit_draws_the_edited_pose_pixel_exact(editor: PoseEditorPage, comfy_host: ComfyHost) -> None:
    editor.load(MAIN)
    (before,) = editor.pose()
    dx, dy = _drag_joint(editor, before, 0, RIGHT_WRIST, (-31, -44))
    _assert_joint_moved(before, editor.pose()[0], 0, RIGHT_WRIST, dx, dy)
    sampler = editor.page.evaluate("() => app.graph.nodes.find((n) => n.type === 'HumanSDSampler').id")
    preview = editor.page.evaluate("() => app.graph.nodes.find((n) => n.type === 'PreviewImage').id")
    editor.page.set_widget(sampler, "steps", 2)  # the skeleton is what is checked; keep sampling short
    edited = editor.text()
    prompt_id = editor.page.queue()
    images = editor.page.wait_for_output(preview, timeout_ms=300_000)
    ran = comfy_host.get_json(f"/history/{prompt_id}")[prompt_id]["prompt"][2]
    assert ran[str(editor.node_id)]["inputs"]["pose_json"] == edited  # the prompt the server executed
    (item,) = images
    view = requests.get(comfy_host.base_url + "/view", timeout=60, params={
        "filename": item["filename"], "subfolder": item.get("subfolder", ""), "type": item["type"]})
    view.raise_for_status()
    with Image.open(io.BytesIO(view.content)) as picture:
        saved = np.asarray(picture.convert("RGB")).copy()
    sampler_inputs = ran[str(sampler)]["inputs"]
    size = (sampler_inputs["width"], sampler_inputs["height"])
    expected = render_skeleton(place_on_canvas(parse_pose_text(edited)[0], *size, sampler_inputs["placement"]),
                               threshold=sampler_inputs["threshold"], thickness=sampler_inputs["thickness"])
    assert saved.shape == expected.shape
    np.testing.assert_array_equal(saved, expected)
    original = render_skeleton(place_on_canvas(parse_pose_text(json.dumps(before))[0], *size, "fit"),
                               threshold=0.05, thickness=10)
    assert (saved != original).any(), "the run drew the pose from before the edit"


def test_panel_add_mirror_and_undo_twice(editor: PoseEditorPage) -> None:
    editor.load(MAIN)
    editor.open_panel()
    editor.click("add-person")
    (added,) = editor.pose()
    assert len(added["people"]) == 2
    new = 1
    assert editor.page.page.locator(f"{PANEL} .humansd-panel-person").input_value() == str(new)
    # make the new person asymmetric with a real drag in the panel, then mirror it
    dx, dy = _drag_joint(editor, added, new, LEFT_WRIST, (45, -60), editor.panel_canvas, margin=24)
    (moved,) = editor.pose()
    _assert_joint_moved(added, moved, new, LEFT_WRIST, dx, dy)
    editor.click("mirror-person")
    (mirrored,) = editor.pose()
    present = [joint(moved, new, c) for c in range(17)]
    centre = (min(p[0] for p in present) + max(p[0] for p in present)) / 2
    for coco, swapped in ((LEFT_WRIST, RIGHT_WRIST), (RIGHT_WRIST, LEFT_WRIST), (0, 0), (LEFT_ELBOW, 8)):
        old = joint(moved, new, swapped)
        assert joint(mirrored, new, coco)[:2] == pytest.approx([2 * centre - old[0], old[1]], abs=ROUNDING)
    assert mirrored["people"][0] == moved["people"][0]  # the other person is untouched
    box = editor.box(PANEL)
    _save_screenshot(editor, "pose_editor_panel", (box["x"], box["y"], box["width"], box["height"]))
    # the frontend's history, one step per action, the panel following the reloaded node
    editor.undo("undo")
    assert editor.pose() == [moved]
    editor.undo()  # Ctrl+Z with the panel open
    assert editor.pose() == [added]
    assert editor.panel_open() and f"node #{editor.node_id}" in editor.page.page.locator(f"{PANEL} .humansd-panel-title").inner_text()
    editor.undo("redo")
    assert editor.pose() == [moved]


def test_panel_person_tools_and_joints(editor: PoseEditorPage) -> None:
    editor.load(MAIN)
    editor.open_panel()
    (start,) = editor.pose()
    # clicking a joint selects its person; dragging inside the person's box moves all of it
    nose = editor.panel_joint_on_page(start, 0, 0)
    editor.page.page.mouse.click(*nose)
    editor.page.next_frame()
    assert editor.page.page.locator(f"{PANEL} .humansd-panel-joint").input_value() == "0"
    hip = editor.panel_joint_on_page(start, 0, 11)
    grab = (hip[0] + 12, hip[1] - 30)  # inside the box, on no joint
    editor.page.drag(grab, (grab[0] + 30, grab[1] + 20), steps=6)
    (moved,) = editor.pose()
    k = editor.page_per_pose_pixel(editor.panel_canvas, margin=24)[0]
    for c in range(17):
        _assert_joint_moved(start, moved, 0, c, 30 / k, 20 / k)
    # the rotate handle: a quarter turn about the box centre
    xs = [joint(moved, 0, c)[0] for c in range(17)]
    ys = [joint(moved, 0, c)[1] for c in range(17)]
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    _, left, top, view, _ = editor.page_per_pose_pixel(editor.panel_canvas, margin=24)
    centre = (left + view * cx, top + view * cy)
    handle = (centre[0], top + view * min(ys) - 10 - 28)
    radius = centre[1] - handle[1]
    editor.page.drag(handle, (centre[0] + radius, centre[1]), steps=12)
    (turned,) = editor.pose()
    for c in range(17):
        x, y, _ = joint(moved, 0, c)
        expected = (cx - (y - cy), cy + (x - cx))  # clockwise on screen
        assert joint(turned, 0, c)[:2] == pytest.approx(expected, abs=0.05)
    # hide a joint with the Delete key (the node stays), restore it with the button
    editor.page.page.locator(f"{PANEL} .humansd-panel-joint").select_option("9")
    editor.page.page.locator(PANEL).focus()
    editor.page.page.keyboard.press("Delete")
    editor.page.next_frame()
    (hidden,) = editor.pose()
    assert joint(hidden, 0, LEFT_WRIST) == [*joint(turned, 0, LEFT_WRIST)[:2], 0]
    assert editor.page.evaluate("(id) => Boolean(app.graph.getNodeById(id))", editor.node_id)
    editor.click("restore-joint")
    (restored,) = editor.pose()
    assert joint(restored, 0, LEFT_WRIST) == [*joint(turned, 0, LEFT_WRIST)[:2], 1]
    # canvas size
    editor.page.page.locator(f'{PANEL} [data-field="canvas-width"]').fill("640")
    editor.click("canvas-size")
    (wider,) = editor.pose()
    assert (wider["canvas_width"], wider["canvas_height"]) == (640, 512)
    assert body(wider, 0) == body(restored, 0)



def test_panel_zoom_and_pan_keep_the_mouse_on_the_joints(editor: PoseEditorPage) -> None:
    editor.load(MAIN)
    editor.open_panel()
    (frame,) = editor.pose()
    box = editor.box(editor.panel_canvas)
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    k, _, _, _, _ = editor.page_per_pose_pixel(editor.panel_canvas, margin=24)
    fitted_wrist = editor.panel_joint_on_page(frame, 0, LEFT_WRIST)
    editor.click("zoom-in")  # x1.25 about the middle of the view
    assert editor.page.page.locator(f"{PANEL} .humansd-panel-zoom").inner_text() == "125%"
    wrist = (centre[0] + (fitted_wrist[0] - centre[0]) * 1.25, centre[1] + (fitted_wrist[1] - centre[1]) * 1.25)
    editor.page.drag((box["x"] + 6, box["y"] + 6), (box["x"] + 56, box["y"] + 36), steps=5)  # pan: empty corner
    wrist = (wrist[0] + 50, wrist[1] + 30)
    editor.page.drag(wrist, (wrist[0] + 25, wrist[1] - 10), steps=6)
    (after,) = editor.pose()
    _assert_joint_moved(frame, after, 0, LEFT_WRIST, 25 / (k * 1.25), -10 / (k * 1.25))
    editor.click("fit")
    assert editor.panel_joint_on_page(after, 0, LEFT_WRIST) == pytest.approx(
        (fitted_wrist[0] + 25 / 1.25, fitted_wrist[1] - 10 / 1.25), abs=0.02)


def test_paste_a_pose_keypoint_frame(editor: PoseEditorPage) -> None:
    editor.load(MAIN)
    editor.open_panel()
    (start,) = editor.pose()
    paste = editor.page.page.locator(f"{PANEL} .humansd-panel-paste")
    note = editor.page.page.locator(f"{PANEL} .humansd-panel-note[data-state]")
    paste.fill('[{"canvas_width": 512, "canvas_height": 512, "people": [{"pose_keypoints_2d": [1, 2, 0.5]}]}]')
    editor.click("paste-frame")
    note.and_(editor.page.page.locator('[data-state="error"]')).wait_for()
    assert "pasted pose frame 0: people[0].pose_keypoints_2d: expected 54 or 75 or 51 numbers, got 3" in note.inner_text()
    assert editor.pose() == [start]  # nothing changed
    body_n = [v / 512 if i % 3 != 2 else v for i, v in enumerate(body(start, 0))]
    body_n[3 * 4] += 0.1  # the right wrist further right
    hand = [0.5, 0.5, 1.0] * 21
    pasted = [{"canvas_width": 512, "canvas_height": 512,
               "people": [{"pose_keypoints_2d": body_n, "hand_left_keypoints_2d": hand, "face_keypoints_2d": None}]}]
    paste.fill(json.dumps(pasted))
    editor.click("paste-frame")
    note.and_(editor.page.page.locator('[data-state="ok"]')).wait_for()
    (frame,) = editor.pose()
    assert body(frame, 0)[3 * 4] == pytest.approx(body(start, 0)[3 * 4] + 51.2, abs=1e-3)
    assert frame["people"][0]["hand_left_keypoints_2d"][:3] == [256, 256, 1]
    assert editor.prompt_pose() == editor.text()


def test_a_saved_workflow_reloads_the_same_pose(editor: PoseEditorPage) -> None:
    editor.load(MAIN)
    (before,) = editor.pose()
    _drag_joint(editor, before, 0, LEFT_ELBOW, (-20, 15))
    saved = editor.page.evaluate("() => app.graph.serialize()")
    text, bitmap = editor.text(), editor.bitmap(editor.node_selector())
    editor.load(BATCH)
    assert editor.text() != text
    editor.load(json.loads(json.dumps(saved)), "saved")
    assert editor.text() == text
    node = next(n for n in saved["nodes"] if n["type"] == "HumanSDPoseFromJSON")
    assert node["widgets_values"][0] == text and len(node["widgets_values"]) == 8  # the editor adds no value
    np.testing.assert_array_equal(editor.bitmap(editor.node_selector()), bitmap)


def test_frames_of_the_batch_workflow(editor: PoseEditorPage) -> None:
    editor.load(BATCH)
    frames = editor.pose()
    assert len(frames) == 4 and editor.state()["frame"] == 0
    bar = f'.humansd-pose-editor[data-node="{editor.node_id}"]'
    for _ in range(2):
        editor.page.page.locator(f'{bar} button[title="Next frame"]').click()
    editor.wait_ready()
    assert editor.state()["frame"] == 2
    output, _ = editor.output_size()
    assert output == (128, 128)  # the node's width/height: the pose is placed (fit) on 128 x 128
    dx, dy = _drag_joint(editor, frames[2], 0, LEFT_WRIST, (9, 7))
    edited = editor.pose()
    assert [edited[i] == frames[i] for i in range(4)] == [True, True, False, True]
    _assert_joint_moved(frames[2], edited[2], 0, LEFT_WRIST, dx, dy)
    editor.open_panel()
    assert "frame 3/4" in editor.page.page.locator(f"{PANEL} .humansd-panel-frame").inner_text()
    editor.click("duplicate-frame")
    duplicated = editor.pose()
    assert len(duplicated) == 5 and duplicated[3] == duplicated[2] == edited[2]
    assert "frame 4/5" in editor.page.page.locator(f"{PANEL} .humansd-panel-frame").inner_text()
    assert json.loads(editor.prompt_pose()) == duplicated


def test_resize_collapse_clone_and_copy_paste_keep_the_editor_working(editor: PoseEditorPage) -> None:
    page = editor.page
    editor.load(MAIN)
    first = editor.box(editor.node_selector())
    # resize with the mouse from the node's bottom-right corner
    left, top, width, height = page.node_rect(editor.node_id)
    page.drag((left + width - 3, top + height - 3), (left + width + 120, top + height + 90), steps=8)
    editor.wait_ready()
    second = editor.box(editor.node_selector())
    assert second["width"] > first["width"] + 100 and second["height"] > first["height"]
    (frame,) = editor.pose()
    dx, dy = _drag_joint(editor, frame, 0, LEFT_WRIST, (12, 8))
    _assert_joint_moved(frame, editor.pose()[0], 0, LEFT_WRIST, dx, dy)
    # collapse and expand with the title's toggle (the frontend's own control)
    page.evaluate("(id) => app.graph.getNodeById(id).collapse()", editor.node_id)
    page.next_frame()
    assert not page.page.locator(editor.node_selector()).is_visible()
    page.evaluate("(id) => app.graph.getNodeById(id).collapse()", editor.node_id)
    editor.wait_ready()
    (frame,) = editor.pose()
    dx, dy = _drag_joint(editor, frame, 0, LEFT_WRIST, (-5, 9))
    _assert_joint_moved(frame, editor.pose()[0], 0, LEFT_WRIST, dx, dy)
    # copy and paste with the keyboard on the canvas: the copy edits its own text
    original_text = editor.text()
    title = page.node_rect(editor.node_id)
    page.page.mouse.click(title[0] + 60, title[1] + 12)  # select the node by its title
    page.page.keyboard.press("Control+c")
    page.page.mouse.move(title[0] + title[2] + 150, title[1] + 20)
    page.page.keyboard.press("Control+v")
    page.page.wait_for_function("() => app.graph.nodes.filter((n) => n.type === 'HumanSDPoseFromJSON').length === 2")
    copy_id = page.evaluate("(id) => app.graph.nodes.find((n) => n.type === 'HumanSDPoseFromJSON' && n.id !== id).id",
                            editor.node_id)
    editor.show(node_id=copy_id)
    assert editor.text(copy_id) == original_text
    (frame,) = editor.pose(copy_id)
    start = editor.joint_on_page(frame, 0, LEFT_WRIST, node_id=copy_id)
    page.drag(start, (start[0] + 15, start[1]), steps=5)
    assert editor.text(editor.node_id) == original_text and editor.text(copy_id) != original_text
    # clone from the node's own menu item code path (LGraphNode.clone), as the context menu does
    clone_id = page.evaluate("(id) => { const n = app.graph.getNodeById(id); const c = n.clone(); "
                             "c.pos = [n.pos[0], n.pos[1] + n.size[1] + 60]; app.graph.add(c); return c.id; }", copy_id)
    editor.show(node_id=clone_id)
    assert editor.text(clone_id) == editor.text(copy_id)
    assert editor.state(clone_id)["state"] == "ok"


def test_editing_the_text_updates_the_drawing(editor: PoseEditorPage) -> None:
    editor.load(MAIN)
    (frame,) = editor.pose()
    moved = copy.deepcopy(frame)
    body(moved, 0)[21:23] = [400, 200]  # the left wrist
    textarea = editor.page.page.locator(f'.comfy-multiline-input').first
    textarea.click()
    editor.page.page.keyboard.press("Control+a")
    editor.page.page.keyboard.insert_text(json.dumps(moved))
    editor.wait_ready()
    assert editor.page.evaluate("(id) => app.graph.getNodeById(id).humansdPoseEditor.doc.frames[0].people[0]"
                                ".pose_keypoints_2d.slice(21, 23)", editor.node_id) == [400, 200]
    editor.page.page.keyboard.insert_text("}")  # now broken JSON
    editor.page.page.wait_for_function("(id) => app.graph.getNodeById(id).humansdPoseEditor.element.dataset.state "
                                       "=== 'error'", arg=editor.node_id)
    assert "pose_json: " in editor.state()["message"] and "line 1" in editor.state()["message"]


def test_a_reference_image_is_shown_and_never_written(editor: PoseEditorPage, comfy_host: ComfyHost) -> None:
    photo = np.zeros((256, 256, 3), np.uint8)
    photo[...] = (30, 140, 200)
    png = Path(comfy_host.work_dir) / "reference.png"
    Image.fromarray(photo).save(png)
    name = comfy_host.upload_image("editor_photo.png", png.read_bytes())
    editor.load(MAIN)
    text = editor.text()
    editor.open_panel()
    editor.page.page.locator(f"{PANEL} .humansd-panel-reference").select_option(name)
    editor.page.page.wait_for_function("(id) => { const s = app.graph.getNodeById(id).humansdPoseEditor.scene();"
                                       " return s.reference?.complete && s.reference.naturalWidth > 0; }",
                                       arg=editor.node_id)
    editor.click("close")
    editor.wait_ready()
    assert editor.text() == text and editor.prompt_pose() == text
    props = editor.page.evaluate("(id) => app.graph.getNodeById(id).properties", editor.node_id)
    assert props["humansd_reference_image"]["image"] == name
    image = editor.bitmap(editor.node_selector())
    height, width = image.shape[:2]
    centre_row = image[height // 2]
    blue = (np.abs(centre_row.astype(int) - [15, 70, 100]).max(axis=1) <= 20)  # the photo at opacity 0.5 over black
    assert blue.sum() > width // 4, "the reference image is not under the skeleton"


def test_a_workflow_saved_before_the_editor_opens_fine(editor: PoseEditorPage, comfy_host: ComfyHost) -> None:
    saved = json.loads(PRE_EDITOR.read_text())
    editor.load(saved, "pre-editor")
    node = next(n for n in saved["nodes"] if n["type"] == "HumanSDPoseFromJSON")
    spec = comfy_host.object_info()["HumanSDPoseFromJSON"]["input"]
    order = spec.get("input_order", {}).get("required") or list(spec["required"])
    values = editor.page.evaluate("(id) => Object.fromEntries(app.graph.getNodeById(id).widgets"
                                  ".map((w) => [w.name, w.value]))", editor.node_id)
    assert {name: values[name] for name in order} == dict(zip(order, node["widgets_values"]))
    assert editor.state()["state"] == "ok"
    size = editor.page.evaluate("(id) => app.graph.getNodeById(id).size", editor.node_id)
    assert size[1] >= node["size"][1]  # grown to fit the editor, never shrunk
    api = json.loads((WORKFLOWS / "api" / "humansd_keypoints_to_image.json").read_text())
    assert editor.page.graph_to_prompt()[str(editor.node_id)]["inputs"] == api[str(editor.node_id)]["inputs"]


def test_the_page_draws_the_reference_skeletons_closely(editor: PoseEditorPage) -> None:
    """The page's own drawing (web/lib/skeleton.js) against the core's fixtures: same palette,
    nearly the same pixels (OpenCV's edge rounding is not copied; the server draws the real one)."""
    editor.load(MAIN)
    cases = json.loads((SKELETON_DATA / "cases.json").read_text())
    drawn = editor.page.evaluate("""async (cases) => {
        const { renderSkeleton, PALETTE } = await import('/extensions/ComfyUI-HumanSD/lib/skeleton.js');
        const out = {};
        for (const [name, c] of Object.entries(cases)) {
            const image = new ImageData(c.width, c.height);
            renderSkeleton(image, c.people_coco17_xyc, { threshold: 0.05, thickness: 10 });
            let text = '';
            for (let i = 0; i < image.data.length; i += 0x8000) text += String.fromCharCode(...image.data.subarray(i, i + 0x8000));
            out[name] = btoa(text);
        }
        return { out, palette: PALETTE };
    }""", cases)
    assert drawn["palette"] == skeleton_palette().tolist()
    for name, case in cases.items():
        reference = _png_pixels(SKELETON_DATA / case["image"])
        page = np.frombuffer(base64.b64decode(drawn["out"][name]), np.uint8).reshape(case["height"], case["width"], 4)[..., :3]
        ink = reference.any(axis=-1).sum()
        differ = (page != reference).any(axis=-1).sum()
        assert differ <= 0.04 * ink, f"{name}: {differ} of {ink} skeleton pixels differ"
        colours = {tuple(c) for c in page.reshape(-1, 3)} - {(0, 0, 0)}
        assert colours <= {tuple(c) for c in skeleton_palette().tolist()}, f"{name}: colours off the palette"
