"""LoRA on the tiny UNet: identity at init, merge, ComfyUI key format, save/load round trip."""
from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from humansd_core.errors import CheckpointError, HumanSDError
from humansd_core.models.configs import tiny_config
from humansd_core.models.unet import UNetModel
from humansd_core.training.lora import (
    DEFAULT_TARGETS,
    INPUT_CONV_TARGET,
    METADATA_KEY,
    LoRAConfig,
    LoRAConv2d,
    LoRALinear,
    apply_lora,
    base_weights_hash,
    load_lora,
    lora_layers,
    lora_parameters,
    merge_lora,
    save_lora,
)

CFG = tiny_config()


def make_unet(seed: int = 0) -> UNetModel:
    """Tiny UNet whose zero-initialised layers (proj_out, out conv) get random weights too."""
    torch.manual_seed(seed)
    unet = UNetModel(CFG.unet).eval()
    with torch.no_grad():
        for p in unet.parameters():
            if not p.any():
                p.normal_(0.0, 0.05)
    return unet


@pytest.fixture(scope="module")
def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 8, 8, generator=g)
    t = torch.tensor([10, 700])
    ctx = torch.randn(2, 77, CFG.unet.context_dim, generator=g)
    return x, t, ctx


def randomise_adapters(model: torch.nn.Module, seed: int = 3) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora_parameters(model):
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def test_default_targets_are_the_transformer_layers() -> None:
    unet = make_unet()
    layers = apply_lora(unet, LoRAConfig(rank=4))
    transformers = [n for n, m in unet.named_modules() if type(m).__name__ == "SpatialTransformer"]
    assert transformers
    per_block = {"proj_in", "proj_out", "transformer_blocks.0.ff.net.0.proj", "transformer_blocks.0.ff.net.2"}
    per_block |= {f"transformer_blocks.0.attn{i}.{p}" for i in (1, 2) for p in ("to_q", "to_k", "to_v", "to_out.0")}
    expected = {f"{t}.{suffix}" for t in transformers for suffix in per_block}
    assert set(layers) == expected
    assert "input_blocks.1.1.transformer_blocks.0.attn1.to_q" in layers  # an LDM key name
    assert all(isinstance(m, LoRALinear) for m in layers.values())  # SD2.x: linear proj_in/out


def test_identity_at_init_and_only_adapters_train(inputs) -> None:
    x, t, ctx = inputs
    unet = make_unet()
    with torch.no_grad():
        before = unet(x, t, ctx)
    keys_before = set(unet.state_dict())
    apply_lora(unet, LoRAConfig(rank=4, alpha=2.0, targets=DEFAULT_TARGETS + (INPUT_CONV_TARGET,)))
    with torch.no_grad():
        after = unet(x, t, ctx)
    assert torch.equal(before, after)
    assert isinstance(unet.get_submodule("input_blocks.0.0"), LoRAConv2d)
    # Base keys unchanged, adapter keys added beside them.
    assert keys_before <= set(unet.state_dict())
    trainable = {id(p) for p in unet.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in lora_parameters(unet)}
    # Gradients reach the adapters (up is zero, so only up gets a gradient at first).
    unet(x, t, ctx).square().mean().backward()
    layer = unet.get_submodule("input_blocks.0.0")
    assert layer.lora_up.weight.grad is not None and layer.lora_up.weight.grad.abs().sum() > 0


def test_merge_equals_adapted_forward(inputs) -> None:
    x, t, ctx = inputs
    unet = make_unet()
    base_keys = set(make_unet().state_dict())
    apply_lora(unet, LoRAConfig(rank=3, alpha=6.0, targets=DEFAULT_TARGETS + (INPUT_CONV_TARGET,)))
    randomise_adapters(unet)
    with torch.no_grad():
        adapted = unet(x, t, ctx)
        base = make_unet()(x, t, ctx)
        merge_lora(unet)
        merged = unet(x, t, ctx)
    assert not lora_layers(unet)
    assert set(unet.state_dict()) == base_keys
    assert (adapted - base).abs().max() > 1e-2  # the adapters do change the output
    torch.testing.assert_close(merged, adapted, rtol=1e-3, atol=1e-4)


