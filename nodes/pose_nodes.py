"""HumanSD pose nodes: poses in (keypoints, JSON, photos), skeleton images out.

Poses travel as ComfyUI's ``POSE_KEYPOINT`` (a list of OpenPose-style frame dicts,
as comfyui_controlnet_aux and pose editors use), skeletons as IMAGE batches, one
image per frame. Parsing, placement, drawing and detection live in
``humansd_core.pose``; these classes only adapt types.
"""
from __future__ import annotations

import hashlib

from ..humansd_core.errors import HumanSDError
from ._detectors import MANNEQUIN, OPENPOSE, PHOTO_DETECTOR_TOOLTIP, PHOTO_DETECTORS, openpose_detector
from ._pose_render import (
    DRAW_INPUTS,
    PLACEMENTS,
    SIZE_INPUTS,
    draw_frames,
    images_to_uint8,
    input_file,
    pose_files_in_input,
    uint8_to_images,
)

CATEGORY = "HumanSD/pose"
NO_FILE = "(none: use the text)"
MAX_SHIFT = 16384.0
POSE_KEYPOINT_INPUT = ("POSE_KEYPOINT", {
    "tooltip": "Poses from any pack (OpenPose/DWPose preprocessors, pose editors, HumanSD nodes): "
               "one frame dict per image; pixel or normalised coordinates."})

# One standing person on a 512 x 512 canvas, OpenPose-18 body points (x, y, confidence).
DEFAULT_POSE_JSON = """{"canvas_width": 512, "canvas_height": 512, "people": [{"pose_keypoints_2d": [
 256, 100, 1,  256, 160, 1,  206, 160, 1,  186, 240, 1,  176, 320, 1,  306, 160, 1,
 326, 240, 1,  336, 320, 1,  226, 320, 1,  221, 410, 1,  216, 490, 1,  286, 320, 1,
 291, 410, 1,  296, 490, 1,  244, 88, 1,  268, 88, 1,  230, 96, 1,  282, 96, 1]}]}"""


class HumanSDPoseFromKeypoints:
    """Draw POSE_KEYPOINT frames as HumanSD skeleton images."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"pose_keypoint": POSE_KEYPOINT_INPUT, **SIZE_INPUTS, **DRAW_INPUTS}}

    RETURN_TYPES = ("IMAGE", "POSE_KEYPOINT")
    RETURN_NAMES = ("skeleton", "pose_keypoint")
    OUTPUT_TOOLTIPS = ("One skeleton image per frame, black background, HumanSD's colours.",
                       "The frames as placed on the canvas, in pixels, 18 body points each.")
    FUNCTION = "draw"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Draws poses (POSE_KEYPOINT from any pack) as the skeleton images HumanSD was trained on: "
                   "COCO-17 limbs in its 16 colours. A batch of frames gives a batch of images.")

    def draw(self, pose_keypoint, width, height, placement, threshold, thickness, scale_thickness) -> tuple:
        from ..humansd_core.pose import parse_pose_data

        frames = parse_pose_data(pose_keypoint, "pose_keypoint")
        return draw_frames(frames, width, height, placement, threshold, thickness, scale_thickness)


class HumanSDPoseFromJSON:
    """Read poses from JSON text stored in the workflow, or from a file in ComfyUI's input folder."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "pose_json": ("STRING", {
                "multiline": True, "default": DEFAULT_POSE_JSON,
                "tooltip": "Pose as JSON, kept inside the workflow so shared workflows carry their pose: "
                           "OpenPose JSON / POSE_KEYPOINT (18, BODY_25 or COCO-17 body points) or COCO "
                           "keypoint annotations. Used when pose_file is '(none)'."}),
            "pose_file": ([NO_FILE, *pose_files_in_input()], {
                "tooltip": "A .json or .npz (HumanSD/MMPose) pose file from ComfyUI's input folder; "
                           "overrides the text when chosen."}),
            **SIZE_INPUTS, **DRAW_INPUTS,
        }}

    RETURN_TYPES = ("IMAGE", "POSE_KEYPOINT")
    RETURN_NAMES = ("skeleton", "pose_keypoint")
    OUTPUT_TOOLTIPS = ("One skeleton image per frame of the file or text.",
                       "The frames as placed on the canvas, in pixels, 18 body points each.")
    FUNCTION = "load"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Loads poses from JSON text in the node (saved with the workflow) or from a pose file in "
                   "ComfyUI's input folder, and draws them as HumanSD skeleton images.")

    @classmethod
    def VALIDATE_INPUTS(cls, pose_file) -> bool | str:
        if pose_file == NO_FILE:
            return True
        try:
            input_file(pose_file)
        except HumanSDError as exc:
            return str(exc)
        return True

    @classmethod
    def IS_CHANGED(cls, pose_file, **_) -> str:
        if pose_file == NO_FILE:
            return ""
        return hashlib.sha256(input_file(pose_file).read_bytes()).hexdigest()

    def load(self, pose_json, pose_file, width, height, placement, threshold, thickness, scale_thickness) -> tuple:
        from ..humansd_core.pose import load_pose_file, parse_pose_text

        if pose_file == NO_FILE:
            frames = parse_pose_text(pose_json, "pose_json")
        else:
            frames = load_pose_file(input_file(pose_file))
        return draw_frames(frames, width, height, placement, threshold, thickness, scale_thickness)


