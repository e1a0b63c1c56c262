"""Native concat (HumanSD) vs SD2.1 + an OpenPose ControlNet: one CFG step side by side, and peak memory.

    python -m benchmarks.vs_controlnet [--sizes 256 512] [--rounds 3] [--threads 1]
    python -m benchmarks.vs_controlnet --check     # the building blocks at a small size (seconds)

Run from the repository root (``-m`` puts it on the import path; the ComfyUI test suite's
0.3.75 is provisioned into ``.cache/`` on first use). Full SD2.1-base layout, random
weights, float32, CPU. Three arms, built from ComfyUI's own modules the way its loaders
build them:

- ``humansd``: ComfyUI's ``openaimodel.UNetModel`` from the SD2.1 UNet config ComfyUI
  detects (``model_detection.detect_unet_config`` + ``supported_models.SD20``, the
  ``CheckpointLoaderSimple`` route) with 8 input channels, called on
  ``cat([z_t, pose_latent])``;
- ``core``: the same with the core's ``humansd_core.models.UNetModel`` (as ``load_models``
  gives it on the CPU: channels-last);
- ``controlnet``: the same UNet with 4 input channels, driven by ComfyUI's
  ``cldm.ControlNet`` built by ComfyUI's own ``controlnet.load_controlnet_state_dict`` from
  a file-layout state dict of the SD2.1 OpenPose ControlNet (``control_model.*``, 3-channel
  hint at image resolution); its outputs go through ``ControlNet.control_merge`` and the
  UNet's ``control=`` argument, as in ComfyUI's sampler.

One step = the network work of one CFG denoising step: batch 2 (cond + uncond, both with
the same pose), then the guidance mix. The per-image work outside the step (VAE-encoding
the skeleton for HumanSD, text encoding, decoding) is not in it: see
``benchmarks/vs_controlnet_workflows.py`` for whole prompts in ComfyUI. Weights are shared
where the arms have the same tensors (the 4-channel UNet's are the 8-channel one's, its
input conv the first 4 channels; the core UNet assigns ComfyUI's tensors, convolution
kernels copied to channels-last), so the arms compute with the same values and the
process holds one UNet, not three; the compute per step is unchanged by sharing.

Timing: torch at ``--threads`` threads; the CPU time of the calling thread
(``time.thread_time``) at 1 thread, of the process otherwise; after one warm-up call per
arm and size, ``--rounds`` rounds each calling every arm once, the order rotating round
by round; ratios of the medians. Peak memory: each (arm, size) in a fresh process of its
own (this script with ``--child-memory``): the peak RSS (Linux ``VmHWM``) during one step
after building the arm, build temporaries freed and the peak reset just before the step.

Last line (ratios < 1: HumanSD is cheaper; step ratios and memory at the largest size):
``humansd_over_controlnet_step=<r> core_over_controlnet_step=<r> humansd_over_controlnet_peak_mem=<m>``.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import torch
from torch import nn

from humansd_core.models.checkpoint import UNET_PREFIX, fill_random_, random_tensors
from humansd_core.models.configs import UNetConfig, sd21_humansd_config
from humansd_core.models.unet import UNetModel
from humansd_core.process_memory import peak_rss_bytes, reset_peak_rss

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTROLNET_PREFIX = "control_model."  # the original ControlNet files' key prefix (ComfyUI reads it)
HINT_CHANNELS = 3  # an RGB skeleton image
HINT_WIDTHS = (16, 16, 32, 32, 96, 96, 256)  # ControlNet's hint encoder; three stride-2 convs: image -> latent size
LATENT_CHANNELS = 4
GUIDANCE = 7.5
ARMS = ("humansd", "core", "controlnet")
SEED = 0
Step = Callable[[], torch.Tensor]


def small_unet_config() -> UNetConfig:
    """SD2.1's code paths at a few channels, with 64-wide heads (what ComfyUI assumes for unknown sizes)."""
    return UNetConfig(model_channels=64, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(1, 2),
                      num_head_channels=64, context_dim=64)


# -- layouts ---------------------------------------------------------------------------------------

def unet_layout(cfg: UNetConfig, in_channels: int) -> dict[str, tuple[int, ...]]:
    """Keys (LDM ``diffusion_model`` names, no prefix) and shapes of the UNet of ``cfg`` with ``in_channels``."""
    with torch.device("meta"):
        unet = UNetModel(dataclasses.replace(cfg, in_channels=in_channels))
    return {k: tuple(v.shape) for k, v in unet.state_dict().items()}


