"""Host tests: this pack inside a real ComfyUI 0.3.75 server (see comfy_setup.py)."""
