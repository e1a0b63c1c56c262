"""Whole prompts in a real ComfyUI: HumanSD Sampler vs the stock SD2.1 + ControlNet graph, seconds per image.

    python -m benchmarks.vs_controlnet_workflows [--size 256] [--steps 4] [--rounds 4] [--threads 1]

Run from the repository root. Starts the test suite's ComfyUI 0.3.75 (``tests/host``,
provisioned into ``.cache/`` on first use) with this pack loaded, and queues two graphs
on the same pose skeleton (``HumanSD Pose from JSON``), size, steps, sampler (DDIM,
``ddim_uniform``), cfg and seed:

- HumanSD: ``HumanSD Checkpoint Loader`` (the full-layout random HumanSD checkpoint of
  ``tests/checkpoints.py``) -> ``HumanSD Sampler`` (skeleton in) -> ``PreviewImage``;
- stock: ``CheckpointLoaderSimple`` (the same random weights as an SD2.1-base file: the
  UNet's input conv cut to its 4 latent channels, written once into ``.cache/``) +
  ``ControlNetLoader`` (a random SD2.1 OpenPose-layout ControlNet, ``control_model.*`` keys
  of ``benchmarks/vs_controlnet.py``, float16, in the host's ``models/controlnet/``) ->
  ``CLIPTextEncode`` x2 -> ``ControlNetApplyAdvanced`` -> ``KSampler`` on ``EmptyLatentImage``
  -> ``VAEDecode`` -> ``PreviewImage``.

Both do the same per-image work apart from the conditioning: text encoding of prompt and
negative, sampling, decoding, a PNG; HumanSD also VAE-encodes the skeleton, the stock graph
runs the ControlNet at every step. Model loading is excluded from both the same way: the
first run of each graph (which loads its files) is a warm-up, reported apart; ComfyUI
caches the loaders' outputs, and every later run changes the seed and both prompts (in
both graphs) so that everything after the loaders runs again. The runs then alternate
(A B, B A, ...). Time per image = CPU time of the server process (user + system, all its
threads) over the prompt, and ComfyUI's own execution wall time (history timestamps).
The server runs torch at ``--threads`` (``OMP_NUM_THREADS``).

Last line: ``humansd_over_controlnet_workflow=<ratio of CPU medians> wall=<ratio of wall medians>``.
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from safetensors import safe_open
from safetensors.torch import save_file

from benchmarks.vs_controlnet import CONTROLNET_PREFIX, controlnet_layout
from humansd_core.models.checkpoint import UNET_PREFIX, random_tensors
from humansd_core.models.configs import sd21_humansd_config
from tests.checkpoints import CACHE_DIR, full_random_checkpoint
from tests.host.comfy_server import ComfyHost
from tests.host.comfy_setup import REPO_ROOT, ensure_comfyui
from tests.host.inference_prompts import link_checkpoint, person_frame

HUMANSD_NAME = "humansd_random_full.safetensors"
SD21_NAME = "sd21_base_random_full.safetensors"
CONTROLNET_NAME = "sd21_openpose_random.safetensors"
INPUT_CONV = UNET_PREFIX + "input_blocks.0.0.weight"


class ControlNetHost(ComfyHost):
    """The test suite's ComfyUI host, with a ``controlnet`` model folder of its own (``models/controlnet``)."""

    def __init__(self, comfy_dir: Path, pack_dir: Path, work_dir: Path) -> None:
        super().__init__(comfy_dir, pack_dir, work_dir)
        self.controlnet_dir = self.models_dir / "controlnet"

    def _write_config(self) -> Path:
        config = super()._write_config()
        self.controlnet_dir.mkdir(parents=True, exist_ok=True)
        with open(config, "a") as handle:
            handle.write(f"    controlnet: {self.controlnet_dir}\n")
        return config

    @property
    def pid(self) -> int:
        """The server process's id (it leads its own process group)."""
        if self._proc is None:
            raise RuntimeError("the host is not running")
        return self._proc.pid

    def peak_rss(self) -> int:
        """The server's lifetime peak resident memory in bytes (Linux ``VmHWM``), loads included."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0


def _cached(path: Path, write: Any) -> Path:
    """``path`` in the cache, written once by ``write(tmp_path)`` under a lock, atomically."""
    if path.exists():
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not path.exists():
                tmp = path.with_name(path.name + ".partial")
                write(tmp)
                os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path


def sd21_random_checkpoint() -> Path:
    """The random HumanSD checkpoint as a plain SD2.1-base file (4-channel UNet input), cached in ``.cache/``."""
    source = full_random_checkpoint()
    digest = hashlib.sha256(source.name.encode()).hexdigest()[:12]

    def write(tmp: Path) -> None:
        with safe_open(str(source), framework="pt") as handle:
            state = {key: handle.get_tensor(key) for key in handle.keys()}
        state[INPUT_CONV] = state[INPUT_CONV][:, :4].contiguous()
        save_file(state, str(tmp))

    return _cached(CACHE_DIR / f"sd21-base-random-full-fp16-{digest}.safetensors", write)


def controlnet_random_file() -> Path:
    """A random SD2.1 OpenPose-layout ControlNet (float16, ``control_model.*`` keys), cached in ``.cache/``."""
    layout = controlnet_layout(sd21_humansd_config().unet)
    digest = hashlib.sha256(json.dumps(sorted(layout.items())).encode()).hexdigest()[:12]

    def write(tmp: Path) -> None:
        save_file({CONTROLNET_PREFIX + k: t.half() for k, t in random_tensors(layout, seed=1)}, str(tmp))

    return _cached(CACHE_DIR / f"controlnet-sd21-openpose-random-fp16-{digest}.safetensors", write)


def humansd_graph(pose_json: str, size: int, steps: int, cfg: float) -> dict[str, Any]:
    """API prompt: HumanSD loader + pose -> HumanSD Sampler -> preview."""
    return {
        "1": {"class_type": "HumanSDCheckpointLoader", "inputs": {"ckpt_name": HUMANSD_NAME}},
        "2": pose_node(pose_json, size),
        "3": {"class_type": "HumanSDSampler", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "skeleton": ["2", 0],
            "prompt": "", "negative": "", "seed": 0, "steps": steps, "cfg": cfg, "sampler_name": "ddim",
            "scheduler": "ddim_uniform", "denoise": 1.0, "width": size, "height": size, "batch_size": 1,
            "added_prompt": ""}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 1]}},
    }


def controlnet_graph(pose_json: str, size: int, steps: int, cfg: float) -> dict[str, Any]:
    """API prompt: the stock SD2.1 + ControlNet graph on the same skeleton image."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD21_NAME}},
        "2": pose_node(pose_json, size),
        "3": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": CONTROLNET_NAME}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "6": {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": ["4", 0], "negative": ["5", 0], "control_net": ["3", 0], "image": ["2", 0],
            "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
        "7": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "8": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["6", 0], "negative": ["6", 1], "latent_image": ["7", 0],
            "seed": 0, "steps": steps, "cfg": cfg, "sampler_name": "ddim", "scheduler": "ddim_uniform",
            "denoise": 1.0}},
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}},
        "10": {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}},
    }


