"""ComfyUI's own UNet, VAE and text encoder next to the core's, in one process.

Shared by ``tests/host/test_module_parity.py`` and ``benchmarks/unet_forward.py``.
Importing ComfyUI changes process-wide state (its argument parser reads ``sys.argv``,
``comfy.model_management`` picks devices and dtypes at import, loggers, ``sys.path``),
so only a process of its own calls :func:`import_comfy`: the test runs this module from
the repository root (``python -m tests.support.comfy_inprocess parity CHECKPOINT
--comfy-dir DIR``), which prints one JSON line of measured differences.

ComfyUI runs with ``--cpu --fp32-unet --fp32-vae --fp32-text-enc``: on a CPU it
would otherwise keep the text encoder in float16 (``text_encoder_dtype``); the UNet
and VAE are float32 there anyway. Its attention is its CPU default
(``attention_sub_quad``), the core's is ``scaled_dot_product_attention``.

How ComfyUI builds its modules from the file:

- the real SD2.1 layout: ComfyUI's stock route (``comfy.utils.load_torch_file`` +
  ``comfy.sd.load_state_dict_guess_config``, what ``CheckpointLoaderSimple`` runs),
  one part at a time so the full model is never held twice;
- other sizes (the tiny self-describing test files): the pack's own loader,
  ``nodes/_comfy_model.load_humansd_checkpoint``, imported the way ComfyUI imports
  the pack (the checkout folder as a package).

The core side is always :func:`humansd_core.models.checkpoint.load_models`.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from humansd_core.models.checkpoint import HumanSDModels, identify_config, load_models, open_tensors
from humansd_core.models.configs import sd21_humansd_config
from humansd_core.process_memory import peak_rss_bytes

REPO_ROOT = Path(__file__).resolve().parents[2]

COMFY_FLAGS = ("--cpu", "--fp32-unet", "--fp32-vae", "--fp32-text-enc")
PROMPTS = ("a photo of a woman dancing in a park, detailed background, best quality",
           "longbody, lowres, bad anatomy, bad hands")
PACK_MODULE = "humansd_parity_pack"


def import_comfy(comfy_dir: Path) -> None:
    """Import ComfyUI from ``comfy_dir`` with :data:`COMFY_FLAGS` (once per process).

    The flags must be in ``sys.argv`` and argument parsing enabled before the first
    ``import comfy.sd``, else ``model_management`` looks for CUDA at import.
    """
    if "comfy.sd" in sys.modules:
        return
    sys.argv = [sys.argv[0], *COMFY_FLAGS]
    sys.path.insert(0, str(comfy_dir))
    import comfy.options

    comfy.options.enable_args_parsing()
    import comfy.sd  # noqa: F401


def _is_sd21_layout(path: Path) -> bool:
    """Whether the file holds the real SD2.1-size HumanSD model (which ComfyUI's detection knows)."""
    with open_tensors(path) as source:
        return identify_config(source.shapes, source.metadata, path) == sd21_humansd_config()


def _pack_loader() -> Any:
    """``load_humansd_checkpoint`` of this checkout, imported as ComfyUI imports a pack."""
    if PACK_MODULE not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            PACK_MODULE, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)])
        pack = importlib.util.module_from_spec(spec)
        sys.modules[PACK_MODULE] = pack
        spec.loader.exec_module(pack)
    return importlib.import_module(f"{PACK_MODULE}.nodes._comfy_model").load_humansd_checkpoint


def load_comfy(path: Path, parts: tuple[str, ...]) -> dict[str, Any]:
    """ComfyUI's own objects for ``parts`` of the checkpoint at ``path``.

    ``"unet"``: the ``openaimodel.UNetModel`` (``model.diffusion_model``), called as
    ``(x [B,8,h,w], timesteps [B], context [B,77,D]) -> [B,4,h,w]``; ``"vae"``: the
    ``comfy.sd.VAE`` (its module is ``.first_stage_model``); ``"clip"``: the
    ``comfy.sd.CLIP``. Import ComfyUI first (:func:`import_comfy`).
    """
    import comfy.sd
    import comfy.utils

    if _is_sd21_layout(path):
        model, clip, vae, _ = comfy.sd.load_state_dict_guess_config(
            comfy.utils.load_torch_file(str(path)),
            output_model="unet" in parts, output_vae="vae" in parts, output_clip="clip" in parts)
    else:
        model, clip, vae = _pack_loader()(path)
    found = {"unet": model.model.diffusion_model if model is not None else None, "vae": vae, "clip": clip}
    return {part: found[part] for part in parts}


def load_core(path: Path) -> HumanSDModels:
    """The core's networks of ``path`` in float32 on the CPU (``load_models``, as users get them)."""
    return load_models(path, dtype=torch.float32)