class HumanSDPoseFromImage:
    """Detect body poses in photos (OpenPose body network) or in synthetic mannequin pictures (bundled estimator)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "Photos to read poses from; each image gives one frame."}),
                "weights_path": ("STRING", {
                    "default": "",
                    "tooltip": "OpenPose detector only: path to body_pose_model.pth (CMU licence: non-commercial "
                               "use only). Empty = where comfyui_controlnet_aux keeps it: $AUX_ANNOTATOR_CKPTS_PATH "
                               "or custom_nodes/comfyui_controlnet_aux/ckpts/lllyasviel/Annotators/."}),
                "input_height": ("INT", {"default": 368, "min": 64, "max": 2048, "step": 8,
                                         "tooltip": "OpenPose detector only: photos are resized to this height for "
                                                    "the network (368 = OpenPose's default; lower is faster, "
                                                    "coarser)."}),
                "threshold": DRAW_INPUTS["threshold"],
                "thickness": DRAW_INPUTS["thickness"],
                "scale_thickness": DRAW_INPUTS["scale_thickness"],
            },
            "optional": {
                "detector": (list(PHOTO_DETECTORS), {"default": OPENPOSE, "tooltip": PHOTO_DETECTOR_TOOLTIP}),
            },
        }

    RETURN_TYPES = ("POSE_KEYPOINT", "IMAGE")
    RETURN_NAMES = ("pose_keypoint", "skeleton")
    OUTPUT_TOOLTIPS = ("The detected people of each photo, in pixels of that photo.",
                       "The detected poses drawn as HumanSD skeletons at the photo's size.")
    FUNCTION = "detect"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Finds people's body poses in photos and draws them as HumanSD skeletons. Default detector: "
                   "the OpenPose body network (the weights comfyui_controlnet_aux uses; nothing is downloaded). "
                   "The bundled mannequin estimator reads one person from pictures of this pack's synthetic "
                   "mannequins (e.g. to test the pose -> image loop without OpenPose weights).")

    def detect(self, image, weights_path, input_height, threshold, thickness, scale_thickness,
               detector: str = OPENPOSE) -> tuple:
        import comfy.model_management
        import comfy.utils

        photos = images_to_uint8(image)
        if detector == MANNEQUIN:
            from ..humansd_core.pose.mannequin_detect import detect_mannequin_poses

            frames = detect_mannequin_poses(photos)
        else:
            network = openpose_detector(weights_path, str(comfy.model_management.get_torch_device()))
            progress = comfy.utils.ProgressBar(len(photos))
            frames = []
            for photo in photos:
                comfy.model_management.throw_exception_if_processing_interrupted()
                frames.append(network.detect(photo, input_height=input_height))
                progress.update(1)
        nobody = [i for i, frame in enumerate(frames) if frame.visible_count(threshold) == 0]
        if nobody:
            raise HumanSDError(
                f"HumanSD Pose from Image: the {detector!r} detector found nobody (no joint with confidence above "
                f"{threshold}) in image{'s' if len(nobody) > 1 else ''} {', '.join(map(str, nobody))} of the "
                f"batch of {len(frames)} (counting from 0); without a pose the sampler cannot place a person. "
                + ("Use photos with a visible person, or lower threshold." if detector == OPENPOSE else
                   "The mannequin detector only reads this pack's synthetic figures; for photos use "
                   f"{OPENPOSE!r}."))
        skeleton, pose_keypoint = draw_frames(frames, 0, 0, "as-is", threshold, thickness, scale_thickness)
        return pose_keypoint, skeleton


class HumanSDPoseTransform:
    """Filter, move, scale and mirror POSE_KEYPOINT frames."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "pose_keypoint": POSE_KEYPOINT_INPUT,
            **SIZE_INPUTS,
            "flip": ("BOOLEAN", {"default": False,
                                 "tooltip": "Mirror left-right (left and right joints are swapped too)."}),
            "min_person_score": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                           "tooltip": "Drop people whose score is not above this "
                                                      "(poses without scores count as 1)."}),
            "min_keypoint_confidence": ("FLOAT", {"default": 0.05, "min": 0.0, "max": 1.0, "step": 0.01,
                                                  "tooltip": "Drop joints whose confidence is not above this."}),
            "scale": ("FLOAT", {"default": 1.0, "min": 0.05, "max": 20.0, "step": 0.01,
                                "tooltip": "Scale the people about the canvas centre (after placement)."}),
            "dx": ("FLOAT", {"default": 0.0, "min": -MAX_SHIFT, "max": MAX_SHIFT, "step": 1.0,
                             "tooltip": "Shift right by this many pixels (negative = left)."}),
            "dy": ("FLOAT", {"default": 0.0, "min": -MAX_SHIFT, "max": MAX_SHIFT, "step": 1.0,
                             "tooltip": "Shift down by this many pixels (negative = up)."}),
        }}

    RETURN_TYPES = ("POSE_KEYPOINT",)
    RETURN_NAMES = ("pose_keypoint",)
    OUTPUT_TOOLTIPS = ("The transformed frames, in pixels, 18 body points each.",)
    FUNCTION = "transform"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Edits poses: drops weak people and joints, places them on a canvas of another size, "
                   "scales and shifts them, and mirrors them with left and right swapped.")

    def transform(self, pose_keypoint, width, height, placement, flip, min_person_score, min_keypoint_confidence,
                  scale, dx, dy) -> tuple:
        from ..humansd_core.pose import (
            filter_people,
            flip_horizontal,
            parse_pose_data,
            place_on_canvas,
            scale_translate,
            threshold_keypoints,
            to_pose_keypoint,
        )

        out = []
        for pose in parse_pose_data(pose_keypoint, "pose_keypoint"):
            pose = threshold_keypoints(filter_people(pose, min_person_score), min_keypoint_confidence)
            pose = place_on_canvas(pose, width or pose.canvas_width, height or pose.canvas_height, placement)
            pose = scale_translate(pose, scale, dx, dy)
            out.append(flip_horizontal(pose) if flip else pose)
        return (to_pose_keypoint(out, threshold=min_keypoint_confidence),)


