"""Test-only ComfyUI pack: records what the UNet receives (never shipped, never in the real pack).

``HumanSDTestUNetProbe`` returns a clone of its MODEL with a ComfyUI
``DIFFUSION_MODEL`` wrapper that, at every UNet call, stores input channels 4..7 of
``x`` (the concatenated pose latent) and ``transformer_options["cond_or_uncond"]``
(0 = conditional chunk, 1 = unconditional) into a safetensors file the test reads.
"""
from __future__ import annotations

import json


class HumanSDTestUNetProbe:
    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "model": ("MODEL", {"tooltip": "Model to observe."}),
            "record_path": ("STRING", {"default": "", "tooltip": "safetensors file to write the records to."}),
        }}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "probe"
    CATEGORY = "HumanSD/testing"
    DESCRIPTION = "Test only: records the UNet input's extra channels at every call."

    def probe(self, model, record_path: str) -> tuple:
        import comfy.patcher_extension
        from safetensors.torch import save_file

        records: dict = {}
        order: list = []

        def wrapper(executor, x, *args, **kwargs):
            options = args[4] if len(args) > 4 else kwargs.get("transformer_options", {})
            index = len(order)
            records[f"call{index}"] = x[:, 4:].detach().float().cpu().contiguous()
            order.append({"cond_or_uncond": list(options.get("cond_or_uncond", [])), "channels": int(x.shape[1])})
            save_file(records, record_path, metadata={"calls": json.dumps(order)})
            return executor(x, *args, **kwargs)

        patched = model.clone()
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "humansd_test_probe", wrapper)
        return (patched,)


NODE_CLASS_MAPPINGS = {"HumanSDTestUNetProbe": HumanSDTestUNetProbe}
NODE_DISPLAY_NAME_MAPPINGS = {"HumanSDTestUNetProbe": "HumanSD Test UNet Probe"}
