"""HumanSD inference nodes in a real ComfyUI, on a tiny self-describing checkpoint.

The tiny model (``tiny_config``, random float32 weights) goes through the loader's
metadata path and ComfyUI's own SD2 classes, samplers and VAE code, so these tests
check the nodes' behaviour in seconds; the full-size layout is covered by
``test_inference_full.py``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from humansd_core import HumanSDPipeline, defaults
from humansd_core.models.checkpoint import read_state_dict
from humansd_core.pose import parse_pose_data

from checkpoints import tiny_checkpoint
from .comfy_server import ComfyHost, PromptError
from .server_env import ServerEnv
from .inference_prompts import (
    add_node,
    load_api,
    node_id,
    person_frame,
    saved_images,
    saved_latent,
    set_inputs,
)

pytestmark = pytest.mark.host

SIZE = 64
PROMPT = "a woman dancing"
TINY = "humansd_tiny_test.safetensors"
PLAIN_SD = "plain_sd_4ch_test.safetensors"


@pytest.fixture(scope="module")
def tiny_path(comfy_host: ComfyHost) -> Path:
    return tiny_checkpoint(comfy_host.checkpoints_dir / TINY, seed=3)


@pytest.fixture(scope="module")
def plain_sd_name(comfy_host: ComfyHost, tiny_path: Path) -> str:
    """A 4-channel (plain text-to-image SD) file: the tiny model with its UNet input conv cut to 4 channels."""
    state = read_state_dict(tiny_path)
    key = "model.diffusion_model.input_blocks.0.0.weight"
    state[key] = state[key][:, :4].contiguous()
    save_file(state, str(comfy_host.checkpoints_dir / PLAIN_SD))
    return PLAIN_SD


def sampler_prompt(frames: list[dict[str, Any]] | dict[str, Any], **sampler: Any) -> dict[str, Any]:
    """The shipped keypoints → image workflow on the tiny model at 64², 2 steps, plus a SaveLatent."""
    prompt = load_api("humansd_keypoints_to_image")
    set_inputs(prompt, "HumanSDCheckpointLoader", ckpt_name=TINY)
    set_inputs(prompt, "HumanSDPoseFromJSON", pose_json=json.dumps(frames))
    settings = {"prompt": PROMPT, "width": SIZE, "height": SIZE, "steps": 2, "seed": 7, **sampler}
    set_inputs(prompt, "HumanSDSampler", **settings)
    add_node(prompt, "SaveLatent", samples=[node_id(prompt, "HumanSDSampler"), 0], filename_prefix="latents/humansd")
    return prompt


def run(host: ComfyHost, prompt: dict[str, Any]) -> dict[str, Any]:
    return host.run_prompt(prompt, timeout=240)


def test_one_pose_gives_one_image_of_the_requested_size(comfy_host: ComfyHost, tiny_path: Path) -> None:
    history = run(comfy_host, sampler_prompt(person_frame(SIZE)))
    image = saved_images(comfy_host, history, node_id(load_api("humansd_keypoints_to_image"), "SaveImage"))
    assert image.shape == (1, SIZE, SIZE, 3)
    assert image.std() > 0.01  # a decoded image, not a constant
    assert tuple(saved_latent(comfy_host, history).shape) == (1, 4, SIZE // 8, SIZE // 8)


def test_a_batch_of_frames_gives_one_image_per_frame(comfy_host: ComfyHost, tiny_path: Path) -> None:
    frames = [person_frame(SIZE, dx) for dx in (-8.0, 0.0, 8.0)]
    history = run(comfy_host, sampler_prompt(frames))
    images = saved_images(comfy_host, history, "4")
    skeletons = saved_images(comfy_host, history, "5")
    assert images.shape == skeletons.shape == (3, SIZE, SIZE, 3)
    assert not np.array_equal(skeletons[0], skeletons[2])  # each image got its own frame
    history = run(comfy_host, sampler_prompt(person_frame(SIZE), batch_size=2))
    pair = saved_images(comfy_host, history, "4")
    assert pair.shape == (2, SIZE, SIZE, 3) and not np.allclose(pair[0], pair[1])


def test_modular_workflow_with_pose_conditioning_node(comfy_host: ComfyHost, tiny_path: Path) -> None:
    prompt = load_api("humansd_pose_batch_to_images")
    set_inputs(prompt, "HumanSDCheckpointLoader", ckpt_name=TINY)
    set_inputs(prompt, "HumanSDPoseFromJSON", pose_json=json.dumps([person_frame(SIZE), person_frame(SIZE, 6.0)]),
               width=SIZE, height=SIZE)
    set_inputs(prompt, "KSampler", steps=2)
    images = saved_images(comfy_host, run(comfy_host, prompt))
    assert images.shape == (2, SIZE, SIZE, 3)


# --- what the UNet receives ------------------------------------------------------------

@pytest.fixture(scope="module")
def probe_host(tmp_path_factory: pytest.TempPathFactory, server_env: ServerEnv, installed_pack: Path,
               tiny_path: Path) -> Iterator[ComfyHost]:
    """A second server with the test-only probe pack (tests/host/probe_pack) next to this pack."""
    probe_nodes = tmp_path_factory.mktemp("probe_custom_nodes")
    shutil.copytree(Path(__file__).parent / "probe_pack", probe_nodes / "humansd_test_probe")
    host = ComfyHost(server_env, [installed_pack.parent, probe_nodes], tmp_path_factory.mktemp("comfy_probe_host"))
    host.checkpoints_dir.mkdir(parents=True)
    (host.checkpoints_dir / TINY).symlink_to(tiny_path)
    try:
        host.start()
        yield host
    finally:
        host.stop()


def test_unet_input_channels_4_to_7_are_the_scaled_pose_latent_in_both_branches(
    probe_host: ComfyHost, tmp_path: Path
) -> None:
    prompt = sampler_prompt(person_frame(SIZE), cfg=5.0)
    sampler = node_id(prompt, "HumanSDSampler")
    loader = node_id(prompt, "HumanSDCheckpointLoader")
    records = tmp_path / "unet_inputs.safetensors"
    probe = add_node(prompt, "HumanSDTestUNetProbe", model=[loader, 0], record_path=str(records))
    prompt[sampler]["inputs"]["model"] = [probe, 0]
    encode = add_node(prompt, "VAEEncode", pixels=[sampler, 2], vae=[loader, 2])
    prompt[node_id(prompt, "SaveLatent")]["inputs"]["samples"] = [encode, 0]
    history = probe_host.run_prompt(prompt, timeout=240)

    pose_latent = saved_latent(probe_host, history)  # raw vae.encode(skeleton) as the stock VAEEncode gives it
    expected = pose_latent * 0.18215
    with safe_open(str(records), "pt") as f:
        calls = json.loads(f.metadata()["calls"])
        inputs = [f.get_tensor(f"call{i}") for i in range(len(calls))]
    assert len(calls) >= 2  # 2 steps
    seen = set()
    for call, x_pose in zip(calls, inputs):
        assert call["channels"] == 8
        chunks = x_pose.chunk(len(call["cond_or_uncond"]))
        for branch, chunk in zip(call["cond_or_uncond"], chunks):
            seen.add(branch)
            torch.testing.assert_close(chunk, expected.expand_as(chunk), rtol=0, atol=1e-5)
    assert seen == {0, 1}, "both the conditional and the unconditional branch must carry the pose"


# --- parity with the core pipeline ---------------------------------------------------------

@pytest.mark.parametrize(("sampler", "scheduler", "schedule", "steps", "max_levels", "max_share"), [
    ("euler", "karras", "karras", 4, 1, 0.02),
    ("ddim", "ddim_uniform", "uniform", 50, 2, 0.25),
])
def test_comfyui_matches_the_core_pipeline(comfy_host: ComfyHost, tiny_path: Path, sampler: str, scheduler: str,
                                           schedule: str, steps: int, max_levels: int, max_share: float) -> None:
    """Same weights, pose, prompts, seed and sampler in ComfyUI and in ``HumanSDPipeline``.

    Compared in 8-bit levels of the saved PNG: ComfyUI's SaveImage truncates
    ``255 * x``, so the core image is truncated the same way. Tolerances: float32
    round-off (different attention kernels) moves a value across a level boundary now
    and then, so at most ``max_share`` of the values may differ, by at most
    ``max_levels``. ComfyUI keeps text-encoder weights in fp16 on the CPU; the core's
    are rounded the same way first. DDIM on the ``ddim_uniform`` grid has one
    documented difference on top: ComfyUI starts from ``noise * sigma_0`` when the
    first sigma is below sigma_max, the core (like the reference DDIM) from
    unit-variance ``z_T``, ``noise * sqrt(1 + sigma_0**2)``; at 50 steps (t=981,
    sigma_0 = 13.12) that start is 0.29 % larger: measured 19 % of values off by 1-2 levels
    (Euler, without that difference: 0.5 % off by 1 level).
    """
    frame = person_frame(SIZE)
    history = run(comfy_host, sampler_prompt(frame, sampler_name=sampler, scheduler=scheduler, steps=steps,
                                             cfg=7.5, seed=11, placement="as-is", negative=defaults.NEGATIVE_PROMPT,
                                             added_prompt=defaults.ADDED_PROMPT))
    comfy_levels = np.round(saved_images(comfy_host, history, "4")[0] * 255).astype(np.int16)

    pipe = HumanSDPipeline.from_checkpoint(tiny_path)
    with torch.no_grad():
        for p in pipe.text_encoder.parameters():
            p.copy_(p.half().float())
    result = pipe.generate(parse_pose_data(frame)[0], PROMPT, negative=defaults.NEGATIVE_PROMPT, steps=steps,
                           cfg=7.5, sampler=sampler, schedule=schedule, seed=11, width=SIZE, height=SIZE)
    np.testing.assert_array_equal(saved_images(comfy_host, history, "5")[0],
                                  result.skeletons[0].permute(1, 2, 0).numpy())
    core_levels = np.floor(result.images[0].permute(1, 2, 0).numpy() * 255.0).astype(np.int16)
    diff = np.abs(core_levels - comfy_levels)
    share = float((diff > 0).mean())
    print(f"{sampler}/{scheduler} {steps} steps: max {diff.max()} levels, {100 * share:.2f} % of values differ")
    assert diff.max() <= max_levels and share <= max_share, (diff.max(), share)


# --- bad input: a clear node error, and the server keeps serving -------------------------------

def _error_of(host: ComfyHost, prompt: dict[str, Any]) -> str:
    with pytest.raises(PromptError) as caught:
        host.run_prompt(prompt, timeout=240)
    return str(caught.value)


def test_bad_inputs_are_clear_node_errors_and_the_server_keeps_serving(
    comfy_host: ComfyHost, tiny_path: Path, plain_sd_name: str, tmp_path: Path
) -> None:
    plain = sampler_prompt(person_frame(SIZE))
    set_inputs(plain, "HumanSDCheckpointLoader", ckpt_name=plain_sd_name)
    message = _error_of(comfy_host, plain)
    assert "HumanSDCheckpointLoader" in message and "4-channel" in message and "humansd init-from-sd21" in message

    empty = sampler_prompt({"canvas_width": SIZE, "canvas_height": SIZE, "people": []})
    message = _error_of(comfy_host, empty)
    assert "HumanSDSampler" in message and "empty pose" in message

    mismatch = sampler_prompt([person_frame(SIZE), person_frame(SIZE, 4.0)])
    latent = add_node(mismatch, "EmptyLatentImage", width=SIZE, height=SIZE, batch_size=3)
    mismatch[node_id(mismatch, "HumanSDSampler")]["inputs"]["latent_image"] = [latent, 0]
    message = _error_of(comfy_host, mismatch)
    assert "pose batch of 2 does not match the latent batch of 3" in message

    scored = sampler_prompt(person_frame(SIZE))
    add_node(scored, "HumanSDPoseScore", images=[node_id(scored, "HumanSDSampler"), 1],
             pose_keypoint=[node_id(scored, "HumanSDPoseFromJSON"), 1],
             detector_weights=str(tmp_path / "missing" / "body_pose_model.pth"))
    message = _error_of(comfy_host, scored)
    assert "HumanSDPoseScore" in message and "body_pose_model.pth not found" in message

    history = run(comfy_host, sampler_prompt(person_frame(SIZE)))
    assert saved_images(comfy_host, history, "4").shape == (1, SIZE, SIZE, 3)
