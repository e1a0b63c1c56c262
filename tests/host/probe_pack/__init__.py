"""Test-only ComfyUI pack: records what the UNet receives (never shipped, never in the real pack).

``HumanSDTestUNetProbe`` returns a clone of its MODEL with a ComfyUI
``DIFFUSION_MODEL`` wrapper that, at every UNet call, stores input channels 4..7 of
``x`` (the concatenated pose latent, ``call<i>``), the cross-attention context
(``context<i>``), the timesteps (``t<i>``) and ``transformer_options["cond_or_uncond"]``
(0 = conditional chunk, 1 = unconditional; absent in training) into a safetensors
file the test reads.

``HumanSDTestFourChannelModel`` returns a clone of its MODEL whose UNet input conv
takes 4 channels (an object patch), i.e. what a plain text-to-image SD UNet is to a
HumanSD node, without loading a full plain SD checkpoint.
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
            records[f"context{index}"] = args[1].detach().float().cpu().contiguous()
            records[f"t{index}"] = args[0].detach().float().cpu().contiguous()
            order.append({"cond_or_uncond": list(options.get("cond_or_uncond", [])), "channels": int(x.shape[1])})
            save_file(records, record_path, metadata={"calls": json.dumps(order)})
            return executor(x, *args, **kwargs)

        patched = model.clone()
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "humansd_test_probe", wrapper)
        return (patched,)


class HumanSDTestFourChannelModel:
    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"model": ("MODEL", {"tooltip": "Model whose UNet input conv is cut to 4 channels."})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "cut"
    CATEGORY = "HumanSD/testing"
    DESCRIPTION = "Test only: a clone whose UNet input conv takes 4 channels, like a plain SD model."

    def cut(self, model) -> tuple:
        import torch

        conv = model.get_model_object("diffusion_model").input_blocks[0][0]
        four = torch.nn.Conv2d(4, conv.out_channels, conv.kernel_size, padding=conv.padding)
        patched = model.clone()
        patched.add_object_patch("diffusion_model.input_blocks.0.0", four)
        return (patched,)


NODE_CLASS_MAPPINGS = {"HumanSDTestUNetProbe": HumanSDTestUNetProbe,
                       "HumanSDTestFourChannelModel": HumanSDTestFourChannelModel}
NODE_DISPLAY_NAME_MAPPINGS = {"HumanSDTestUNetProbe": "HumanSD Test UNet Probe",
                              "HumanSDTestFourChannelModel": "HumanSD Test Four-Channel Model"}