def test_save_load_round_trip_and_comfyui_key_format(tmp_path, inputs) -> None:
    x, t, ctx = inputs
    unet = make_unet()
    targets = DEFAULT_TARGETS + (INPUT_CONV_TARGET,)
    apply_lora(unet, LoRAConfig(rank=4, alpha=8.0, targets=targets))
    randomise_adapters(unet)
    path = tmp_path / "loras" / "pose.safetensors"
    save_lora(unet, path, targets=targets)
    assert [p.name for p in path.parent.iterdir()] == ["pose.safetensors"]  # no temp file left

    base_sd = make_unet().state_dict()
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()[METADATA_KEY])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is no dict)
    assert meta["rank"] == 4 and meta["alpha"] == 8.0 and meta["targets"] == list(targets)
    assert meta["base_model_hash"] == base_weights_hash(make_unet())
    names = set()
    for key in tensors:
        m = re.fullmatch(r"diffusion_model\.(.+)\.(lora_up\.weight|lora_down\.weight|alpha)", key)
        assert m, key
        assert m.group(1) + ".weight" in base_sd  # ComfyUI maps diffusion_model.<key> -> <key>.weight
        names.add(m.group(1))
    assert len(tensors) == 3 * len(names)
    conv = "diffusion_model.input_blocks.0.0"
    assert tensors[f"{conv}.lora_down.weight"].shape == (4, 8, 3, 3)
    assert tensors[f"{conv}.lora_up.weight"].shape == (CFG.unet.model_channels, 4, 1, 1)

    # Apply the file the way ComfyUI's LoRA patch does: W += alpha/rank * up.flatten(1) @ down.flatten(1).
    patched = dict(base_sd)
    for name in names:
        up, down = tensors[f"diffusion_model.{name}.lora_up.weight"], tensors[f"diffusion_model.{name}.lora_down.weight"]
        alpha = tensors[f"diffusion_model.{name}.alpha"].item()
        w = patched[name + ".weight"]
        patched[name + ".weight"] = w + (alpha / down.shape[0]) * (up.flatten(1) @ down.flatten(1)).reshape(w.shape)
    comfy_style = make_unet()
    comfy_style.load_state_dict(patched)

    fresh = make_unet()
    info = load_lora(fresh, path)
    assert set(info.modules) == names and info.metadata["rank"] == 4
    with torch.no_grad():
        expected = unet(x, t, ctx)
        assert torch.equal(fresh(x, t, ctx), expected)
        torch.testing.assert_close(comfy_style(x, t, ctx), expected, rtol=1e-3, atol=1e-4)
    # Loading again into the already adapted model replaces the adapter weights.
    load_lora(fresh, path)
    with torch.no_grad():
        assert torch.equal(fresh(x, t, ctx), expected)


def test_save_in_half_precision(tmp_path) -> None:
    unet = make_unet()
    apply_lora(unet, LoRAConfig(rank=2))
    save_lora(unet, tmp_path / "half.safetensors", base_model_hash="abc", dtype=torch.float16)
    with safe_open(str(tmp_path / "half.safetensors"), "pt") as f:
        key = next(k for k in f.keys() if k.endswith("lora_up.weight"))  # noqa: SIM118
        assert f.get_tensor(key).dtype == torch.float16
        assert json.loads(f.metadata()[METADATA_KEY])["base_model_hash"] == "abc"


def test_bad_inputs_raise_named_errors(tmp_path) -> None:
    with pytest.raises(HumanSDError, match="match no"):
        apply_lora(make_unet(), LoRAConfig(targets=(r"no_such_layer",)))
    with pytest.raises(HumanSDError, match="rank"):
        LoRAConfig(rank=0)
    with pytest.raises(HumanSDError, match="no LoRA layers"):
        save_lora(make_unet(), tmp_path / "x.safetensors")

    unknown = tmp_path / "unknown.safetensors"
    save_file({"diffusion_model.nope.lora_up.weight": torch.zeros(4, 2),
               "diffusion_model.nope.lora_down.weight": torch.zeros(2, 4)}, str(unknown))
    with pytest.raises(CheckpointError, match="nope.*no such module"):
        load_lora(make_unet(), unknown)

    key = "diffusion_model.input_blocks.1.1.proj_in"
    wrong = tmp_path / "wrong.safetensors"
    save_file({f"{key}.lora_up.weight": torch.zeros(5, 2), f"{key}.lora_down.weight": torch.zeros(2, 7)}, str(wrong))
    with pytest.raises(CheckpointError, match="shape"):
        load_lora(make_unet(), wrong)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="garbage.safetensors"):
        load_lora(make_unet(), garbage)
