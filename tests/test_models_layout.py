"""The full-size networks match a real HumanSD checkpoint's keys and shapes (meta device)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from humansd_core.errors import CheckpointError
from humansd_core.models.checkpoint import TEXT_PREFIX, UNET_PREFIX, VAE_PREFIX, build_models, expected_shapes
from humansd_core.models.configs import (
    ModelConfig,
    UNetConfig,
    named_config,
    sd21_humansd_config,
    tiny_config,
)

FIXTURE = Path(__file__).parent / "data" / "checkpoint" / "humansd_sd21_keys.json"


def test_full_layout_matches_real_checkpoint_keys_and_shapes() -> None:
    reference = {k: tuple(v) for k, v in json.loads(FIXTURE.read_text()).items()}
    assert len(reference) == 1228
    got = expected_shapes(sd21_humansd_config())
    assert sorted(set(reference) - set(got)) == []
    assert sorted(set(got) - set(reference)) == []
    mismatched = {k: (got[k], s) for k, s in reference.items() if got[k] != s}
    assert mismatched == {}


def test_full_parameter_counts() -> None:
    models = build_models(sd21_humansd_config(), "meta")
    counts = {
        name: sum(p.numel() for p in module.parameters()) / 1e6
        for name, module in (("unet", models.unet), ("vae", models.vae), ("text", models.text_encoder))
    }
    assert counts["unet"] == pytest.approx(865.9, abs=0.05)
    assert counts["vae"] == pytest.approx(83.7, abs=0.05)
    assert counts["text"] == pytest.approx(354.0, abs=0.05)
    assert models.unet.input_blocks[0][0].weight.shape == (320, 8, 3, 3)


def test_prefixes_partition_the_layout() -> None:
    keys = expected_shapes(sd21_humansd_config())
    prefixes = (UNET_PREFIX, VAE_PREFIX, TEXT_PREFIX)
    assert all(sum(k.startswith(p) for p in prefixes) == 1 for k in keys)
    assert TEXT_PREFIX + "logit_scale" in keys
    assert not any("attn_mask" in k for k in keys)  # non-persistent buffer, not in files


def test_config_json_round_trip() -> None:
    for config in (sd21_humansd_config(), tiny_config()):
        again = ModelConfig.from_json(config.to_json())
        assert again == config
        assert isinstance(again.unet.channel_mult, tuple)


def test_config_validation_errors_name_the_problem() -> None:
    with pytest.raises(CheckpointError, match="multiple of 32"):
        UNetConfig(model_channels=48)
    with pytest.raises(CheckpointError, match="context_dim"):
        ModelConfig(unet=UNetConfig(context_dim=768))
    with pytest.raises(CheckpointError, match="not valid JSON"):
        ModelConfig.from_json("{nope")
    with pytest.raises(CheckpointError, match="invalid model config"):
        ModelConfig.from_json('{"unet": {}}')
    with pytest.raises(CheckpointError, match="unknown model config 'sd15'"):
        named_config("sd15")


def test_tiny_layout_uses_every_block_kind() -> None:
    keys = expected_shapes(tiny_config())
    for fragment in ("transformer_blocks.0.attn2.to_k", "middle_block.1.proj_in", "input_blocks.2.0.op",
                     "output_blocks.1.2.conv", "skip_connection", "encoder.down.0.downsample",
                     "decoder.up.1.upsample", "mid.attn_1.q", "nin_shortcut", "resblocks.1.mlp.c_fc"):
        assert any(fragment in k for k in keys), fragment
    models = build_models(tiny_config(), "meta")
    assert sum(p.numel() for p in models.unet.parameters()) < 2e6
    assert all(p.device == torch.device("meta") for p in models.unet.parameters())
