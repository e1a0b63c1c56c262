"""ComfyUI's own loaded networks behind the core trainer's seams (host side).

The core trainer (``humansd_core.training.trainer.Trainer``) is given a
``HumanSDModels`` whose parts are ComfyUI's objects, not copies:

- ``unet``: the MODEL's ``diffusion_model`` (ComfyUI's ``openaimodel.UNetModel``),
  called as ``(x [B,8,h,w], t [B], context [B,77,C]) -> eps [B,4,h,w]``; a forward
  pre-hook casts the inputs to the UNet's compute dtype and passes the MODEL's
  ``transformer_options`` (its patches and ``DIFFUSION_MODEL`` wrappers) as ComfyUI's
  own sampling does, a forward hook returns float32. LoRA mode puts the core's
  adapters on it in place (the base weights are not copied) and takes them off again;
  full mode trains its weights in place and puts the MODEL's own back afterwards
  (:class:`TrainingNetworks`).
- ``vae``: :class:`ComfyLatentCodec` over the VAE's ``first_stage_model``
  (``encode_dist``/``encode``/``decode`` on unscaled latents, images in ``[-1, 1]``).
- ``text_encoder``: :class:`PromptContexts`, every prompt of the run encoded once by
  ComfyUI's CLIP before training (so CLIP is not on the device while the UNet trains).

ComfyUI runs nodes under ``torch.inference_mode()``; the session works inside
``torch.inference_mode(False)`` and turns the UNet weights that autograd must save
(inference tensors) into normal ones, in place and one tensor at a time.
"""
from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..humansd_core.errors import CheckpointError, HumanSDError
from ..humansd_core.fileio import atomic_write_with
from ..humansd_core.models.checkpoint import HumanSDModels
from ..humansd_core.models.configs import ModelConfig
from ..humansd_core.models.safetensors_write import write_safetensors
from ..humansd_core.training.config import ModelOptions
from ..humansd_core.training.lora import lora_layers
from ..humansd_core.training.modules import prepare_for_training

logger = logging.getLogger(__name__)

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."


# -- text ----------------------------------------------------------------------------------------------


