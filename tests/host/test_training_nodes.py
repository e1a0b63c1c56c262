"""HumanSD training nodes in a real ComfyUI: the shipped workflow, cancel and resume, bad data, the full layout.

Training runs go to ``<output>/humansd_training/<run>_NNNNN`` of the session's server;
saved files to its ``models/loras`` and ``models/checkpoints`` (the harness's
extra_model_paths.yaml makes them the default folders). What the UNet receives at
every training call is checked in ``test_training_probe.py`` (a server with the
test-only probe pack).
"""
from __future__ import annotations

import copy
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from humansd_core.embedded import embedded_model_path
from humansd_core.models.checkpoint import load_models
from humansd_core.pose import render_skeleton
from humansd_core.sampling.schedule import NoiseSchedule
from humansd_core.training.resume_checkpoints import list_checkpoints, read_checkpoint
from humansd_core.training.lora import load_lora
from humansd_core.training.samples import check_folder, synthetic_folder

from support.checkpoints import full_random_checkpoint, tiny_checkpoint
from .comfy_server import ComfyHost, PromptError
from .comfy_setup import REPO_ROOT
from .inference_prompts import add_node, link_checkpoint, load_api, person_frame, saved_images

pytestmark = pytest.mark.host

RUNS = "humansd_training"
TINY = "humansd_tiny_train_test.safetensors"
WORKFLOW = "humansd_train_lora"
PROMPT = "a person in a red shirt and blue trousers, on a plain white background"


@pytest.fixture(scope="module")
def tiny_name(comfy_host: ComfyHost) -> str:
    tiny_checkpoint(comfy_host.checkpoints_dir / TINY, seed=5)
    return TINY


def _runs(host: ComfyHost) -> Path:
    return host.output_dir / RUNS


def _tiny_training(tiny: str, run_name: str, **train: Any) -> dict[str, Any]:
    """The shipped workflow on the tiny test model at 64², its sampler dropped: data (synthetic) → train → save."""
    prompt = load_api(WORKFLOW)
    for node in ("6", "7"):  # the sampler and its SaveImage: not needed here
        del prompt[node]
    prompt["1"]["inputs"]["ckpt_name"] = tiny
    prompt["2"]["inputs"].update(scenes=6, size=64)
    prompt["3"]["inputs"].update(pose_json=json.dumps(person_frame(64)), width=64, height=64)
    settings = {"resolution": 64, "batch_size": 2, "estimator": "keypoint gaussians (no network)",
                "validation_every": 0, "validation_steps": 2, "validation_cfg": 1.0, "run_name": run_name,
                "save_every": 1000, **train}
    prompt["4"]["inputs"].update(settings)
    prompt["5"]["inputs"]["filename"] = f"tests/{run_name}"
    return prompt


def _sampler_prompt(ckpt: str, lora: str | None = None, size: int = 128, steps: int = 25,
                    cfg: float = 3.0, pose_json: str | None = None) -> dict[str, Any]:
    """The shipped keypoints → image workflow on ``ckpt`` (plus LoraLoaderModelOnly + HumanSD Model Patch)."""
    prompt = load_api("humansd_keypoints_to_image")
    prompt["1"]["inputs"]["ckpt_name"] = ckpt
    prompt["2"]["inputs"]["pose_json"] = pose_json or json.dumps(person_frame(size))
    prompt["3"]["inputs"].update(prompt=PROMPT, width=size, height=size, steps=steps, cfg=cfg)
    if lora is not None:
        loaded = add_node(prompt, "LoraLoaderModelOnly", model=["1", 0], lora_name=lora, strength_model=1.0)
        patched = add_node(prompt, "HumanSDModelPatch", model=[loaded, 0])
        prompt["3"]["inputs"]["model"] = [patched, 0]
    return prompt


def _free(host: ComfyHost) -> None:
    """Ask the server to drop its cached outputs and loaded models (before the big full-layout runs)."""
    requests.post(host.base_url + "/free", json={"unload_models": True, "free_memory": True}, timeout=30)