class HumanSDPosePreview:
    """Overlay skeletons on images to check a pose against a picture."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "image": ("IMAGE", {"tooltip": "Pictures to draw on (a photo, a generated image)."}),
            "pose_keypoint": POSE_KEYPOINT_INPUT,
            "placement": (list(PLACEMENTS), {
                "default": "fit",
                "tooltip": "How a pose on a canvas of another size is put on the image: fit, fill or as-is "
                           "(see the skeleton nodes)."}),
            "alpha": ("FLOAT", {"default": 0.6, "min": 0.0, "max": 1.0, "step": 0.05,
                                "tooltip": "Opacity of the skeleton over the image."}),
            **DRAW_INPUTS,
        }}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("preview",)
    OUTPUT_TOOLTIPS = ("The images with the skeletons drawn over them.",)
    FUNCTION = "preview"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Draws poses over images, half-transparent, to see whether a generated person follows the "
                   "pose. One pose frame or one image is repeated to match the other's count.")

    def preview(self, image, pose_keypoint, placement, alpha, threshold, thickness, scale_thickness) -> tuple:
        import numpy as np

        from ..humansd_core.pose import parse_pose_data, place_on_canvas, render_skeleton, scaled_thickness

        pictures = images_to_uint8(image)
        frames = parse_pose_data(pose_keypoint, "pose_keypoint")
        count = max(len(pictures), len(frames))
        if not frames or (len(pictures) != len(frames) and 1 not in (len(pictures), len(frames))):
            raise HumanSDError(f"preview: {len(pictures)} images but {len(frames)} pose frames; "
                               f"give equal counts or one of either")
        height, width = pictures.shape[1:3]
        if scale_thickness:
            thickness = scaled_thickness(width, height, base=thickness)
        out = np.empty((count, height, width, 3), np.uint8)
        for i in range(count):
            picture = pictures[i % len(pictures)]
            pose = place_on_canvas(frames[i % len(frames)], width, height, placement)
            drawn = render_skeleton(pose, width, height, threshold=threshold, thickness=thickness, canvas=picture)
            out[i] = (picture * (1.0 - alpha) + drawn * alpha + 0.5).astype(np.uint8)
        return (uint8_to_images(out),)


NODE_CLASS_MAPPINGS = {
    "HumanSDPoseFromKeypoints": HumanSDPoseFromKeypoints,
    "HumanSDPoseFromJSON": HumanSDPoseFromJSON,
    "HumanSDPoseFromImage": HumanSDPoseFromImage,
    "HumanSDPoseTransform": HumanSDPoseTransform,
    "HumanSDPosePreview": HumanSDPosePreview,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "HumanSDPoseFromKeypoints": "HumanSD Pose from Keypoints",
    "HumanSDPoseFromJSON": "HumanSD Pose from JSON",
    "HumanSDPoseFromImage": "HumanSD Pose from Image",
    "HumanSDPoseTransform": "HumanSD Pose Transform",
    "HumanSDPosePreview": "HumanSD Pose Preview",
}
