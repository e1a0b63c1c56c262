"""Every shipped UI workflow (format 0.4) has an API twin that says the same thing."""
from __future__ import annotations

import json

import pytest

from .comfy_server import ComfyHost
from .comfy_setup import REPO_ROOT
from .workflow_forms import api_to_comparable, ui_to_comparable

pytestmark = pytest.mark.host

WORKFLOWS = REPO_ROOT / "workflows"
UI_FILES = sorted(WORKFLOWS.glob("*.json"))
API_FILES = sorted((WORKFLOWS / "api").glob("*.json"))


def test_workflows_exist_and_pair_up() -> None:
    assert UI_FILES, f"no UI workflows in {WORKFLOWS}"
    assert [p.name for p in UI_FILES] == [p.name for p in API_FILES], "UI workflows and API twins differ"


@pytest.mark.parametrize("ui_path", UI_FILES, ids=lambda p: p.stem)
def test_ui_workflow_matches_its_api_twin(comfy_host: ComfyHost, ui_path) -> None:
    info = comfy_host.object_info()
    ui = ui_to_comparable(json.loads(ui_path.read_text()), info)
    api = api_to_comparable(json.loads((WORKFLOWS / "api" / ui_path.name).read_text()), info)
    assert ui == api


@pytest.mark.parametrize("name", ["humansd_keypoints_to_image", "humansd_pose_batch_to_images", "humansd_lora", "humansd_photo_to_image"])
def test_workflow_note_says_which_settings_it_carries(name: str) -> None:
    """A workflow set for one model tells users of the other what to change (the note lives only in the UI)."""
    ui = json.loads((WORKFLOWS / f"{name}.json").read_text())
    notes = [n["widgets_values"][0] for n in ui["nodes"] if n["type"] == "Note"]
    assert len(notes) == 1, f"{name}: expected one Note node, found {len(notes)}"
    assert "humansd-v1" in notes[0] and "cfg 10" in notes[0] and "50" in notes[0]
    api = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
    assert all(node["class_type"] != "Note" for node in api.values())


def test_comparison_sees_a_changed_widget(comfy_host: ComfyHost) -> None:
    """The check above can fail: one edited widget value makes the forms differ."""
    info = comfy_host.object_info()
    ui = json.loads(UI_FILES[0].read_text())
    api = json.loads((WORKFLOWS / "api" / UI_FILES[0].name).read_text())
    node = next(n for n in ui["nodes"] if n.get("widgets_values"))
    values = node["widgets_values"]
    index = next(i for i, v in enumerate(values) if isinstance(v, (int, float)) and not isinstance(v, bool))
    values[index] += 8
    assert ui_to_comparable(ui, info) != api_to_comparable(api, info)
