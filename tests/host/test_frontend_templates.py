"""The pack's workflows as templates: listed by the server and opened from the frontend's template browser.

ComfyUI lists ``<pack>/workflows/*.json`` (top level only) at ``/api/workflow_templates``
and serves them under ``/api/workflow_templates/<pack>/``; the template browser shows them
in a group of their own named after the pack folder (frontend 1.32.9: the "Extensions"
group of its side panel; older frontends called it "Custom Nodes").
"""
from __future__ import annotations

import json

import pytest

from .browser import ComfyPage
from .comfy_server import PACK_NAME, ComfyHost
from .comfy_setup import REPO_ROOT
from .prompt_diff import prompt_mismatches

pytestmark = [pytest.mark.host, pytest.mark.browser]

WORKFLOWS = REPO_ROOT / "workflows"
TEMPLATES = sorted(p.stem for p in WORKFLOWS.glob("*.json"))
OPENED = "humansd_keypoints_to_image"


def test_server_lists_the_ui_workflows_as_the_packs_templates(comfy_host: ComfyHost) -> None:
    listed = comfy_host.get_json("/api/workflow_templates")
    assert sorted(listed[PACK_NAME]) == TEMPLATES  # the API twins in workflows/api/ are not templates
    served = comfy_host.get_json(f"/api/workflow_templates/{PACK_NAME}/{OPENED}.json")
    assert served == json.loads((WORKFLOWS / f"{OPENED}.json").read_text())


def test_a_pack_template_opens_from_the_template_browser(comfy_page: ComfyPage) -> None:
    page = comfy_page.page
    comfy_page.run_command("Comfy.BrowseTemplates")
    dialog = comfy_page.templates_dialog()
    dialog.wait_for(state="visible")
    nav = page.get_by_role("dialog").locator("nav")
    pack_entry = nav.get_by_text(PACK_NAME, exact=True)
    if not pack_entry.is_visible():  # its group is collapsible
        nav.get_by_text("Extensions", exact=True).click()
    pack_entry.click()
    for name in TEMPLATES:
        page.get_by_test_id(f"template-workflow-{name}").wait_for(state="visible")
    cards = page.locator("[data-testid^='template-workflow-']")
    assert cards.count() == len(TEMPLATES)  # only the pack's own under its entry
    comfy_page.screenshot("template_browser_pack")

    page.get_by_test_id(f"template-workflow-{OPENED}").click()
    dialog.wait_for(state="hidden")
    ui = json.loads((WORKFLOWS / f"{OPENED}.json").read_text())
    page.wait_for_function("(n) => app.graph.nodes.length === n", arg=len(ui["nodes"]))
    assert comfy_page.unregistered_node_types() == []
    twin = json.loads((WORKFLOWS / "api" / f"{OPENED}.json").read_text())
    assert prompt_mismatches(comfy_page.graph_to_prompt(), twin) == []
    # The cards ask for <name>.jpg beside each template; the pack ships none, and the frontend shows
    # its default picture for a missing one. Every other error counts.
    thumbnails = f"/api/workflow_templates/{PACK_NAME}/"
    errors = [e for e in comfy_page.errors if not (thumbnails in e and e.startswith("404 ") and e.endswith(".jpg"))]
    assert not errors, "\n".join(errors)
