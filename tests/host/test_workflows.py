"""Every shipped UI workflow has an API twin, and the UI file's note says which model its settings are for.

That each twin says what its UI file says is proven by the frontend itself
(``test_frontend_workflows.py``: ``app.graphToPrompt()`` of the dropped file equals the twin)."""
from __future__ import annotations

import json

import pytest

from .comfy_setup import REPO_ROOT

pytestmark = pytest.mark.host

WORKFLOWS = REPO_ROOT / "workflows"
UI_FILES = sorted(WORKFLOWS.glob("*.json"))
API_FILES = sorted((WORKFLOWS / "api").glob("*.json"))


def test_workflows_exist_and_pair_up() -> None:
    assert UI_FILES, f"no UI workflows in {WORKFLOWS}"
    assert [p.name for p in UI_FILES] == [p.name for p in API_FILES], "UI workflows and API twins differ"


@pytest.mark.parametrize("name", ["humansd_keypoints_to_image", "humansd_pose_batch_to_images", "humansd_lora", "humansd_photo_to_image"])
def test_workflow_note_says_which_settings_it_carries(name: str) -> None:
    """A workflow set for one model tells users of the other what to change (the note lives only in the UI)."""
    ui = json.loads((WORKFLOWS / f"{name}.json").read_text())
    notes = [n["widgets_values"][0] for n in ui["nodes"] if n["type"] == "Note"]
    assert len(notes) == 1, f"{name}: expected one Note node, found {len(notes)}"
    assert "humansd-v1" in notes[0] and "cfg 10" in notes[0] and "50" in notes[0]
    api = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
    assert all(node["class_type"] != "Note" for node in api.values())