def encode_prompts(clip: Any, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
    """``{prompt: context [77·k, C]}`` of every distinct prompt, from ComfyUI's CLIP (as CLIPTextEncode)."""
    import comfy.model_management as mm

    if clip is None:
        raise HumanSDError("clip: no text encoder given (the checkpoint may lack one)")
    out = {}
    for prompt in dict.fromkeys(prompts):
        mm.throw_exception_if_processing_interrupted()
        out[prompt] = clip.encode_from_tokens(clip.tokenize(prompt))[0]
    return out


class PromptContexts(nn.Module):
    """``prompts (list[str]) -> context [B, L, C]`` float32 on ``device``, from contexts encoded beforehand.

    Prompts longer than one 77-token chunk have longer contexts; a batch mixing lengths
    repeats each to their least common multiple, as ComfyUI batches conditionings.
    """

    def __init__(self, contexts: dict[str, torch.Tensor], device: torch.device) -> None:
        super().__init__()
        self.contexts = {k: v.detach().clone().float().to(device) for k, v in contexts.items()}

    def forward(self, prompts: str | Sequence[str]) -> torch.Tensor:  # type: ignore[override]
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        missing = [p for p in prompts if p not in self.contexts]
        if missing:
            raise HumanSDError(f"prompt {missing[0]!r} was not encoded before training")
        chosen = [self.contexts[p] for p in prompts]
        length = math.lcm(*(c.shape[0] for c in chosen))
        return torch.stack([c.repeat(length // c.shape[0], 1) for c in chosen])


# -- latents -------------------------------------------------------------------------------------------


class ComfyLatentCodec(nn.Module):
    """The core's latent codec over ComfyUI's ``first_stage_model`` (an LDM ``AutoencoderKL``).

    ``encode_dist(images [B,3,H,W] in [-1,1]) -> (mean, logvar)`` each ``[B,4,H/f,W/f]``
    (logvar clamped to [-30, 20]), ``encode`` the mean, ``decode(latents) -> [B,3,fH,fW]``
    in about ``[-1, 1]``; latents unscaled. ``decoder`` is the decoder module (what a
    distilled loss net is tied to).
    """

    def __init__(self, vae: Any) -> None:
        super().__init__()
        autoencoder = vae.first_stage_model
        for part in ("encoder", "decoder", "quant_conv", "post_quant_conv"):
            if not isinstance(getattr(autoencoder, part, None), nn.Module):
                raise CheckpointError(f"vae: {type(autoencoder).__name__} is not an SD autoencoder (no {part})")
        if getattr(autoencoder, "bn", None) is not None:
            raise CheckpointError("vae: a batch-normalised latent VAE is not HumanSD's")
        self.autoencoder = autoencoder
        self.downsample_factor = int(getattr(vae, "downscale_ratio", 8))

    @property
    def decoder(self) -> nn.Module:
        return self.autoencoder.decoder

    @property
    def dtype(self) -> torch.dtype:
        return self.autoencoder.quant_conv.weight.dtype

    def encode_dist(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ae = self.autoencoder
        moments = ae.quant_conv(ae.encoder(images.to(ae.quant_conv.weight.device, self.dtype)))
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_dist(images)[0]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        ae = self.autoencoder
        return ae.decoder(ae.post_quant_conv(latents.to(ae.post_quant_conv.weight.device, self.dtype)))


# -- the UNet ------------------------------------------------------------------------------------------


def _transformer_options(patcher: Any) -> dict:
    """The MODEL's transformer options with its wrappers merged in (as ``prepare_model_patcher`` does)."""
    import comfy.model_patcher
    import comfy.patcher_extension

    options = comfy.model_patcher.create_model_options_clone(patcher.model_options).get("transformer_options", {})
    comfy.patcher_extension.merge_nested_dicts(options.setdefault("wrappers", {}), patcher.wrappers, copy_dict1=False)
    return options


@contextlib.contextmanager
def unet_call_adapter(unet: nn.Module, compute_dtype: torch.dtype, options: dict) -> Iterator[None]:
    """Within the block ``unet(x, t, context)`` runs ComfyUI's UNet as its sampling does (see module docstring)."""

    def before(_module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        x, t, context = args[0], args[1], args[2] if len(args) > 2 else kwargs.pop("context")
        kwargs = {**kwargs, "context": context.to(compute_dtype), "transformer_options": dict(options)}
        return (x.to(compute_dtype), t.float()), kwargs

    def after(_module: nn.Module, _args: tuple, output: torch.Tensor) -> torch.Tensor:
        return output.float()

    handles = [unet.register_forward_pre_hook(before, with_kwargs=True), unet.register_forward_hook(after)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def checkpointed_layers(unet: nn.Module) -> Iterator[None]:
    """Within the block every layer of the UNet's input, middle and output blocks recomputes its activations in
    the backward pass (``torch.utils.checkpoint``, non-reentrant). ComfyUI's UNet calls the layers of a block one
    by one, so the layers (ResBlock, SpatialTransformer, Down/Upsample) are what gets wrapped."""
    import torch.utils.checkpoint

    layers = [layer for block in (*unet.input_blocks, unet.middle_block, *unet.output_blocks) for layer in block]
    for layer in layers:
        def forward(*args: Any, _original: Any = layer.forward, **kwargs: Any) -> Any:
            return torch.utils.checkpoint.checkpoint(_original, *args, use_reentrant=False, **kwargs)

        layer.forward = forward
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward


def _as_normal_tensors(module: nn.Module) -> None:
    """Replace inference-mode parameters and buffers by normal tensors (same values), one tensor at a time.

    New ``Parameter`` objects: one whose data alone is swapped still fails where torch needs its version
    counter (``.numpy()``)."""
    for owner in module.modules():
        for name, param in list(owner.named_parameters(recurse=False)):
            if param.is_inference():
                setattr(owner, name, nn.Parameter(param.detach().clone(), requires_grad=param.requires_grad))
        for name, buffer in list(owner.named_buffers(recurse=False)):
            if buffer is not None and buffer.is_inference():
                setattr(owner, name, buffer.clone())


def _same_layout(patcher: Any, unet: nn.Module) -> nn.Module:
    """An empty (meta-device) ComfyUI UNet of the MODEL's layout and operations, for weights to be assigned."""
    import comfy.ops

    model = patcher.model
    config = model.model_config.unet_config
    ops = comfy.ops.pick_operations(config.get("dtype", None), model.manual_cast_dtype)
    return type(unet)(**config, device="meta", operations=ops)


class TrainingNetworks:
    """The run's networks on the device, prepared for training; restores the MODEL on exit.

    ``with TrainingNetworks(model, vae, contexts, config, options, dtype, backup_dir=...) as nets:
    nets.models`` (:class:`HumanSDModels` for ``Trainer(models=...)``). On exit (success, error
    or cancel) the LoRA adapters, hooks and recomputation wrappers come off ComfyUI's UNet and
    its flags are restored. Full mode trains ComfyUI's UNet in place, in float32, after
    writing its weights to ``backup_dir`` (one tensor at a time: no second copy in memory);
    on exit the trained weights move into :attr:`trained_unet` (a new UNet of the same layout,
    success only) and the MODEL's own weights come back from that file.
    """

    def __init__(self, model: Any, vae: Any, contexts: dict[str, torch.Tensor], config: ModelConfig,
                 options: ModelOptions, compute_dtype: torch.dtype, seed: int = 0,
                 backup_dir: Path | None = None) -> None:
        """``seed``: of the new LoRA adapters' initial weights (as ``humansd train`` seeds them)."""
        if options.mode == "full" and backup_dir is None:
            raise HumanSDError("full fine-tuning needs a folder for the model's own weights while it trains")
        self.model, self.vae, self.contexts, self.config = model, vae, contexts, config
        self.options, self.compute_dtype, self.seed = options, compute_dtype, seed
        self.backup = None if backup_dir is None else Path(backup_dir) / ".untrained-unet.safetensors"
        self.trained_unet: nn.Module | None = None
        self._backed_up = False
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> TrainingNetworks:
        import comfy.model_management as mm

        patcher = self.model.clone()
        mm.load_models_gpu([patcher, self.vae.patcher], memory_required=1e20, force_full_load=True)
        unet = patcher.model.diffusion_model
        device = next(unet.parameters()).device
        self.patcher, self.unet = patcher, unet
        stack = self._stack
        try:
            _as_normal_tensors(unet)
            flags = {name: p.requires_grad for name, p in unet.named_parameters()}
            stack.callback(lambda: [p.requires_grad_(flags.get(n, False)) for n, p in unet.named_parameters()])
            if self.options.mode == "full":
                atomic_write_with(self.backup, lambda tmp: write_safetensors(tmp, unet.state_dict()))
                self._backed_up = True
            else:
                before = dict(unet.named_modules())
                stack.callback(self._remove_lora, unet, before)
            stack.callback(unet.train, unet.training)
            _as_normal_tensors(self.vae.first_stage_model)
            codec = ComfyLatentCodec(self.vae)
            texts = PromptContexts(self.contexts, device)
            self.models = HumanSDModels(unet, codec, texts, self.config)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                prepare_for_training(self.models, replace(self.options, gradient_checkpointing=False))
            if self.options.gradient_checkpointing:
                stack.enter_context(checkpointed_layers(unet))
            stack.enter_context(unet_call_adapter(unet, self.compute_dtype, _transformer_options(patcher)))
        except BaseException:
            self._close(success=False)
            raise
        return self

    @staticmethod
    def _remove_lora(unet: nn.Module, before: dict[str, nn.Module]) -> None:
        import comfy.utils

        for name in lora_layers(unet):
            comfy.utils.set_attr(unet, name, before[name])

    def _close(self, success: bool) -> None:
        try:
            if self.options.mode == "full" and success:
                trained = _same_layout(self.patcher, self.unet)
                trained.load_state_dict(self.unet.state_dict(), assign=True)
                self.trained_unet = trained.requires_grad_(False).eval()
        finally:
            try:
                if self._backed_up:
                    from safetensors.torch import load_file

                    device = next(self.unet.parameters()).device
                    self.unet.load_state_dict(load_file(str(self.backup), device=str(device)), assign=True)
                    self.backup.unlink()
            finally:
                self._stack.close()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self._close(success=exc_type is None)


# -- files ---------------------------------------------------------------------------------------------


def ldm_state_dict(unet: nn.Module, model: Any, clip: Any, vae: Any) -> dict[str, torch.Tensor]:
    """The whole model in the LDM checkpoint layout (references, not copies): ``unet``'s weights as
    ``model.diffusion_model.*``, the VAE's as ``first_stage_model.*``, the text tower's as SD2 saves it."""
    state = {UNET_PREFIX + k: v for k, v in unet.state_dict().items()}
    state.update({VAE_PREFIX + k: v for k, v in vae.first_stage_model.state_dict().items()})
    state.update(model.model.model_config.process_clip_state_dict_for_saving(clip.get_sd()))
    return state
