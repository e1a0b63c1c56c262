"""Whole prompts in a real ComfyUI: HumanSD Sampler vs the stock SD2.1 + ControlNet graph, seconds per image.

    python -m benchmarks.vs_controlnet_workflows [--size 256] [--steps 4] [--blocks 2] [--runs 2] [--threads 1]

Run from the repository root. Starts the test suite's ComfyUI 0.3.75 the way the host tests
do (``tests/host``: this checkout copied as a clone would be, ``pack_copy.py``; ComfyUI's own
environment with the pack's requirements, ``server_env.py``; both provisioned into
``.cache/`` on first use) with this pack loaded, and queues two graphs
on the same pose skeleton (``HumanSD Pose from JSON``), size, steps, sampler (DDIM,
``ddim_uniform``), cfg and seed:

- HumanSD: ``HumanSD Checkpoint Loader`` (the full-layout random HumanSD checkpoint of
  ``tests/support/checkpoints.py``) -> ``HumanSD Sampler`` (skeleton in) -> ``PreviewImage``;
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
both graphs) so that everything after the loaders runs again. Each graph runs in a server
of its own holding only its models (both graphs' fp32 models in one server need about
11 GiB, more than a shared machine can spare), in blocks that alternate (A B, B A, ...):
per block a fresh server, the warm-up run, then ``--runs`` timed runs. Time per image =
CPU time of the server process (user + system, all its threads) over the prompt, and
ComfyUI's own execution wall time (history timestamps). The server runs torch at
``--threads`` (``OMP_NUM_THREADS``). Also printed: each server's peak RSS (loads included).

Last line: ``humansd_over_controlnet_workflow=<ratio of CPU medians> wall=<ratio of wall medians>``.
"""
from __future__ import annotations

import argparse
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
from tests.host.comfy_server import PACK_NAME, ComfyHost
from tests.host.comfy_setup import REPO_ROOT
from tests.host.inference_prompts import link_checkpoint, person_frame
from tests.host.pack_copy import copy_checkout
from tests.host.server_env import ServerEnv, ensure_server_env
from tests.support.checkpoints import CACHE_DIR, cached_file, full_random_checkpoint

HUMANSD_NAME = "humansd_random_full.safetensors"
SD21_NAME = "sd21_base_random_full.safetensors"
CONTROLNET_NAME = "sd21_openpose_random.safetensors"
INPUT_CONV = UNET_PREFIX + "input_blocks.0.0.weight"


