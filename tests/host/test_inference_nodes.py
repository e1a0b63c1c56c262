"""The HumanSD inference nodes as ComfyUI serves them (registration, inputs, categories)."""
from __future__ import annotations

import pytest

from .comfy_server import PACK_NAME, ComfyHost

pytestmark = pytest.mark.host

INFERENCE_NODES = ("HumanSDCheckpointLoader", "HumanSDModelPatch", "HumanSDPoseConditioning", "HumanSDSampler",
                   "HumanSDPoseScore")


def test_nodes_are_registered_with_tooltips_and_categories(comfy_host: ComfyHost) -> None:
    info = comfy_host.object_info()
    assert not [line for line in comfy_host.log_text().splitlines() if "IMPORT FAILED" in line and PACK_NAME in line]
    for name in INFERENCE_NODES:
        node = info[name]
        assert node["category"].startswith("HumanSD/"), name
        assert node["description"], name
        for section in ("required", "optional"):
            for input_name, spec in node["input"].get(section, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{name}.{input_name} has no tooltip"


def test_sampler_defaults_are_the_reference_settings(comfy_host: ComfyHost) -> None:
    required = comfy_host.object_info()["HumanSDSampler"]["input"]["required"]
    assert required["seed"][1]["default"] == 1234
    assert required["steps"][1]["default"] == 50
    assert required["cfg"][1]["default"] == 10.0
    assert required["sampler_name"][1]["default"] == "ddim"
    assert required["scheduler"][1]["default"] == "ddim_uniform"
    assert "ddim" in required["sampler_name"][0] and "euler" in required["sampler_name"][0]
    assert required["negative"][1]["default"].startswith("longbody, lowres, bad anatomy")