def encoder_widths(cfg: UNetConfig) -> list[int]:
    """Output channels of each UNet input block (the skips, each given a ControlNet zero conv)."""
    widths = [cfg.model_channels]
    for level, mult in enumerate(cfg.channel_mult):
        widths += [mult * cfg.model_channels] * cfg.num_res_blocks
        if level != len(cfg.channel_mult) - 1:
            widths.append(mult * cfg.model_channels)
    return widths


def controlnet_layout(cfg: UNetConfig) -> dict[str, tuple[int, ...]]:
    """The ControlNet file layout for an SD2.x UNet of ``cfg`` (keys without the ``control_model.`` prefix).

    A trainable copy of the 4-channel UNet's encoder (``time_embed``, ``input_blocks``,
    ``middle_block``), the hint encoder ``input_hint_block.{0,2,..,14}`` (3x3 convs,
    ``3 -> 16 -> 16 -> 32 -> 32 -> 96 -> 96 -> 256 -> model_channels``, SiLU between), one
    1x1 ``zero_convs.i.0`` per input block and ``middle_block_out.0``: for SD2.1 the layout
    of the OpenPose ControlNets made for it.
    """
    layout = {k: s for k, s in unet_layout(cfg, LATENT_CHANNELS).items()
              if k.startswith(("time_embed.", "input_blocks.", "middle_block."))}
    widths = (HINT_CHANNELS, *HINT_WIDTHS, cfg.model_channels)
    for index, (c_in, c_out) in enumerate(zip(widths, widths[1:])):
        layout[f"input_hint_block.{2 * index}.weight"] = (c_out, c_in, 3, 3)
        layout[f"input_hint_block.{2 * index}.bias"] = (c_out,)
    for index, width in enumerate(encoder_widths(cfg)):
        layout[f"zero_convs.{index}.0.weight"] = (width, width, 1, 1)
        layout[f"zero_convs.{index}.0.bias"] = (width,)
    middle = cfg.model_channels * cfg.channel_mult[-1]
    layout["middle_block_out.0.weight"] = (middle, middle, 1, 1)
    layout["middle_block_out.0.bias"] = (middle,)
    return layout


def meta_state(layout: dict[str, tuple[int, ...]], prefix: str) -> dict[str, torch.Tensor]:
    """Shape-only tensors (meta device) under ``prefix + key``: enough for ComfyUI's layout detection."""
    return {prefix + k: torch.empty(s, device="meta") for k, s in layout.items()}


# -- ComfyUI's modules -------------------------------------------------------------------------------

def comfy_model_config(cfg: UNetConfig, in_channels: int) -> Any:
    """ComfyUI's model config for this UNet: its detection on the layout as an ``SD20`` config, float32.

    For the full SD2.1 layout this is what ``model_detection.model_config_from_unet`` (the
    stock checkpoint loader) returns; ``--check`` verifies that.
    """
    import comfy.model_detection
    import comfy.supported_models

    unet_config = comfy.model_detection.detect_unet_config(meta_state(unet_layout(cfg, in_channels), UNET_PREFIX),
                                                           UNET_PREFIX)
    model_config = comfy.supported_models.SD20(unet_config)
    model_config.set_inference_dtype(torch.float32, None)
    return model_config


def comfy_unet(cfg: UNetConfig, in_channels: int, device: str | None = None) -> nn.Module:
    """ComfyUI's ``UNetModel`` built as ``BaseModel`` builds it (``model_config.get_model``), weights unset.

    ``(x [B, in_channels, h, w], timesteps=[B], context=[B, 77, D], control=None) -> [B, 4, h, w]``.
    ``device="meta"`` allocates nothing; otherwise the weights are uninitialised CPU memory.
    """
    return comfy_model_config(cfg, in_channels).get_model({}, UNET_PREFIX, device=device).diffusion_model.eval()


def random_comfy_unet(cfg: UNetConfig, seed: int = SEED) -> nn.Module:
    """ComfyUI's 8-channel (HumanSD) UNet of ``cfg`` with the core's random-weight scheme."""
    return fill_random_(comfy_unet(cfg, cfg.in_channels), seed)