def pose_node(pose_json: str, size: int) -> dict[str, Any]:
    """``HumanSD Pose from JSON``: the skeleton image both graphs use (cached by ComfyUI after the first run)."""
    return {"class_type": "HumanSDPoseFromJSON", "inputs": {
        "pose_json": pose_json, "pose_file": "(none: use the text)", "width": size, "height": size,
        "placement": "fit", "threshold": 0.05, "thickness": 10, "scale_thickness": False}}


def for_run(graph: dict[str, Any], index: int) -> dict[str, Any]:
    """``graph`` with run ``index``'s seed and prompts (so ComfyUI's cache re-runs all but loaders and pose)."""
    graph = json.loads(json.dumps(graph))
    prompt, negative = f"a person dancing in a park, take {index}", f"lowres, bad anatomy, take {index}"
    for node in graph.values():
        inputs = node["inputs"]
        if node["class_type"] in ("HumanSDSampler", "KSampler"):
            inputs["seed"] = 1000 + index
        if node["class_type"] == "HumanSDSampler":
            inputs.update(prompt=prompt, negative=negative)
    if "4" in graph and graph["4"]["class_type"] == "CLIPTextEncode":
        graph["4"]["inputs"]["text"], graph["5"]["inputs"]["text"] = prompt, negative
    return graph


