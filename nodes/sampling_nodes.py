"""HumanSD generation nodes: pose conditioning, the one-node sampler, pose scoring.

Sampling is ComfyUI's own (``nodes.common_ksampler``), so every sampler, scheduler,
preview and the cancel button work; the pose enters as the conditioning's
``concat_latent_image`` (see ``nodes/_conditioning.py``).
"""
from __future__ import annotations

import logging

from ..humansd_core import defaults
from ._pose_render import DRAW_INPUTS, PLACEMENTS
from ._detectors import MANNEQUIN_JUDGE, OPENPOSE, SCORE_DETECTOR_TOOLTIP, SCORE_DETECTORS, openpose_detector

DEFAULT_THRESHOLD = DRAW_INPUTS["threshold"][1]["default"]
DEFAULT_THICKNESS = DRAW_INPUTS["thickness"][1]["default"]

logger = logging.getLogger(__name__)

_PLACEMENT = (list(PLACEMENTS), {
    "default": "fit",
    "tooltip": "How keypoints on a canvas of another size are put on the image: fit = scale to fit whole and "
               "centre, fill = scale to cover and centre (parts may fall outside), as-is = keep pixel positions."})


class HumanSDPoseConditioning:
    """Attach a skeleton's VAE latent to positive and negative conditioning (for the stock KSampler)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "positive": ("CONDITIONING", {"tooltip": "Text conditioning of what to draw."}),
            "negative": ("CONDITIONING", {"tooltip": "Text conditioning of what to avoid; it gets the same pose, "
                                                     "as in HumanSD's classifier-free guidance."}),
            "vae": ("VAE", {"tooltip": "The HumanSD model's VAE, to encode the skeleton."}),
            "skeleton": ("IMAGE", {"tooltip": "Skeleton image(s) at the output size (e.g. from HumanSD Pose from "
                                              "JSON or HumanSD Pose from Keypoints); N images give N latents, one "
                                              "pose each."}),
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    OUTPUT_TOOLTIPS = ("Positive conditioning carrying the pose latent.",
                       "Negative conditioning carrying the same pose latent.",
                       "An empty latent batch matching the skeleton size and count.")
    FUNCTION = "apply"
    CATEGORY = "HumanSD/conditioning"
    DESCRIPTION = ("Encodes skeleton images with the VAE and puts the latent on both conditionings, where a "
                   "HumanSD model (HumanSD Checkpoint Loader, or any loader + HumanSD Model Patch) reads it as "
                   "its 4 extra UNet input channels. Sizes not a multiple of 8 are centre-cropped.")

    def apply(self, positive: list, negative: list, vae: object, skeleton: object) -> tuple:
        import torch

        from ._conditioning import encode_pose, with_concat_latent
        from ._pose_input import crop_to_multiple_of_8

        pose_latent = encode_pose(vae, crop_to_multiple_of_8(skeleton))
        latent = {"samples": torch.zeros_like(pose_latent)}
        return with_concat_latent(positive, pose_latent), with_concat_latent(negative, pose_latent), latent


class HumanSDSampler:
    """Pose + prompt → image in one node, on ComfyUI's own samplers."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        import comfy.samplers

        return {
            "required": {
                "model": ("MODEL", {"tooltip": "A HumanSD model (HumanSD Checkpoint Loader; the pose fix is "
                                               "applied here too, so stock loaders work)."}),
                "clip": ("CLIP", {"tooltip": "The HumanSD text encoder."}),
                "vae": ("VAE", {"tooltip": "The HumanSD VAE (encodes the skeleton, decodes the image)."}),
                "prompt": ("STRING", {"multiline": True, "default": "a woman dancing in a park",
                                      "tooltip": "What to draw; the pose decides where the people are."}),
                "negative": ("STRING", {"multiline": True, "default": defaults.NEGATIVE_PROMPT,
                                        "tooltip": "What to avoid (default: the HumanSD reference negative prompt)."}),
                "seed": ("INT", {"default": defaults.SEED, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                                 "control_after_generate": True, "tooltip": "Seed of the initial noise."}),
                "steps": ("INT", {"default": defaults.STEPS, "min": 1, "max": 10000,
                                  "tooltip": "Denoising steps (reference: 50)."}),
                "cfg": ("FLOAT", {"default": defaults.CFG, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                                  "tooltip": "Classifier-free guidance scale (reference: 10)."}),
                "sampler_name": (comfy.samplers.KSampler.SAMPLERS, {
                    "default": "ddim", "tooltip": "Sampler (reference: DDIM, eta 0)."}),
                "scheduler": (comfy.samplers.KSampler.SCHEDULERS, {
                    "default": "ddim_uniform", "tooltip": "Noise schedule (ddim_uniform = the reference's "
                                                          "evenly spaced DDIM timesteps)."}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                      "tooltip": "Amount of denoising; below 1 only with a latent_image."}),
                "width": ("INT", {"default": defaults.WIDTH, "min": 64, "max": 8192, "step": 8,
                                  "tooltip": "Image width in pixels (the model was trained at 512)."}),
                "height": ("INT", {"default": defaults.HEIGHT, "min": 64, "max": 8192, "step": 8,
                                   "tooltip": "Image height in pixels."}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 64,
                                       "tooltip": "Images per pose (pose-major order); ignored with a latent_image."}),
            },
            "optional": {
                "skeleton": ("IMAGE", {"tooltip": "Skeleton image(s); resized to width x height if needed."}),
                "pose_keypoint": ("POSE_KEYPOINT", {"tooltip": "Keypoints (OpenPose/DWPose POSE_KEYPOINT, one "
                                                               "frame per image), drawn at width x height."}),
                "latent_image": ("LATENT", {"tooltip": "Starting latent for image-to-image (with denoise < 1); "
                                                       "its batch must match the number of poses."}),
                "added_prompt": ("STRING", {"default": defaults.ADDED_PROMPT,
                                            "tooltip": "Appended to the prompt, as the reference does; clear "
                                                       "it to use the prompt alone."}),
                "placement": _PLACEMENT,
                **DRAW_INPUTS,
            },
        }

    RETURN_TYPES = ("LATENT", "IMAGE", "IMAGE")
    RETURN_NAMES = ("latent", "image", "skeleton")
    OUTPUT_TOOLTIPS = ("The denoised latents.", "The decoded images.", "The skeleton images the model saw.")
    FUNCTION = "sample"
    CATEGORY = "HumanSD/sampling"
    DESCRIPTION = ("Generates people in the given pose(s): draws the keypoints (or takes skeleton images), "
                   "encodes them as the pose latent on both the prompt and the negative, and samples with "
                   "ComfyUI's samplers. Defaults are the HumanSD reference settings (DDIM 50 steps, cfg 10, "
                   "seed 1234, 512x512).")

    def sample(self, model: object, clip: object, vae: object, prompt: str, negative: str, seed: int, steps: int,
               cfg: float, sampler_name: str, scheduler: str, denoise: float, width: int, height: int,
               batch_size: int, skeleton: object = None, pose_keypoint: object = None, latent_image: dict | None = None,
               added_prompt: str = defaults.ADDED_PROMPT, placement: str = "fit",
               threshold: float = DEFAULT_THRESHOLD, thickness: int = DEFAULT_THICKNESS,
               scale_thickness: bool = False) -> tuple:
        import nodes as comfy_nodes

        from ._comfy_model import with_pose_concat
        from ._conditioning import check_batches, encode_pose, encode_text, with_concat_latent
        from ..humansd_core.pose import scaled_thickness
        from ._pose_input import skeleton_images

        if latent_image is not None:
            height, width = (8 * s for s in latent_image["samples"].shape[-2:])
        elif width % 8 or height % 8:
            logger.warning("HumanSD: %dx%d is not a multiple of 8; using %dx%d", width, height,
                           width // 8 * 8, height // 8 * 8)
            width, height = width // 8 * 8, height // 8 * 8
        if scale_thickness:
            thickness = scaled_thickness(width, height, base=thickness)
        frames = skeleton_images(width, height, skeleton, pose_keypoint, placement=placement, threshold=threshold,
                                 thickness=thickness)
        pose_latent = encode_pose(vae, frames)
        if latent_image is None:
            pose_latent = pose_latent.repeat_interleave(batch_size, dim=0)
            latent_image = {"samples": pose_latent.new_zeros(pose_latent.shape)}
        else:
            check_batches(pose_latent.shape[0], latent_image["samples"].shape[0])
        positive = with_concat_latent(encode_text(clip, defaults.with_added_prompt(prompt, added_prompt)), pose_latent)
        negative_cond = with_concat_latent(encode_text(clip, negative), pose_latent)
        (latent,) = comfy_nodes.common_ksampler(with_pose_concat(model), seed, steps, cfg, sampler_name, scheduler,
                                                positive, negative_cond, latent_image, denoise=denoise)
        return latent, vae.decode(latent["samples"]), frames


class HumanSDPoseScore:
    """Detect the pose in generated images and score its agreement with the condition (OKS)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Generated images: one or more per pose, pose-major (as HumanSD "
                                                "Sampler makes them)."}),
                "pose_keypoint": ("POSE_KEYPOINT", {"tooltip": "The condition keypoints the images were made from."}),
            },
            "optional": {
                "detector_weights": ("STRING", {"default": "", "tooltip": (
                    "OpenPose detector only: path of body_pose_model.pth (CMU licence: non-commercial use). Empty: "
                    "$AUX_ANNOTATOR_CKPTS_PATH, then comfyui_controlnet_aux's ckpts folder.")}),
                "placement": _PLACEMENT,
                "threshold": ("FLOAT", {"default": DEFAULT_THRESHOLD, "min": 0.0, "max": 1.0, "step": 0.01,
                                        "tooltip": "Joints at or below this confidence are ignored in the "
                                                   "condition and count as not found in the detection."}),
                "detector": (list(SCORE_DETECTORS), {"default": OPENPOSE, "tooltip": SCORE_DETECTOR_TOOLTIP}),
            },
        }

    RETURN_TYPES = ("IMAGE", "FLOAT", "STRING")
    RETURN_NAMES = ("best", "mean_oks", "report")
    OUTPUT_TOOLTIPS = ("For each pose, the image whose detected pose agrees best with it.",
                       "Mean OKS over all images and condition people (0..1, higher is better).",
                       "JSON: per image the OKS of each condition person and the people counts.")
    FUNCTION = "score"
    CATEGORY = "HumanSD/pose"
    OUTPUT_NODE = True
    DESCRIPTION = ("Detects the pose in each image (OpenPose body network, or for the synthetic mannequins of the "
                   "embedded model the bundled judge estimator) and compares it with the condition by COCO object "
                   "keypoint similarity (OKS). Picks the best image per pose.")

    def score(self, images: object, pose_keypoint: object, detector_weights: str = "", placement: str = "fit",
              threshold: float = DEFAULT_THRESHOLD, detector: str = OPENPOSE) -> dict:
        import comfy.model_management as mm

        from ..humansd_core.pose.batch_score import images_per_pose, score_batch
        from ..humansd_core.pose.metrics import pose_agreement
        from ._pose_input import poses_on_canvas
        from ._pose_render import images_to_uint8

        count, height, width = images.shape[0], images.shape[1], images.shape[2]
        poses = poses_on_canvas(pose_keypoint, width, height, placement)
        per_pose = images_per_pose(count, len(poses))
        conditions = [poses[i // per_pose] for i in range(count)]
        if detector == MANNEQUIN_JUDGE:
            from ..humansd_core.pose.mannequin_detect import mannequin_agreements

            results = mannequin_agreements(images[..., :3], conditions, threshold)
        else:
            network = openpose_detector(detector_weights, str(mm.get_torch_device()))
            results = []
            for condition, pixels in zip(conditions, images_to_uint8(images, "images")):
                mm.throw_exception_if_processing_interrupted()
                results.append(pose_agreement(condition, network.detect(pixels), threshold))
        scored = score_batch(results, len(poses))
        report = scored.report()
        logger.info("HumanSD pose score: mean OKS %.3f over %d images", scored.mean_oks, count)
        return {"ui": {"text": [report]}, "result": (images[scored.best], scored.mean_oks, report)}


NODE_CLASS_MAPPINGS = {
    "HumanSDPoseConditioning": HumanSDPoseConditioning,
    "HumanSDSampler": HumanSDSampler,
    "HumanSDPoseScore": HumanSDPoseScore,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "HumanSDPoseConditioning": "HumanSD Pose Conditioning",
    "HumanSDSampler": "HumanSD Sampler",
    "HumanSDPoseScore": "HumanSD Pose Score",
}