def shared_sd_unet(cfg: UNetConfig, humansd_unet: nn.Module) -> nn.Module:
    """ComfyUI's 4-channel (SD2.1) UNet holding ``humansd_unet``'s tensors; the input conv its first 4 channels."""
    unet = comfy_unet(cfg, LATENT_CHANNELS, device="meta")
    state = humansd_unet.state_dict()
    key = "input_blocks.0.0.weight"
    state[key] = state[key][:, :LATENT_CHANNELS].clone()
    unet.load_state_dict(state, assign=True)
    return unet.eval()


def random_controlnet(cfg: UNetConfig, seed: int = SEED + 1) -> Any:
    """ComfyUI's ``comfy.controlnet.ControlNet`` (its ``.control_model`` a ``cldm.ControlNet``), random weights.

    The state dict of :func:`controlnet_layout` (float16, ``control_model.`` keys, as the
    published files) goes through ComfyUI's own loader, which detects the config from the
    keys and builds the float32 model; the dict is freed before returning.
    """
    import comfy.controlnet

    state = {CONTROLNET_PREFIX + k: t.half() for k, t in random_tensors(controlnet_layout(cfg), seed)}
    control = comfy.controlnet.load_controlnet_state_dict(state)
    del state
    release_freed_memory()
    control.control_model.eval()
    return control


def core_unet(cfg: UNetConfig, weights_of: nn.Module | None = None, seed: int = SEED) -> nn.Module:
    """The core's UNet as ``load_models`` returns it on the CPU (eval, channels-last, no grad).

    Holds ``weights_of``'s tensors (assigned, not copied; 4-D kernels then copied to
    channels-last), or random weights of :func:`fill_random_` when None.
    """
    with torch.device("meta"):
        unet = UNetModel(cfg)
    if weights_of is not None:
        unet.load_state_dict(weights_of.state_dict(), assign=True)
    else:
        fill_random_(unet.to_empty(device="cpu"), seed)
    return unet.to(memory_format=torch.channels_last).eval().requires_grad_(False)


def release_freed_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``), so RSS shows live data."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# -- one CFG step -------------------------------------------------------------------------------------

@dataclasses.dataclass
class StepInputs:
    """One CFG step's inputs at one size (cond and uncond halves share noise, timestep and pose)."""

    x: torch.Tensor  # [2, 4, h, w] noisy latent
    pose_latent: torch.Tensor  # [2, 4, h, w] the skeleton's VAE latent (HumanSD)
    hint: torch.Tensor  # [2, 3, 8h, 8w] the skeleton image in [0, 1] (ControlNet)
    timesteps: torch.Tensor  # [2]
    context: torch.Tensor  # [2, 77, D] text (cond, uncond)


def step_inputs(cfg: UNetConfig, image_size: int, seed: int = SEED) -> StepInputs:
    """Random :class:`StepInputs` for ``image_size`` x ``image_size`` images (a multiple of 8)."""
    gen = torch.Generator().manual_seed(seed)
    latent = image_size // 8
    x = torch.randn(1, LATENT_CHANNELS, latent, latent, generator=gen).expand(2, -1, -1, -1).contiguous()
    pose = torch.randn(1, LATENT_CHANNELS, latent, latent, generator=gen).expand(2, -1, -1, -1).contiguous()
    hint = torch.rand(1, HINT_CHANNELS, image_size, image_size, generator=gen).expand(2, -1, -1, -1).contiguous()
    context = torch.randn(2, 77, cfg.context_dim, generator=gen)
    return StepInputs(x, pose, hint, torch.full((2,), 500.0), context)


def guide(eps: torch.Tensor) -> torch.Tensor:
    """Classifier-free guidance: ``[2, 4, h, w]`` (cond, uncond) -> ``[1, 4, h, w]``."""
    cond, uncond = eps.chunk(2)
    return uncond + GUIDANCE * (cond - uncond)


def humansd_step(unet: nn.Module, inputs: StepInputs, comfy: bool) -> Step:
    """One CFG step of the native concat: ``UNet(cat([z_t, pose_latent]), t, text)``."""
    def step() -> torch.Tensor:
        x = torch.cat([inputs.x, inputs.pose_latent], dim=1)
        if comfy:
            return guide(unet(x, timesteps=inputs.timesteps, context=inputs.context))
        return guide(unet(x, inputs.timesteps, inputs.context))
    return step


