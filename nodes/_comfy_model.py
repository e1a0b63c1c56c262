"""Build ComfyUI's own MODEL, CLIP and VAE from a HumanSD checkpoint (host side).

The file is read by the core (``humansd_core.models.checkpoint.read_state_dict``:
safetensors, or a Lightning ``.ckpt`` through ``torch.load(weights_only=True)``, so
no pickled code runs). Then, following ``comfy.sd.load_state_dict_guess_config``:

- a file ComfyUI's detection knows (the real SD2.1 layout, with or without our
  metadata) goes through ``load_state_dict_guess_config`` itself;
- a self-describing file (metadata key ``humansd_config``) of another size, e.g. the
  project's tiny test models, runs the same steps with a ``comfy.supported_models.SD20``
  model config whose UNet layout ComfyUI detects from the weights and whose head
  width and latent scale come from the metadata; the VAE is built with
  ``comfy.sd.VAE(sd=..., config=...)`` and the text tower through SD2's own CLIP
  conversion, sized by ``clip_h_model_config`` overrides.

Every model returned gets the pose fix (:func:`with_pose_concat`): ComfyUI treats an
8-channel SD UNet as inpainting (mask + masked image, 5 channels); HumanSD wants the
4-channel pose latent, which ``BaseModel.concat_cond`` supplies for the
``concat_image`` key from the conditioning's ``concat_latent_image``.

The MODEL also carries two attachments (they survive ``clone()``): the file's core
``ModelConfig`` as JSON (:data:`CONFIG_ATTACHMENT`) and the file's path
(:data:`SOURCE_ATTACHMENT`), read by the training node (:func:`model_config_of`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..humansd_core.errors import CheckpointError

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
INPUT_CONV = UNET_PREFIX + "input_blocks.0.0.weight"
POSE_CONCAT_KEYS = ("concat_image",)
HUMANSD_IN_CHANNELS = 8
CONFIG_ATTACHMENT = "humansd_config"
SOURCE_ATTACHMENT = "humansd_source"


def with_pose_concat(model: Any) -> Any:
    """A clone of ``model`` (ComfyUI ``ModelPatcher``) whose UNet input is ``[noisy latent, pose latent]``."""
    patched = model.clone()
    patched.add_object_patch("concat_keys", POSE_CONCAT_KEYS)
    return patched


def describe_unet(state_dict: dict[str, torch.Tensor], source: str) -> int:
    """Input channels of the file's UNet; raises ``CheckpointError`` unless it is HumanSD's 8."""
    weight = state_dict.get(INPUT_CONV)
    if weight is None:
        raise CheckpointError(f"{source}: not a Stable Diffusion checkpoint (no {INPUT_CONV})")
    channels = int(weight.shape[1])
    if channels == HUMANSD_IN_CHANNELS:
        return channels
    if channels == 4:
        what = ("a plain 4-channel Stable Diffusion UNet (text-to-image, no pose input); make a HumanSD "
                "starting point from an SD2.1-base file with `humansd init-from-sd21 <sd21> <out>`, "
                "or load it with the stock Load Checkpoint node")
    elif channels == 9:
        what = "a 9-channel inpainting UNet (latent + mask + masked image), not HumanSD's 8-channel one"
    else:
        what = f"a UNet with {channels} input channels"
    raise CheckpointError(f"{source}: HumanSD needs a UNet with {HUMANSD_IN_CHANNELS} input channels "
                          f"(latent + pose latent), but this file holds {what}")


def _self_described_config(state_dict: dict[str, torch.Tensor], config: Any) -> Any:
    """An SD20 model config for a self-describing file whose sizes ComfyUI's detection does not know.

    The UNet layout (widths, blocks, transformer depths) is detected from the weights
    by ComfyUI itself; the head width and the latent scale come from the metadata.
    """
    import comfy.model_detection
    import comfy.supported_models

    unet_config = comfy.model_detection.detect_unet_config(state_dict, UNET_PREFIX)
    model_config = comfy.supported_models.SD20(unet_config)
    model_config.unet_config.update({"num_heads": -1, "num_head_channels": config.unet.num_head_channels})
    model_config.latent_format.scale_factor = config.scale_factor
    return model_config


def _vae_config(config: Any) -> dict[str, Any]:
    """``comfy.sd.VAE`` config of the LDM ``AutoencoderKL`` the metadata describes."""
    vae = config.vae
    ddconfig = {"double_z": True, "z_channels": vae.z_channels, "resolution": 256, "in_channels": vae.in_channels,
                "out_ch": vae.out_ch, "ch": vae.ch, "ch_mult": list(vae.ch_mult),
                "num_res_blocks": vae.num_res_blocks, "attn_resolutions": [], "dropout": 0.0}
    return {"params": {"ddconfig": ddconfig, "embed_dim": vae.embed_dim}}


def _clip_target(model_config: Any, config: Any) -> tuple[Any, dict[str, Any]]:
    """SD2's CLIP target for the metadata's text tower, and the ``model_options`` sizing it.

    SD2's text model takes the penultimate block as ``layer_idx=-2``, which ComfyUI
    refuses for a 2-block tower; the same block as a positive index (``layers - 2``)
    is accepted at every depth.
    """
    text = config.text
    target = model_config.clip_target()
    target.params = {**target.params, "layer": "hidden", "layer_idx": text.layers - 2}
    sizes = {"hidden_size": text.width, "intermediate_size": 4 * text.width, "num_attention_heads": text.heads,
             "num_hidden_layers": text.layers, "max_position_embeddings": text.context_length,
             "vocab_size": text.vocab_size, "projection_dim": text.output_dim}
    return target, {"clip_h_model_config": sizes}


def _build_self_described(state_dict: dict[str, torch.Tensor], config: Any, embedding_directory: Any) -> tuple:
    """``load_state_dict_guess_config``'s steps with our own model config (see module docstring)."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.sd
    import comfy.utils

    model_config = _self_described_config(state_dict, config)
    parameters = comfy.utils.calculate_parameters(state_dict, UNET_PREFIX)
    weight_dtype = comfy.utils.weight_dtype(state_dict, UNET_PREFIX)
    load_device = mm.get_torch_device()
    unet_dtype = mm.unet_dtype(model_params=parameters, supported_dtypes=list(model_config.supported_inference_dtypes),
                               weight_dtype=weight_dtype)
    model_config.set_inference_dtype(unet_dtype, mm.unet_manual_cast(unet_dtype, load_device,
                                                                       model_config.supported_inference_dtypes))
    model = model_config.get_model(state_dict, UNET_PREFIX, device=mm.unet_inital_load_device(parameters, unet_dtype))
    model.load_model_weights(state_dict, UNET_PREFIX)

    vae_sd = comfy.utils.state_dict_prefix_replace(state_dict, {VAE_PREFIX: ""}, filter_keys=True)
    vae = comfy.sd.VAE(sd=vae_sd, config=_vae_config(config))

    clip_sd = model_config.process_clip_state_dict(state_dict)
    target, text_options = _clip_target(model_config, config)
    clip = comfy.sd.CLIP(target, embedding_directory=embedding_directory, tokenizer_data=clip_sd,
                         parameters=comfy.utils.calculate_parameters(clip_sd), model_options=text_options)
    missing, _ = clip.load_sd(clip_sd, full_model=True)
    missing = [k for k in missing if ".logit_scale" not in k and "text_projection" not in k]
    if missing:
        raise CheckpointError(f"text encoder weights missing from the checkpoint: {missing[:5]}")
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=mm.unet_offload_device())
    return patcher, clip, vae


