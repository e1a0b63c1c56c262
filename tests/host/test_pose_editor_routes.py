"""The pose editor's server side in a real ComfyUI, over HTTP: its routes and its files."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import requests
from PIL import Image

from .comfy_server import PACK_NAME, ComfyHost
from .comfy_setup import REPO_ROOT

pytestmark = pytest.mark.host

PARSE = "/humansd/pose/parse"
WEB_FILES = sorted(p.relative_to(REPO_ROOT / "web").as_posix() for p in (REPO_ROOT / "web").rglob("*.js"))


def _parse(host: ComfyHost, body: object, prefix: str = "/api") -> requests.Response:
    return requests.post(host.base_url + prefix + PARSE, data=json.dumps(body), timeout=60,
                         headers={"Content-Type": "application/json"})


def _frame(body: list[float], **extra: object) -> dict:
    return {"canvas_width": 512, "canvas_height": 512, "people": [{"pose_keypoints_2d": body}], **extra}


STANDING = [256, 100, 1, 256, 160, 1, 206, 160, 1, 186, 240, 1, 176, 320, 1, 306, 160, 1, 326, 240, 1, 336, 320, 1,
            226, 320, 1, 221, 410, 1, 216, 490, 1, 286, 320, 1, 291, 410, 1, 296, 490, 1, 244, 88, 1, 268, 88, 1,
            230, 96, 1, 282, 96, 1]


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_a_pose_keypoint_list_is_answered_in_the_editors_layout(comfy_host: ComfyHost, prefix: str) -> None:
    frames = [_frame(STANDING), _frame([v / 512 if i % 3 != 2 else v for i, v in enumerate(STANDING)], version=1.3)]
    answer = _parse(comfy_host, {"text": json.dumps(frames)}, prefix)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ok"] is True and body["single"] is False and body["format"] == "OpenPose-18 frames"
    assert len(body["frames"]) == 2 and body["frames"][1]["version"] == 1.3
    assert body["frames"][0]["people"][0]["pose_keypoints_2d"] == STANDING
    np.testing.assert_allclose(body["frames"][1]["people"][0]["pose_keypoints_2d"], STANDING, atol=1e-3)
    assert any("normalised" in note for note in body["notes"])


def test_body25_and_coco_are_answered_as_openpose18(comfy_host: ComfyHost) -> None:
    body25 = (REPO_ROOT / "humansd_core" / "assets" / "poses" / "dance_body25.json").read_text()
    coco = (REPO_ROOT / "humansd_core" / "assets" / "poses" / "jump_coco.json").read_text()
    for text, kind in ((body25, "BODY_25"), (coco, "COCO annotations")):
        body = _parse(comfy_host, {"text": text}).json()
        assert body["ok"] is True and kind in body["format"], body
        assert all(len(p["pose_keypoints_2d"]) == 54 for f in body["frames"] for p in f["people"])
        assert body["notes"], f"{kind}: the answer should say what the first edit changes"


@pytest.mark.parametrize(("text", "message"), [
    ('{"people": [{"pose_keypoints_2d": [1, 2, 3]}], "canvas_width": 8, "canvas_height": 8}',
     "pose_json: people[0].pose_keypoints_2d: expected 54 or 75 or 51 numbers, got 3"),
    ('{"canvas_width": 512, "canvas_height": 512, "people": [{"pose_keypoints_2d": [0, 0, 2.5' + ", 0" * 51 + "]}]}",
     "pose_json: people[0].pose_keypoints_2d point 0: confidence 2.5 outside [0, 1]"),
    ('[{"people": [{"pose_keypoints_2d": [0.5, 0.5, 1' + ", 0.5, 0.5, 1" * 17 + "]}]}]",
     "pose_json frame 0: people[0]: coordinates look normalised (all within [-1, 2]) but no canvas size"),
    ('{"annotations": [{"keypoints": [1, 2]}]}', "pose_json: annotations[0].keypoints: expected 51 numbers, got 2"),
    ("{'people': []}", "pose_json: malformed JSON at line 1 column 2"),
])
def test_a_bad_paste_gets_the_readers_message(comfy_host: ComfyHost, text: str, message: str) -> None:
    answer = _parse(comfy_host, {"text": text})
    assert answer.status_code == 200, answer.text  # the request was fine; the pose is not
    body = answer.json()
    assert body["ok"] is False and message in body["error"], body


def test_the_error_names_the_source_it_is_given(comfy_host: ComfyHost) -> None:
    body = _parse(comfy_host, {"text": '{"people": [{"pose_keypoints_2d": []}]}', "source": "pasted pose"}).json()
    assert body["ok"] is False and body["error"].startswith("pasted pose: canvas: no canvas size"), body


@pytest.mark.parametrize("body", [{"pose": "{}"}, ["text"], {"text": 5}])
def test_a_request_without_text_is_a_bad_request(comfy_host: ComfyHost, body: object) -> None:
    answer = _parse(comfy_host, body)
    assert answer.status_code == 400
    assert "expected a JSON object" in answer.json()["error"]


def test_the_images_route_lists_input_images(comfy_host: ComfyHost) -> None:
    png = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 20, 30)).save(png, format="PNG")
    name = comfy_host.upload_image("editor_reference.png", png.getvalue())
    comfy_host.put_input("not_an_image.json", b"{}")
    images = requests.get(comfy_host.base_url + "/api/humansd/pose/images", timeout=60).json()["images"]
    assert name in images and "not_an_image.json" not in images


def test_the_page_gets_the_editors_modules(comfy_host: ComfyHost) -> None:
    listed = requests.get(comfy_host.base_url + "/extensions", timeout=60).json()
    ours = sorted(url.split(f"/extensions/{PACK_NAME}/", 1)[1] for url in listed if f"/extensions/{PACK_NAME}/" in url)
    assert ours == WEB_FILES and "pose_editor.js" in ours
    for name in [*WEB_FILES, "pose_editor.css"]:
        answer = requests.get(f"{comfy_host.base_url}/extensions/{PACK_NAME}/{name}", timeout=60)
        assert answer.status_code == 200, name
        assert answer.text == (REPO_ROOT / "web" / name).read_text()