def controlnet_step(unet: nn.Module, control: Any, inputs: StepInputs) -> Step:
    """One CFG step of SD2.1 + ControlNet, as ComfyUI's sampler runs it (``ControlNet.get_control``)."""
    def step() -> torch.Tensor:
        residuals = control.control_model(x=inputs.x, hint=inputs.hint, timesteps=inputs.timesteps,
                                          context=inputs.context)
        merged = control.control_merge(residuals, None, output_dtype=None)
        return guide(unet(inputs.x, timesteps=inputs.timesteps, context=inputs.context, control=merged))
    return step


def build_arm(arm: str, cfg: UNetConfig) -> Callable[[StepInputs], Step]:
    """Only ``arm``'s modules (for a memory measurement); returns ``inputs -> step``."""
    if arm == "humansd":
        unet = random_comfy_unet(cfg)
        return lambda inputs: humansd_step(unet, inputs, comfy=True)
    if arm == "core":
        core = core_unet(cfg)
        return lambda inputs: humansd_step(core, inputs, comfy=False)
    unet = comfy_unet(cfg, LATENT_CHANNELS)
    fill_random_(unet)
    control = random_controlnet(cfg)
    return lambda inputs: controlnet_step(unet, control, inputs)


def build_all(cfg: UNetConfig) -> dict[str, Any]:
    """Every arm's modules, weights shared (see the module docstring)."""
    humansd = random_comfy_unet(cfg)
    return {"humansd": humansd, "sd": shared_sd_unet(cfg, humansd), "core": core_unet(cfg, humansd),
            "control": random_controlnet(cfg)}


def arm_steps(models: dict[str, Any], inputs: StepInputs) -> dict[str, Step]:
    """``{arm: step}`` over :func:`build_all`'s modules."""
    return {"humansd": humansd_step(models["humansd"], inputs, comfy=True),
            "core": humansd_step(models["core"], inputs, comfy=False),
            "controlnet": controlnet_step(models["sd"], models["control"], inputs)}