def _is_known_layout(state_dict: dict[str, torch.Tensor]) -> bool:
    """Whether ComfyUI's own detection recognises the UNet as SD2.x (the real HumanSD size)."""
    import comfy.model_detection
    import comfy.supported_models

    unet_config = comfy.model_detection.detect_unet_config(state_dict, UNET_PREFIX)
    return unet_config is not None and comfy.supported_models.SD20.matches(unet_config)


def load_humansd_checkpoint(path: str | Path, embedding_directory: Any = None) -> tuple[Any, Any, Any]:
    """``(MODEL, CLIP, VAE)`` of a HumanSD checkpoint, the MODEL already carrying the pose fix.

    Raises ``CheckpointError`` for a file that is not an 8-channel HumanSD model
    (naming what it is) or that ComfyUI cannot build.
    """
    import comfy.sd

    from ..humansd_core.models.checkpoint import identify_config, read_metadata, read_state_dict
    from ..humansd_core.models.configs import ModelConfig

    source = Path(path).name
    state_dict = read_state_dict(path)
    describe_unet(state_dict, source)
    metadata = read_metadata(path)
    try:
        core_config = identify_config({k: tuple(v.shape) for k, v in state_dict.items()}, metadata, source)
    except CheckpointError:  # loadable by ComfyUI all the same; only training needs the config
        core_config = None
    if _is_known_layout(state_dict):
        model, clip, vae, _ = comfy.sd.load_state_dict_guess_config(
            state_dict, output_vae=True, output_clip=True, embedding_directory=embedding_directory)
    elif "humansd_config" in metadata:
        try:
            config = ModelConfig.from_json(metadata["humansd_config"])
        except CheckpointError as exc:
            raise CheckpointError(f"{source}: unreadable 'humansd_config' metadata: {exc}") from exc
        model, clip, vae = _build_self_described(state_dict, config, embedding_directory)
    else:
        raise CheckpointError(f"{source}: an 8-channel UNet of a size ComfyUI does not know, and no "
                              f"'humansd_config' metadata describing it")
    if clip is None or vae is None:
        raise CheckpointError(f"{source}: the checkpoint lacks the text encoder or the VAE")
    if core_config is not None:
        model.set_attachments(CONFIG_ATTACHMENT, core_config.to_json())
    model.set_attachments(SOURCE_ATTACHMENT, str(Path(path)))
    return with_pose_concat(model), clip, vae


def model_config_of(model: Any, clip: Any, vae: Any) -> Any:
    """The core ``ModelConfig`` of a MODEL: the loader's attachment, else identified from the weights' shapes
    (the real SD2.1 layout from any loader); ``CheckpointError`` when neither tells."""
    from ..humansd_core.models.checkpoint import identify_config
    from ..humansd_core.models.configs import ModelConfig
    from ._training_host import ldm_state_dict

    attached = model.get_attachment(CONFIG_ATTACHMENT)
    if attached:
        return ModelConfig.from_json(attached)
    shapes = {k: tuple(v.shape) for k, v in ldm_state_dict(model.model.diffusion_model, model, clip, vae).items()}
    return identify_config(shapes, {}, "model")