class ControlNetHost(ComfyHost):
    """The test suite's ComfyUI host (``tests/host/comfy_server.py``: the server's own environment, the
    pack as installed), with a ``controlnet`` model folder of its own (``models/controlnet``)."""

    def __init__(self, env: ServerEnv, custom_nodes: list[Path], work_dir: Path) -> None:
        super().__init__(env, custom_nodes, work_dir)
        self.controlnet_dir = self.models_dir / "controlnet"

    def _write_config(self) -> Path:
        config = super()._write_config()
        self.controlnet_dir.mkdir(parents=True, exist_ok=True)
        paths = json.loads(config.read_text())  # the host writes JSON (which is YAML)
        for section in paths.values():
            section["controlnet"] = str(self.controlnet_dir)
        config.write_text(json.dumps(paths, indent=1))
        return config

    def peak_rss(self) -> int:
        """The server's lifetime peak resident memory in bytes (Linux ``VmHWM``), loads included."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0


def sd21_random_checkpoint() -> Path:
    """The random HumanSD checkpoint as a plain SD2.1-base file (4-channel UNet input), cached in ``.cache/``."""
    source = full_random_checkpoint()
    digest = hashlib.sha256(source.name.encode()).hexdigest()[:12]

    def write(tmp: Path) -> None:
        with safe_open(str(source), framework="pt") as handle:
            state = {key: handle.get_tensor(key) for key in handle.keys()}
        state[INPUT_CONV] = state[INPUT_CONV][:, :4].contiguous()
        save_file(state, str(tmp))

    return cached_file(CACHE_DIR / f"sd21-base-random-full-fp16-{digest}.safetensors", write)


def controlnet_random_file() -> Path:
    """A random SD2.1 OpenPose-layout ControlNet (float16, ``control_model.*`` keys), cached in ``.cache/``."""
    layout = controlnet_layout(sd21_humansd_config().unet)
    digest = hashlib.sha256(json.dumps(sorted(layout.items())).encode()).hexdigest()[:12]

    def write(tmp: Path) -> None:
        save_file({CONTROLNET_PREFIX + k: t.half() for k, t in random_tensors(layout, seed=1)}, str(tmp))

    return cached_file(CACHE_DIR / f"controlnet-sd21-openpose-random-fp16-{digest}.safetensors", write)


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


def run_block(env: ServerEnv, pack: Path, name: str, graph: dict[str, Any], files: dict[str, Path], first: int,
              runs: int) -> dict[str, Any]:
    """A fresh server holding only ``graph``'s models: one warm-up run (loading included), then ``runs`` timed runs.

    Returns ``{"warm_up": run, "runs": [run, ...], "peak_rss": bytes, "log": text}``; run
    ``i`` of the block uses the seed and prompts of index ``first + i``.
    """
    with tempfile.TemporaryDirectory(prefix=f"vs_controlnet_{name}_") as tmp:
        host = ControlNetHost(env, [pack.parent], Path(tmp))
        host.start()
        try:
            link_checkpoint(host, files["humansd"], HUMANSD_NAME)
            link_checkpoint(host, files["sd21"], SD21_NAME)
            (host.controlnet_dir / CONTROLNET_NAME).symlink_to(files["controlnet"])
            server = psutil.Process(host.pid)
            warm_up = timed_run(host, server, for_run(graph, first))
            timed = [timed_run(host, server, for_run(graph, first + 1 + i)) for i in range(runs)]
            return {"warm_up": warm_up, "runs": timed, "peak_rss": host.peak_rss(), "log": host.log_text()}
        finally:
            host.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="image side (multiple of 64)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--blocks", type=int, default=2, help="server blocks per graph, the graphs alternating")
    parser.add_argument("--runs", type=int, default=2, help="timed runs per block, after its warm-up run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the server (OMP_NUM_THREADS)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vs_controlnet_pack_") as tmp:
        benchmark(args, copy_checkout(REPO_ROOT, Path(tmp) / "custom_nodes" / PACK_NAME))


def benchmark(args: argparse.Namespace, pack: Path) -> None:
    """The blocks of both graphs, with ``pack`` (the installed copy of this checkout) loaded; prints the results."""
    env = ensure_server_env(pack)
    files = {"humansd": full_random_checkpoint(), "sd21": sd21_random_checkpoint(), "controlnet": controlnet_random_file()}
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    pose_json = json.dumps(person_frame(args.size))
    graphs = {"humansd": humansd_graph(pose_json, args.size, args.steps, args.cfg),
              "controlnet": controlnet_graph(pose_json, args.size, args.steps, args.cfg)}
    print(f"{args.size}^2, {args.steps} DDIM steps, cfg {args.cfg}, torch threads in the server {args.threads}; "
          f"{args.blocks} blocks x {args.runs} timed runs per graph; times: server CPU s (ComfyUI execution wall s)",
          flush=True)
    times: dict[str, list[dict[str, float]]] = {name: [] for name in graphs}
    peaks: dict[str, int] = dict.fromkeys(graphs, 0)
    logs = []
    for block in range(args.blocks):
        for name in (list(graphs) if block % 2 == 0 else list(graphs)[::-1]):
            found = run_block(env, pack, name, graphs[name], files, block * (args.runs + 1), args.runs)
            times[name] += found["runs"]
            peaks[name] = max(peaks[name], found["peak_rss"])
            logs.append(found["log"])
            print(f"block {block} {name:10s}: warm-up (loading included) {found['warm_up']['cpu']:.1f} "
                  f"({found['warm_up']['exec_wall']:.1f}); runs " + ", ".join(
                      f"{r['cpu']:.1f} ({r['exec_wall']:.1f})" for r in found["runs"])
                  + f"; server peak RSS {found['peak_rss'] / 2**30:.2f} GiB", flush=True)
    medians = {name: {kind: statistics.median(r[kind] for r in runs) for kind in ("cpu", "exec_wall")}
               for name, runs in times.items()}
    cpu_ratio = medians["humansd"]["cpu"] / medians["controlnet"]["cpu"]
    wall_ratio = medians["humansd"]["exec_wall"] / medians["controlnet"]["exec_wall"]
    weights = sorted({line.split("model weight dtype", 1)[1].strip() for log in logs for line in log.splitlines()
                      if "model weight dtype" in line})
    print(f"medians per image: humansd {medians['humansd']['cpu']:.1f} CPU s ({medians['humansd']['exec_wall']:.1f} s), "
          f"controlnet {medians['controlnet']['cpu']:.1f} CPU s ({medians['controlnet']['exec_wall']:.1f} s); server "
          f"peak RSS (loads included) humansd/controlnet {peaks['humansd'] / peaks['controlnet']:.3f}; ComfyUI: model "
          f"weight dtype {weights}")
    print(f"humansd_over_controlnet_workflow={cpu_ratio:.3f} wall={wall_ratio:.3f}")


if __name__ == "__main__":
    main()