def _error_of(host: ComfyHost, prompt: dict[str, Any]) -> str:
    with pytest.raises(PromptError) as caught:
        host.run_prompt(prompt, timeout=600)
    return str(caught.value)


# -- the shipped workflow ------------------------------------------------------------------------------


@torch.no_grad()
def _eval_loss(models: Any, records: list, seed: int = 0) -> float:
    """Plain denoising MSE of ``models`` over ``records`` at fixed timesteps and noise (8 of each per sample)."""
    alphas = NoiseSchedule().alphas_cumprod
    g = torch.Generator().manual_seed(seed)
    sf = models.config.scale_factor
    losses = []
    for record in records:
        image = torch.from_numpy(np.array(record.image_array)).permute(2, 0, 1)[None].float() / 127.5 - 1
        skeleton = torch.from_numpy(render_skeleton(record.pose)).permute(2, 0, 1)[None].float() / 127.5 - 1
        z0 = models.vae.encode(image) * sf
        pose = models.vae.encode(skeleton) * sf
        context = models.text_encoder([record.caption])
        for t in torch.linspace(20, 980, 8).long():
            noise = torch.randn(z0.shape, generator=g)
            a = alphas[t]
            eps = models.unet(torch.cat([a.sqrt() * z0 + (1 - a).sqrt() * noise, pose], 1), t[None], context)
            losses.append(float(((eps - noise) ** 2).mean()))
    return float(np.mean(losses))


class _Record:
    def __init__(self, record: Any) -> None:
        from PIL import Image

        self.pose, self.caption = record.pose, record.caption
        with Image.open(record.image) as img:
            self.image_array = np.asarray(img.convert("RGB"))


def test_shipped_training_workflow_trains_saves_and_its_lora_loads_in_the_stock_loader(
    comfy_host: ComfyHost, tmp_path: Path
) -> None:
    began = time.perf_counter()
    history = comfy_host.run_prompt(load_api(WORKFLOW), timeout=1200)
    seconds = time.perf_counter() - began
    # the name the save node reports (the page run of the same workflow may have taken the plain name first)
    (lora_name,) = history["outputs"]["5"]["text"]
    assert lora_name.startswith("humansd/humansd_lora_mannequins") and lora_name.endswith(".safetensors"), lora_name
    saved = comfy_host.loras_dir / lora_name
    assert saved.is_file(), sorted(comfy_host.loras_dir.rglob("*"))
    validation = saved_images(comfy_host, history, "9")
    assert validation.shape == (4, 128, 128, 3)  # steps 0, 20, 40, 60
    trained_image = saved_images(comfy_host, history, "7")[0]
    with safe_open(str(saved), "pt") as f:
        meta = json.loads(f.metadata()["humansd_lora"])
        keys = list(f.keys())
    assert meta["base_model"] == "humansd_tiny.safetensors" and meta["steps"] == 60 and meta["rank"] == 8
    assert meta["loss"]["loss"] == "heatmap" and meta["loss"]["estimator"] == "tiny"
    assert all(k.startswith("diffusion_model.") for k in keys)
    print(f"shipped training workflow: {seconds:.1f} s (60 steps, batch 4, 128², 4 validations, sampling)")

    # The stock loader takes the saved file, every key lands, and it changes the output.
    pose = load_api(WORKFLOW)["3"]["inputs"]["pose_json"]  # the workflow's own pose: the same image is expected
    log_start = len(comfy_host.log_text())
    with_lora = saved_images(comfy_host, comfy_host.run_prompt(_sampler_prompt(
        "humansd_tiny.safetensors", lora_name, pose_json=pose), timeout=600))[0]
    log = comfy_host.log_text()[log_start:]
    assert "lora key not loaded" not in log, log[-3000:]
    base = saved_images(comfy_host, comfy_host.run_prompt(_sampler_prompt("humansd_tiny.safetensors",
                                                                           pose_json=pose), timeout=600))[0]
    np.testing.assert_array_equal(with_lora, trained_image)  # the train node's MODEL is that loaded file
    change = np.abs(with_lora - base)
    print(f"the LoRA changes the sample by {255 * change.mean():.2f} levels on average, "
          f"{255 * change.max():.0f} at most")
    assert change.max() >= 8 / 255, "the LoRA does not change the output"

    # Its loss on the training scenes (fixed timesteps and noise) is below the embedded model's.
    records = [_Record(r) for r in check_folder(synthetic_folder(tmp_path, 32, 128, seed=1)).records]
    models = load_models(embedded_model_path())
    before = _eval_loss(models, records)
    load_lora(models.unet, saved)
    after = _eval_loss(models, records)
    print(f"evaluation loss on the 32 training scenes: base {before:.5f}, with the LoRA {after:.5f}")
    assert after < before

    # A name that would leave models/loras is refused (the train node's output is cached: only the save runs).
    escape = load_api(WORKFLOW)
    escape["5"]["inputs"]["filename"] = "../outside"
    message = _error_of(comfy_host, escape)
    assert "HumanSDSaveLoRA" in message and "'../outside'" in message and "leaves the folder" in message
    assert not (comfy_host.loras_dir.parent / "outside.safetensors").exists()


