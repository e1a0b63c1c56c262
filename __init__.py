"""ComfyUI entry point for the HumanSD node pack.

ComfyUI imports this folder as a package and reads the two mappings below and
``WEB_DIRECTORY``, whose ES modules (the pose editor on **HumanSD Pose from JSON**) the
page loads. All logic lives in ``humansd_core`` (pure PyTorch); ``nodes`` only adapts
types and adds the editor's HTTP routes to the running server.
"""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .nodes import pose_editor_routes

WEB_DIRECTORY = "./web"
pose_editor_routes.install()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
