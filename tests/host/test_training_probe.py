"""What ComfyUI's UNet receives while HumanSD Train trains: each sample's own pose latent and caption, every call.

A second server loads the test-only probe pack (``tests/host/probe_pack``) next to this
pack. Its probe node wraps the MODEL's ``diffusion_model`` (a ComfyUI
``DIFFUSION_MODEL`` wrapper, which the trainer passes on as ComfyUI's sampling does)
and records, at every UNet call, input channels 4..7 and the cross-attention context.
The test recomputes every sample's pose latent (unflipped and flipped, the trainer's
augmentation) and every caption's context with the core's own networks from the same
file, and matches each batch row to them.
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

from humansd_core.models.checkpoint import load_models
from humansd_core.pose import render_skeleton
from humansd_core.training.augment import apply_to_pose, plan_geometry
from humansd_core.training.samples import check_folder

from checkpoints import tiny_checkpoint
from .comfy_server import ComfyHost, PromptError
from .inference_prompts import load_api, person_frame
from .server_env import ServerEnv

pytestmark = pytest.mark.host

TINY = "humansd_tiny_probe_test.safetensors"
CAPTIONS = ("a mannequin on red", "a mannequin on green, waving", "two words")
SHIFTS = (-10.0, 0.0, 9.0)


@pytest.fixture(scope="module")
def probe_host(tmp_path_factory: pytest.TempPathFactory, server_env: ServerEnv,
               installed_pack: Path) -> Iterator[ComfyHost]:
    """A server with the test-only probe pack next to the session's copy of this pack."""
    probe_nodes = tmp_path_factory.mktemp("train_probe_custom_nodes")
    shutil.copytree(Path(__file__).parent / "probe_pack", probe_nodes / "humansd_test_probe")
    host = ComfyHost(server_env, [installed_pack.parent, probe_nodes], tmp_path_factory.mktemp("comfy_train_probe"))
    host.checkpoints_dir.mkdir(parents=True)
    tiny_checkpoint(host.checkpoints_dir / TINY, seed=9)
    try:
        host.start()
        yield host
    finally:
        host.stop()


def _training_prompt(records: Path, batch: int, steps: int) -> dict[str, Any]:
    """Images (the skeletons of three shifted poses) + their POSE_KEYPOINT + three captions → train on the tiny
    model through the probe; nothing saved."""
    prompt = load_api("humansd_train_lora")
    for node in ("5", "6", "7", "9"):
        del prompt[node]
    prompt["1"]["inputs"]["ckpt_name"] = TINY
    frames = [person_frame(64, dx) for dx in SHIFTS]
    prompt["3"]["inputs"].update(pose_json=json.dumps(frames), width=64, height=64)
    prompt["2"]["inputs"].update(source="images", captions="\n".join(CAPTIONS), images=["3", 0],
                                 pose_keypoint=["3", 1])
    prompt["10"] = {"class_type": "HumanSDTestUNetProbe", "inputs": {"model": ["1", 0], "record_path": str(records)}}
    prompt["4"]["inputs"].update(model=["10", 0], resolution=64, batch_size=batch, steps=steps,
                                 estimator="keypoint gaussians (no network)", validation_every=0,
                                 validation_steps=1, validation_cfg=1.0, run_name="probe", save_every=1000,
                                 caption_dropout=0.0, gradient_checkpointing=True)
    del prompt["4"]["inputs"]["validation_pose"]
    return prompt


def _recorded(path: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    with safe_open(str(path), "pt") as f:
        calls = json.loads(f.metadata()["calls"])
        return [(f.get_tensor(f"call{i}"), f.get_tensor(f"context{i}")) for i in range(len(calls))]


@torch.no_grad()
def _expected(host: ComfyHost) -> tuple[list[tuple[int, bool, torch.Tensor]], torch.Tensor]:
    """``[(sample, flipped, pose latent [4,8,8])]`` for every sample both ways, and the captions' contexts."""
    folder = next((host.work_dir / "temp" / "temp" / "humansd_training_data").glob("samples-*"))
    records = check_folder(folder).records
    models = load_models(host.checkpoints_dir / TINY)
    with torch.no_grad():  # ComfyUI keeps the text tower in float16 on a CPU; round the same way
        for p in models.text_encoder.parameters():
            p.copy_(p.half().float())
    latents = []
    for index, record in enumerate(records):
        for flip in (False, True):
            pose = apply_to_pose(record.pose, plan_geometry(record.width, record.height, 64, 64, None, flip=flip))
            skeleton = torch.from_numpy(render_skeleton(pose)).permute(2, 0, 1)[None].float() / 127.5 - 1
            latents.append((index, flip, models.vae.encode(skeleton)[0] * models.config.scale_factor))
    assert [r.caption for r in records] == list(CAPTIONS)
    return latents, models.text_encoder(list(CAPTIONS))


def test_every_training_call_gives_each_sample_its_own_pose_latent_and_caption(
    probe_host: ComfyHost, tmp_path: Path
) -> None:
    records = tmp_path / "unet_inputs.safetensors"
    batch, steps = 3, 3
    probe_host.run_prompt(_training_prompt(records, batch, steps), timeout=600)
    latents, contexts = _expected(probe_host)
    calls = [c for c in _recorded(records) if c[0].shape[0] == batch]  # validation calls have batch 1
    assert len(calls) == steps, f"{len(calls)} training calls of batch {batch} for {steps} steps"
    pose_gaps, context_gaps = [], []
    for pose_in, context_in in calls:
        assert pose_in.shape == (batch, 4, 8, 8) and context_in.shape == (batch, 77, contexts.shape[-1])
        seen = []
        for row in range(batch):
            distances = [float((pose_in[row] - latent).abs().max()) for _, _, latent in latents]
            best = int(np.argmin(distances))
            sample = latents[best][0]
            other = min(d for (s, _, _), d in zip(latents, distances) if s != sample)
            assert distances[best] < 1e-4 and other > 1e-2, (distances, row)
            pose_gaps.append(other)
            to_captions = [float((context_in[row] - c).abs().max()) for c in contexts]
            assert int(np.argmin(to_captions)) == sample, f"row {row} (sample {sample}) has another caption's context"
            assert to_captions[sample] < 1e-2 < min(d for i, d in enumerate(to_captions) if i != sample)
            context_gaps.append(min(d for i, d in enumerate(to_captions) if i != sample))
            seen.append(sample)
        assert sorted(seen) == [0, 1, 2], f"a batch of the 3 samples holds {seen}"
    print(f"{len(calls)} training calls: nearest other pose latent {min(pose_gaps):.3g}, other caption's context "
          f"{min(context_gaps):.3g} (max abs)")


def test_a_four_channel_model_is_a_clear_node_error_and_the_server_keeps_serving(
    probe_host: ComfyHost, tmp_path: Path
) -> None:
    prompt = _training_prompt(tmp_path / "unused.safetensors", 1, 1)
    prompt["10"] = {"class_type": "HumanSDTestFourChannelModel", "inputs": {"model": ["1", 0]}}
    with pytest.raises(PromptError) as caught:
        probe_host.run_prompt(prompt, timeout=300)
    message = str(caught.value)
    assert "HumanSDTrain" in message and "8 input channels" in message and "this one has 4" in message
    probe_host.run_prompt(_training_prompt(tmp_path / "records.safetensors", 1, 1), timeout=300)
