"""HumanSD model nodes: load a checkpoint into ComfyUI's own models, patch any MODEL.

Both return models whose UNet input is ``[noisy latent, pose latent]`` (8 channels);
see ``nodes/_comfy_model.py`` for how the checkpoint becomes ComfyUI objects.
"""
from __future__ import annotations


class HumanSDCheckpointLoader:
    """Load a HumanSD checkpoint (safetensors or Lightning .ckpt) as MODEL, CLIP and VAE."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        import folder_paths

        from ..humansd_core.embedded import MODEL_NAME

        names = folder_paths.get_filename_list("checkpoints")
        return {"required": {
            "ckpt_name": ([MODEL_NAME, *(n for n in names if n != MODEL_NAME)], {
                "tooltip": "A HumanSD checkpoint from models/checkpoints: the original humansd-v1.ckpt "
                           "(read without running pickled code) or a converted .safetensors file. "
                           f"{MODEL_NAME} is the tiny model embedded in this pack (synthetic mannequins, "
                           "128 x 128), used when models/checkpoints holds no file of that name."}),
        }}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    RETURN_NAMES = ("model", "clip", "vae")
    OUTPUT_TOOLTIPS = (
        "The 8-channel HumanSD UNet, already set up to take the pose latent.",
        "The OpenCLIP ViT-H text encoder (penultimate layer, as SD2.1).",
        "The VAE that encodes skeletons and decodes images.",
    )
    FUNCTION = "load"
    CATEGORY = "HumanSD/loaders"
    DESCRIPTION = ("Loads a HumanSD model into ComfyUI's own SD2.1 classes. Unlike the stock checkpoint loader, "
                   "the UNet's 4 extra input channels receive the pose latent, not an inpainting mask. "
                   "Refuses files that are not 8-channel HumanSD models and says what they are.")

    def load(self, ckpt_name: str) -> tuple:
        import folder_paths

        from ..humansd_core.embedded import MODEL_NAME
        from ..humansd_core.shipped_files import shipped_weights
        from ._comfy_model import load_humansd_checkpoint

        path = folder_paths.get_full_path("checkpoints", ckpt_name)
        if path is None:  # not in models/checkpoints: the embedded model, or ComfyUI's own error
            embedded = ckpt_name == MODEL_NAME
            path = shipped_weights(MODEL_NAME) if embedded else \
                folder_paths.get_full_path_or_raise("checkpoints", ckpt_name)
        return load_humansd_checkpoint(path, embedding_directory=folder_paths.get_folder_paths("embeddings"))


class HumanSDModelPatch:
    """Make any MODEL holding a HumanSD UNet take the pose latent (e.g. after the stock loaders)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "model": ("MODEL", {"tooltip": "A HumanSD model from any loader, e.g. Load Checkpoint followed by "
                                           "LoraLoaderModelOnly."}),
        }}

    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("A copy of the model whose extra UNet input channels receive the pose latent.",)
    FUNCTION = "patch"
    CATEGORY = "HumanSD/loaders"
    DESCRIPTION = ("ComfyUI treats an 8-channel SD2 UNet as an inpainting model and feeds it mask + masked image "
                   "(9 channels: every sampler fails). This node makes it concatenate the conditioning's pose "
                   "latent instead. Survives LoRA loading; the input model is not changed.")

    def patch(self, model: object) -> tuple:
        from ..humansd_core.errors import CheckpointError
        from ._comfy_model import HUMANSD_IN_CHANNELS, with_pose_concat

        channels = model.get_model_object("diffusion_model").in_channels
        if channels != HUMANSD_IN_CHANNELS:
            raise CheckpointError(f"model: HumanSD needs a UNet with {HUMANSD_IN_CHANNELS} input channels, "
                                  f"this one has {channels}; load a HumanSD checkpoint")
        return (with_pose_concat(model),)


NODE_CLASS_MAPPINGS = {
    "HumanSDCheckpointLoader": HumanSDCheckpointLoader,
    "HumanSDModelPatch": HumanSDModelPatch,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "HumanSDCheckpointLoader": "HumanSD Checkpoint Loader",
    "HumanSDModelPatch": "HumanSD Model Patch (pose input)",
}