# -- cancel and resume ---------------------------------------------------------------------------------


def _wait_for_checkpoint(folder: Path, timeout: float = 300.0) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if list_checkpoints(folder):
            return
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint appeared in {folder} within {timeout:.0f} s")


def test_cancel_leaves_a_checkpoint_and_a_usable_model_and_resume_equals_an_uninterrupted_run(
    comfy_host: ComfyHost, tiny_name: str
) -> None:
    steps = 16  # interrupted as soon as the first checkpoint appears: the other steps are the margin
    settings = {"steps": steps, "save_every": 1}
    base = saved_images(comfy_host, comfy_host.run_prompt(_sampler_prompt(tiny_name, size=64, steps=4), timeout=300))
    comfy_host.run_prompt(_tiny_training(tiny_name, "uncut", **settings), timeout=600)
    reference = load_file(str(_runs(comfy_host) / "uncut_00001" / "lora.safetensors"))

    cut = _tiny_training(tiny_name, "cut", **settings)
    folder = _runs(comfy_host) / "cut_00001" / "checkpoints"
    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: outcome.update(error=_error_of(comfy_host, cut)))
    worker.start()
    _wait_for_checkpoint(folder)
    requests.post(comfy_host.base_url + "/interrupt", timeout=30).raise_for_status()
    worker.join(timeout=600)
    assert "error" in outcome, "the cancelled prompt did not end with an error"
    checkpoints = list_checkpoints(folder)
    assert checkpoints, "cancel left no checkpoint"
    step, path = checkpoints[-1]
    assert 1 <= step < steps, f"the run was not cut short (last checkpoint at step {step} of {steps})"
    tensors, state = read_checkpoint(path)
    assert state["step"] == step and any(k.startswith("param.") for k in tensors)
    assert not (folder.parent / "lora.safetensors").exists()
    print(f"cancelled at step {step} of {steps}")

    # The model is usable and unchanged: the same sampling prompt gives the same image as before training.
    again = saved_images(comfy_host, comfy_host.run_prompt(_sampler_prompt(tiny_name, size=64, steps=4), timeout=300))
    np.testing.assert_array_equal(again, base)

    comfy_host.run_prompt(_tiny_training(tiny_name, "cut", resume=True, **settings), timeout=600)
    resumed = load_file(str(folder.parent / "lora.safetensors"))
    assert sorted(resumed) == sorted(reference)
    for key in reference:
        assert torch.equal(resumed[key], reference[key]), f"{key} differs from the uninterrupted run"


# -- bad data ------------------------------------------------------------------------------------------