def step_flops(cfg: UNetConfig, image_size: int) -> dict[str, float]:
    """Floating-point operations of one CFG step (batch 2) per arm's networks, counted on the meta device.

    ``unet``: the 8-channel UNet (the 4-channel one differs by 0.01 %); ``controlnet``: its
    encoder copy (``time_embed``, ``input_blocks``, ``middle_block`` of the 4-channel UNet),
    the hint encoder at image resolution and the 1x1 zero convs (``2 C^2 h w`` per image
    each). Counted with ``torch.utils.flop_counter`` on the core's modules (convolutions,
    matmuls, attention), the work the two arms' kernels share.
    """
    from torch.utils.flop_counter import FlopCounterMode

    latent = image_size // 8
    counts = {}
    with torch.device("meta"):
        for channels in (cfg.in_channels, LATENT_CHANNELS):
            unet = UNetModel(dataclasses.replace(cfg, in_channels=channels))
            with FlopCounterMode(display=False, depth=3) as counter:
                unet(torch.empty(2, channels, latent, latent), torch.empty(2), torch.empty(2, 77, cfg.context_dim))
            counts[channels] = ({k: sum(v.values()) for k, v in counter.get_flop_counts().items()},
                                counter.get_total_flops())
        by_module, _ = counts[LATENT_CHANNELS]
        encoder = sum(flops for name, flops in by_module.items()
                      if (name.startswith("UNetModel.input_blocks.") and name.count(".") == 2)
                      or name in ("UNetModel.time_embed", "UNetModel.middle_block"))
        layout = controlnet_layout(cfg)
        hint = nn.Sequential(*[nn.Conv2d(shape[1], shape[0], 3, padding=1, stride=2 if index in (4, 8, 12) else 1)
                               for index in range(0, 16, 2)
                               for shape in [layout[f"input_hint_block.{index}.weight"]]])
        with FlopCounterMode(display=False) as counter:
            hint(torch.empty(2, HINT_CHANNELS, image_size, image_size))
    zero_convs, side = 0, latent
    for index, width in enumerate(encoder_widths(cfg)):
        if index and layout.get(f"input_blocks.{index}.0.op.weight"):
            side = -(-side // 2)  # a Downsample block: its skip is at the halved size
        zero_convs += 2 * 2 * width * width * side * side
    middle = cfg.model_channels * cfg.channel_mult[-1]
    zero_convs += 2 * 2 * middle * middle * side * side
    return {"unet": float(counts[cfg.in_channels][1]),
            "controlnet": float(encoder + counter.get_total_flops() + zero_convs)}


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def relative_difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """``max|ours - theirs| / max|theirs|`` in float64."""
    ours, theirs = ours.double(), theirs.double()
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


# -- measurements ---------------------------------------------------------------------------------------

def cpu_clock(threads: int) -> Callable[[], float]:
    """The calling thread's CPU clock at 1 torch thread (all the work runs on it), else the process's."""
    return time.thread_time if threads == 1 else time.process_time


def time_arms(steps: dict[str, Step], rounds: int, clock: Callable[[], float]) -> dict[str, dict[str, list[float]]]:
    """``{arm: {"cpu": [...], "wall": [...]}}`` over ``rounds`` rounds, each arm once a round, order rotating."""
    names = list(steps)
    times: dict[str, dict[str, list[float]]] = {name: {"cpu": [], "wall": []} for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            wall, cpu = time.perf_counter(), clock()
            steps[name]()
            times[name]["cpu"].append(clock() - cpu)
            times[name]["wall"].append(time.perf_counter() - wall)
    return times


def child_memory(arm: str, size: int, threads: int) -> dict[str, Any]:
    """In a fresh process: build ``arm`` alone, then peak RSS during one CFG step at ``size``."""
    cfg = sd21_humansd_config().unet
    baseline = psutil.Process().memory_info().rss
    with torch.inference_mode():
        make_step = build_arm(arm, cfg)
        step = make_step(step_inputs(cfg, size))
        release_freed_memory()
        built = psutil.Process().memory_info().rss
        reset_peak_rss()
        out = step()
        peak = peak_rss_bytes()
    return {"arm": arm, "size": size, "baseline": baseline, "built": built, "peak": peak,
            "finite": bool(torch.isfinite(out).all())}


def measure_memory(sizes: list[int], threads: int) -> dict[tuple[str, int], dict[str, Any]]:
    """:func:`child_memory` of every arm and size, each in its own process (this module with ``--child-memory``)."""
    results = {}
    for size in sizes:
        for arm in ARMS:
            cmd = [sys.executable, "-m", "benchmarks.vs_controlnet", "--child-memory", arm, "--sizes", str(size),
                   "--threads", str(threads)]
            proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"memory child {arm} {size} failed:\n{proc.stderr[-3000:]}")
            results[arm, size] = json.loads(proc.stdout.strip().splitlines()[-1])
            found = results[arm, size]
            print(f"  peak RSS {arm:10s} {size}^2: {found['peak'] / 2**30:.2f} GiB (process before building "
                  f"{found['baseline'] / 2**30:.2f}, built {found['built'] / 2**30:.2f})", flush=True)
    return results


def import_comfy_once() -> None:
    """Import the test suite's ComfyUI in this process (CPU, float32), provisioning it on first use."""
    from tests.support.comfy_inprocess import import_comfy
    from tests.host.comfy_setup import ensure_comfyui

    import_comfy(ensure_comfyui())


# -- the building blocks, checked ----------------------------------------------------------------------

def block_output_shapes(unet: nn.Module, run: Callable[[], object]) -> tuple[list[tuple[int, ...]], tuple[int, ...]]:
    """Shapes of each input block's and of the middle block's output while ``run()`` calls ``unet``.

    Hooks sit on each block's last layer: ComfyUI's UNet runs a block's layers itself
    (``forward_timestep_embed``), never calling the block module.
    """
    shapes: list[tuple[int, ...]] = []
    middle: list[tuple[int, ...]] = []
    hooks = [block[-1].register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
             for block in unet.input_blocks]
    hooks.append(unet.middle_block[-1].register_forward_hook(lambda _m, _i, out: middle.append(tuple(out.shape))))
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return shapes, middle[0]


def check() -> dict[str, Any]:
    """The benchmark's building blocks: layouts at full size (meta device), one step of each arm at a small size."""
    import comfy.cldm.cldm
    import comfy.model_detection
    import comfy.ops

    full = sd21_humansd_config().unet
    result: dict[str, Any] = {}
    # full size, shapes only: ComfyUI's detection and ControlNet class agree with the layouts built here
    stock = comfy.model_detection.model_config_from_unet(meta_state(unet_layout(full, 8), UNET_PREFIX), UNET_PREFIX)
    stock.set_inference_dtype(torch.float32, None)  # as load_state_dict_guess_config does with --fp32-unet
    ours = comfy_model_config(full, 8)
    result["full_unet_config_is_stock"] = type(stock) is type(ours) and stock.unet_config == ours.unet_config
    layout = controlnet_layout(full)
    detected = comfy.model_detection.model_config_from_unet(meta_state(layout, CONTROLNET_PREFIX),
                                                            CONTROLNET_PREFIX, True).unet_config.copy()
    detected.pop("out_channels")
    comfy_cn = comfy.cldm.cldm.ControlNet(**detected, hint_channels=HINT_CHANNELS, device="meta",
                                          operations=comfy.ops.disable_weight_init)
    comfy_layout = {k: tuple(v.shape) for k, v in comfy_cn.state_dict().items()}
    result["full_controlnet_layout_matches_comfy"] = comfy_layout == layout
    result["full_controlnet_layout_diff"] = sorted(set(comfy_layout.items()) ^ set(layout.items()))[:8]
    result["full_params"] = {"humansd_unet": parameter_count(comfy_unet(full, 8, "meta")),
                             "sd_unet": parameter_count(comfy_unet(full, LATENT_CHANNELS, "meta")),
                             "controlnet": parameter_count(comfy_cn),
                             "core_unet": sum(torch.Size(s).numel() for s in unet_layout(full, 8).values())}
    flops = step_flops(full, 256)
    result["full_flops_256"] = {k: v / 1e9 for k, v in flops.items()}
    result["full_controlnet_keys"] = len(layout)
    result["full_zero_conv_widths"] = encoder_widths(full)

    # small size, real weights: every arm runs; the ControlNet's outputs have the shapes they are added to
    cfg = small_unet_config()
    with torch.inference_mode():
        models = build_all(cfg)
        inputs = step_inputs(cfg, 64)
        steps = arm_steps(models, inputs)
        outputs = {name: step() for name, step in steps.items()}
        residuals = models["control"].control_model(x=inputs.x, hint=inputs.hint, timesteps=inputs.timesteps,
                                                   context=inputs.context)
        skips, middle = block_output_shapes(models["sd"], lambda: models["sd"](
            inputs.x, timesteps=inputs.timesteps, context=inputs.context))
        plain = guide(models["sd"](inputs.x, timesteps=inputs.timesteps, context=inputs.context))
    result["small_output_shapes"] = {name: list(out.shape) for name, out in outputs.items()}
    result["small_finite"] = all(bool(torch.isfinite(out).all()) for out in outputs.values())
    result["small_control_output_shapes_match_skips"] = [tuple(r.shape) for r in residuals["output"]] == skips
    result["small_control_middle_shape_matches"] = [tuple(r.shape) for r in residuals["middle"]] == [middle]
    result["small_control_changes_output"] = relative_difference(outputs["controlnet"], plain)
    result["small_core_vs_comfy_rel"] = relative_difference(outputs["core"], outputs["humansd"])
    result["small_weights_shared"] = (models["core"].time_embed[0].weight.data_ptr()
                                      == models["humansd"].time_embed[0].weight.data_ptr()
                                      == models["sd"].time_embed[0].weight.data_ptr())
    return result


# -- the benchmark --------------------------------------------------------------------------------------

def median_ratio(times: dict[str, dict[str, list[float]]], arm: str, kind: str = "cpu") -> float:
    return statistics.median(times[arm][kind]) / statistics.median(times["controlnet"][kind])


def run_benchmark(args: argparse.Namespace) -> None:
    cfg = sd21_humansd_config().unet
    clock_name = "thread CPU" if args.threads == 1 else "process CPU"
    print(f"torch {torch.__version__}, {args.threads} thread(s), float32, CPU; sizes {args.sizes}, "
          f"{args.rounds} rounds after a warm-up; times: {clock_name} seconds", flush=True)
    memory = {} if args.skip_memory else measure_memory(args.sizes, args.threads)

    began = time.perf_counter()
    with torch.inference_mode():
        models = build_all(cfg)
    release_freed_memory()
    counts = {"humansd_unet": parameter_count(models["humansd"]), "sd_unet": parameter_count(models["sd"]),
              "controlnet": parameter_count(models["control"].control_model),
              "core_unet": parameter_count(models["core"])}
    print(f"built in {time.perf_counter() - began:.0f} s; parameters: HumanSD UNet {counts['humansd_unet'] / 1e6:.1f} M, "
          f"SD2.1 UNet {counts['sd_unet'] / 1e6:.1f} M + ControlNet {counts['controlnet'] / 1e6:.1f} M "
          f"(= {(counts['sd_unet'] + counts['controlnet']) / counts['sd_unet']:.3f}x), core UNet "
          f"{counts['core_unet'] / 1e6:.1f} M; process RSS {psutil.Process().memory_info().rss / 2**30:.2f} GiB",
          flush=True)

    results: dict[int, dict[str, Any]] = {}
    for size in args.sizes:
        inputs = step_inputs(cfg, size)
        steps = arm_steps(models, inputs)
        with torch.inference_mode():
            warm = {name: step() for name, step in steps.items()}
            times = time_arms(steps, args.rounds, cpu_clock(args.threads))
        rel = relative_difference(warm["core"], warm["humansd"])
        flops = step_flops(cfg, size)
        results[size] = {"times": times, "rel": rel}
        print(f"{size}^2 step FLOPs: UNet {flops['unet'] / 1e9:.0f} G, ControlNet {flops['controlnet'] / 1e9:.0f} G: "
              f"the work ratio humansd/controlnet is {flops['unet'] / (flops['unet'] + flops['controlnet']):.3f}",
              flush=True)
        for name in ARMS:
            print(f"{size}^2 {name:10s} CPU s: " + " ".join(f"{t:.2f}" for t in times[name]["cpu"])
                  + " | wall s: " + " ".join(f"{t:.2f}" for t in times[name]["wall"]), flush=True)
        paired = [h / c for h, c in zip(times["humansd"]["cpu"], times["controlnet"]["cpu"])]
        print(f"{size}^2: humansd/controlnet {median_ratio(times, 'humansd'):.3f}, core/controlnet "
              f"{median_ratio(times, 'core'):.3f}, core/humansd "
              f"{statistics.median(times['core']['cpu']) / statistics.median(times['humansd']['cpu']):.3f} "
              f"(CPU medians; per-round humansd/controlnet {min(paired):.3f}..{max(paired):.3f}; wall medians "
              f"{median_ratio(times, 'humansd', 'wall'):.3f}, {median_ratio(times, 'core', 'wall'):.3f}); "
              f"max|core - comfy| / max|comfy| = {rel:.1e}; outputs finite: "
              f"{all(bool(torch.isfinite(w).all()) for w in warm.values())}", flush=True)
        del warm

    mem_ratio = float("nan")
    for size in args.sizes:
        if memory:
            peaks = {arm: memory[arm, size]["peak"] for arm in ARMS}
            growth = {arm: memory[arm, size]["peak"] - memory[arm, size]["baseline"] for arm in ARMS}
            mem_ratio = peaks["humansd"] / peaks["controlnet"]
            print(f"{size}^2 peak RSS humansd/controlnet {mem_ratio:.3f}, core/controlnet "
                  f"{peaks['core'] / peaks['controlnet']:.3f}; over the process before building: "
                  f"{growth['humansd'] / growth['controlnet']:.3f}, {growth['core'] / growth['controlnet']:.3f}")
    largest = results[args.sizes[-1]]["times"]
    print(f"humansd_over_controlnet_step={median_ratio(largest, 'humansd'):.3f} "
          f"core_over_controlnet_step={median_ratio(largest, 'core'):.3f} "
          f"humansd_over_controlnet_peak_mem={mem_ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="image sides (multiples of 64)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per size, after one warm-up")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--skip-memory", action="store_true", help="no peak-memory processes")
    parser.add_argument("--check", action="store_true",
                        help="check the building blocks (layouts, shapes, parity) at a small size; print JSON")
    parser.add_argument("--child-memory", choices=ARMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if any(size % 64 for size in args.sizes):
        parser.error("--sizes must be multiples of 64")
    args.sizes = sorted(args.sizes)
    import_comfy_once()
    torch.set_num_threads(args.threads)
    if args.child_memory:
        print(json.dumps(child_memory(args.child_memory, args.sizes[0], args.threads)))
    elif args.check:
        print(json.dumps(check()))
    else:
        run_benchmark(args)


if __name__ == "__main__":
    main()