def timed_run(host: ComfyHost, server: psutil.Process, graph: dict[str, Any]) -> dict[str, float]:
    """Run one prompt; server CPU seconds over it, ComfyUI's execution wall seconds, the client's wall."""
    cpu = server.cpu_times()
    began = time.perf_counter()
    history = host.run_prompt(graph, timeout=1800)
    wall = time.perf_counter() - began
    after = server.cpu_times()
    stamps = {kind: data.get("timestamp") for kind, data in history["status"]["messages"]}
    executed = (stamps["execution_success"] - stamps["execution_start"]) / 1000.0
    return {"cpu": (after.user + after.system) - (cpu.user + cpu.system), "exec_wall": executed, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="image side (multiple of 64)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--rounds", type=int, default=4, help="timed runs per graph after the warm-up")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the server (OMP_NUM_THREADS)")
    parser.add_argument("--work-dir", type=Path, help="host folder (default: a temporary one)")
    args = parser.parse_args()

    comfy_dir = ensure_comfyui()
    files = {"humansd": full_random_checkpoint(), "sd21": sd21_random_checkpoint(), "controlnet": controlnet_random_file()}
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    pose_json = json.dumps(person_frame(args.size))
    graphs = {"humansd": humansd_graph(pose_json, args.size, args.steps, args.cfg),
              "controlnet": controlnet_graph(pose_json, args.size, args.steps, args.cfg)}
    with tempfile.TemporaryDirectory(prefix="vs_controlnet_host_") as tmp:
        host = ControlNetHost(comfy_dir, REPO_ROOT, args.work_dir or Path(tmp))
        host.start()
        try:
            link_checkpoint(host, files["humansd"], HUMANSD_NAME)
            link_checkpoint(host, files["sd21"], SD21_NAME)
            target = host.controlnet_dir / CONTROLNET_NAME
            if not target.exists():
                target.symlink_to(files["controlnet"])
            server = psutil.Process(host.pid)
            print(f"ComfyUI started in {host.start_seconds:.0f} s; {args.size}^2, {args.steps} DDIM steps, cfg "
                  f"{args.cfg}, torch threads in the server {args.threads}; times: server CPU s / ComfyUI "
                  f"execution wall s", flush=True)
            times: dict[str, list[dict[str, float]]] = {name: [] for name in graphs}
            for index in range(args.rounds + 1):
                order = list(graphs) if index % 2 == 0 else list(graphs)[::-1]
                for name in order:
                    run = timed_run(host, server, for_run(graphs[name], index))
                    if index == 0:
                        print(f"warm-up {name:10s} (loading included): {run['cpu']:.1f} CPU s, "
                              f"{run['exec_wall']:.1f} s", flush=True)
                    else:
                        times[name].append(run)
            peak_rss = host.peak_rss()
        finally:
            log = host.log_text()
            host.stop()
    for name, runs in times.items():
        print(f"{name:10s} CPU s: " + " ".join(f"{r['cpu']:.1f}" for r in runs)
              + " | execution wall s: " + " ".join(f"{r['exec_wall']:.1f}" for r in runs))
    medians = {name: {kind: statistics.median(r[kind] for r in runs) for kind in ("cpu", "exec_wall")}
               for name, runs in times.items()}
    cpu_ratio = medians["humansd"]["cpu"] / medians["controlnet"]["cpu"]
    wall_ratio = medians["humansd"]["exec_wall"] / medians["controlnet"]["exec_wall"]
    weights = sorted({line.split("model weight dtype", 1)[1].strip() for line in log.splitlines()
                      if "model weight dtype" in line})
    print(f"medians per image: humansd {medians['humansd']['cpu']:.1f} CPU s ({medians['humansd']['exec_wall']:.1f} s), "
          f"controlnet {medians['controlnet']['cpu']:.1f} CPU s ({medians['controlnet']['exec_wall']:.1f} s); "
          f"server peak RSS (VmHWM, loads included) {peak_rss / 2**30:.2f} GiB; ComfyUI: model weight dtype {weights}")
    print(f"humansd_over_controlnet_workflow={cpu_ratio:.3f} wall={wall_ratio:.3f}")


if __name__ == "__main__":
    main()