def _write_sample(folder: Path, stem: str, *, image: bool = True, pose: bool = True, caption: bool = True) -> None:
    from PIL import Image

    from humansd_core.pose import parse_pose_data, write_openpose_json

    frame = parse_pose_data(person_frame(64))[0]
    if image:
        Image.fromarray(render_skeleton(frame, thickness=4)).save(folder / f"{stem}.png")
    if pose:
        write_openpose_json(folder / f"{stem}.json", frame)
    if caption:
        (folder / f"{stem}.txt").write_text("a mannequin", encoding="utf-8")


def _folder_training(tiny: str, folder: str, bad_samples: str = "stop with an error") -> dict[str, Any]:
    """The training prompt on the folder ``folder`` of the server's input folder."""
    prompt = _tiny_training(tiny, "bad_data", steps=1)
    prompt["2"]["inputs"].update(source="folder", folder=folder, bad_samples=bad_samples)
    return prompt


def test_bad_data_stops_with_node_errors_naming_each_file_and_the_server_keeps_serving(
    comfy_host: ComfyHost, tiny_name: str
) -> None:
    folder = comfy_host.input_dir / "datasets" / "bad"
    folder.mkdir(parents=True)
    _write_sample(folder, "000000")
    _write_sample(folder, "000001", caption=False)
    _write_sample(folder, "000002", image=False)
    (folder / "000002.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    _write_sample(folder, "000003", pose=False)
    (folder / "000003.json").write_text("{not json", encoding="utf-8")
    _write_sample(folder, "000004", pose=False)

    message = _error_of(comfy_host, _folder_training(tiny_name, "datasets/bad"))
    assert "HumanSDTrainingData" in message and "4 bad sample(s)" in message
    assert "000001.png: no caption file 000001.txt" in message
    assert "000002.png: image unreadable" in message
    assert "000003.png: pose file 000003.json unreadable" in message
    assert "000004.png: no pose file (000004.json or 000004.npz)" in message

    for stem in ("000000",):
        for suffix in (".png", ".json", ".txt"):
            (folder / f"{stem}{suffix}").unlink()
    message = _error_of(comfy_host, _folder_training(tiny_name, "datasets/bad", "skip and report"))
    assert "HumanSDTrainingData" in message and "no usable sample" in message and "000001.png" in message

    images = _tiny_training(tiny_name, "bad_images", steps=1)
    images["2"]["inputs"].update(source="images", captions="one\ntwo\nthree")
    images["2"]["inputs"]["images"] = ["3", 0]
    images["2"]["inputs"]["pose_keypoint"] = ["3", 1]
    message = _error_of(comfy_host, images)
    assert "HumanSDTrainingData" in message and "captions: 3 lines for 1 images" in message

    message = _error_of(comfy_host, _folder_training(tiny_name, "../models"))
    assert "HumanSDTrainingData" in message and "'../models'" in message and "leaves the folder" in message

    good = comfy_host.input_dir / "datasets" / "good"
    good.mkdir()
    _write_sample(good, "000000")
    history = comfy_host.run_prompt(_folder_training(tiny_name, "datasets/good"), timeout=600)
    assert saved_images(comfy_host, history, "9").shape[0] == 1


# -- the full SD2.1 layout -----------------------------------------------------------------------------


def _full_training(name: str, mode: str, run_name: str) -> dict[str, Any]:
    prompt = load_api(WORKFLOW)
    for node in ("6", "7"):
        del prompt[node]
    prompt["1"]["inputs"]["ckpt_name"] = name
    prompt["2"]["inputs"].update(scenes=2, size=128)
    prompt["4"]["inputs"].update(mode=mode, steps=2, batch_size=1, estimator="keypoint gaussians (no network)",
                                 validation_every=0, validation_steps=1, validation_cfg=1.0, run_name=run_name,
                                 save_every=1000, optimizer="adafactor" if mode == "full" else "adamw",
                                 learning_rate=1e-5, gradient_checkpointing=True)
    if mode == "full":
        prompt["5"] = {"class_type": "HumanSDSaveCheckpoint",
                       "inputs": {"trained": ["4", 1], "filename": "tests/full_layout_finetuned", "overwrite": True}}
    else:
        prompt["5"]["inputs"].update(filename="tests/full_layout_lora", overwrite=True)
    return prompt


@pytest.mark.slow
def test_full_layout_lora_and_full_modes_train_two_steps_and_their_files_load_back(comfy_host: ComfyHost) -> None:
    """About 10 GB of files (a 5 GB resume checkpoint with the optimizer state, two 2.6 GB models):
    removed when the test ends, so the rest of the suite keeps its disk."""
    try:
        name = link_checkpoint(comfy_host, full_random_checkpoint(), "humansd_random_full_train.safetensors")
        _free(comfy_host)
        comfy_host.run_prompt(_full_training(name, "lora", "full_layout_lora"), timeout=1800)
        log_start = len(comfy_host.log_text())
        history = comfy_host.run_prompt(_sampler_prompt(name, "tests/full_layout_lora.safetensors", steps=1, cfg=1.0),
                                        timeout=1800)
        assert saved_images(comfy_host, history, "4").shape == (1, 128, 128, 3)
        assert "lora key not loaded" not in comfy_host.log_text()[log_start:]

        _free(comfy_host)
        comfy_host.run_prompt(_full_training(name, "full", "full_layout_full"), timeout=1800)
        saved = comfy_host.checkpoints_dir / "tests" / "full_layout_finetuned.safetensors"
        with safe_open(str(saved), "pt") as f:
            meta = f.metadata()
        training = json.loads(meta["humansd_training"])
        assert training["mode"] == "full" and training["steps"] == 2 and training["base_model"] == name
        _free(comfy_host)
        history = comfy_host.run_prompt(_sampler_prompt("tests/full_layout_finetuned.safetensors", steps=1, cfg=1.0),
                                        timeout=1800)
        assert saved_images(comfy_host, history, "4").shape == (1, 128, 128, 3)
        _free(comfy_host)
    finally:
        _remove_full_layout_files(comfy_host)


def _remove_full_layout_files(host: ComfyHost) -> None:
    for run in (host.output_dir / "humansd_training").glob("full_layout_*"):
        shutil.rmtree(run, ignore_errors=True)
    for saved in (host.checkpoints_dir / "tests" / "full_layout_finetuned.safetensors",
                  host.loras_dir / "tests" / "full_layout_lora.safetensors"):
        saved.unlink(missing_ok=True)


def test_training_nodes_have_tooltips_and_categories(comfy_host: ComfyHost) -> None:
    info = comfy_host.object_info()
    for kind in ("HumanSDTrainingData", "HumanSDTrain", "HumanSDSaveLoRA", "HumanSDSaveCheckpoint"):
        spec = info[kind]
        assert spec["category"] == "HumanSD/training"
        for section in ("required", "optional"):
            for name, entry in spec["input"].get(section, {}).items():
                assert len(entry) > 1 and entry[1].get("tooltip"), f"{kind}.{name} has no tooltip"
    assert copy.deepcopy(info["HumanSDTrain"]["output_name"]) == ["model", "trained", "file", "loss_curve",
                                                                   "validation"]


@pytest.mark.parametrize(("name", "says"), [
    (WORKFLOW, ("humansd_tiny.safetensors", "resume", "models/loras/humansd/", "humansd_train_lora_folder")),
    ("humansd_train_lora_folder", ("humansd-v1", "ComfyUI/input/humansd_dataset/", "body_pose_model.pth",
                                   "keypoint gaussians", "DDIM 50 steps, cfg 10", "humansd_train_lora")),
])
def test_training_workflow_note_says_what_it_needs(name: str, says: tuple[str, ...]) -> None:
    ui = json.loads((REPO_ROOT / "workflows" / f"{name}.json").read_text())
    notes = [n["widgets_values"][0] for n in ui["nodes"] if n["type"] == "Note"]
    assert len(notes) == 1 and all(text in notes[0] for text in says), (notes, says)
