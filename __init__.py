"""ComfyUI entry point for the HumanSD node pack.

ComfyUI imports this folder as a package and reads the two mappings below. All
logic lives in ``humansd_core`` (pure PyTorch); ``nodes`` only adapts types.
"""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