def unet_inputs(config: Any, latent: int, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``x [B, in_ch, latent, latent]``, float timesteps ``[B]`` (999 down to 37), ``context [B, 77, D]``."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, config.unet.in_channels, latent, latent, generator=gen)
    timesteps = torch.linspace(999.0, 37.0, batch)
    context = torch.randn(batch, config.text.context_length, config.unet.context_dim, generator=gen)
    return x, timesteps, context


def difference(ours: torch.Tensor, theirs: torch.Tensor) -> dict[str, Any]:
    """``max_abs`` = max|ours − theirs|, ``scale`` = max|theirs|, ``rel`` = max_abs / scale."""
    if ours.shape != theirs.shape:
        raise AssertionError(f"shape {tuple(ours.shape)} != ComfyUI's {tuple(theirs.shape)}")
    ours, theirs = ours.detach().double(), theirs.detach().double()
    max_abs = (ours - theirs).abs().max().item()
    scale = theirs.abs().max().item()
    return {"shape": list(theirs.shape), "max_abs": max_abs, "scale": scale, "rel": max_abs / scale,
            "finite": bool(torch.isfinite(ours).all() and torch.isfinite(theirs).all())}


def _comfy_tokens(clip: Any, prompt: str) -> list[int]:
    """Token ids of ComfyUI's tokenizer (its one text tower's only 77-token chunk)."""
    ((chunk,),) = clip.tokenize(prompt).values()
    return [int(pair[0]) for pair in chunk]


def compare_text(core: HumanSDModels, clip: Any) -> dict[str, Any]:
    """Core ``TextEncoder(prompts)`` vs ComfyUI's ``CLIP.encode`` on :data:`PROMPTS` (tokenizers included)."""
    ours = core.text_encoder(list(PROMPTS))
    theirs = torch.cat([clip.encode_from_tokens(clip.tokenize(p)) for p in PROMPTS])
    result = difference(ours, theirs)
    core_tokens = core.text_encoder.tokenize(list(PROMPTS)).tolist()
    result["tokens_equal"] = core_tokens == [_comfy_tokens(clip, p) for p in PROMPTS]
    return result


def compare_vae(core: HumanSDModels, vae: Any, image_size: int = 64, seed: int = 1) -> dict[str, Any]:
    """Core ``encode``/``decode`` vs ComfyUI's ``first_stage_model`` (posterior mean; raw decode)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(2, 3, image_size, image_size, generator=gen) * 2 - 1
    factor = core.config.vae.downsample_factor
    latents = torch.randn(2, core.config.vae.embed_dim, image_size // factor, image_size // factor, generator=gen)
    module = vae.first_stage_model
    return {"encode": difference(core.vae.encode(images), module.encode(images)),
            "decode": difference(core.vae.decode(latents), module.decode(latents))}


def compare_unet(unet: torch.nn.Module, comfy_unet: torch.nn.Module, config: Any, latent: int) -> dict[str, Any]:
    """Core UNet vs ComfyUI's on :func:`unet_inputs` (batch 2, two timesteps)."""
    x, timesteps, context = unet_inputs(config, latent)
    return difference(unet(x, timesteps, context), comfy_unet(x, timesteps=timesteps, context=context))


def parity(path: Path, latent: int) -> dict[str, Any]:
    """Every part of the core against ComfyUI's, loading each of ComfyUI's parts alone.

    Order keeps memory low: the core's three networks, then ComfyUI's text encoder and
    VAE (compared, freed with the core's), then ComfyUI's UNet next to the core's.
    """
    began = time.perf_counter()
    results: dict[str, Any] = {}
    with torch.inference_mode():
        core = load_core(path)
        comfy = load_comfy(path, ("clip", "vae"))
        results["text"] = compare_text(core, comfy["clip"])
        results.update({f"vae_{k}": v for k, v in compare_vae(core, comfy["vae"]).items()})
        unet, config = core.unet, core.config
        del comfy, core
        gc.collect()
        comfy_unet = load_comfy(path, ("unet",))["unet"]
        results["unet"] = compare_unet(unet, comfy_unet, config, latent)
    results["seconds"] = time.perf_counter() - began
    results["peak_rss_gib"] = peak_rss_bytes() / 2**30
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("parity", help="print one JSON line: differences core vs ComfyUI per part")
    run.add_argument("checkpoint", type=Path)
    run.add_argument("--comfy-dir", type=Path, required=True)
    run.add_argument("--latent", type=int, default=16, help="UNet latent side (image side / 8)")
    args = parser.parse_args()
    import_comfy(args.comfy_dir)
    print(json.dumps(parity(args.checkpoint, args.latent)))


if __name__ == "__main__":
    main()
