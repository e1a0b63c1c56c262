"""Training the autoencoder of a from-scratch model (humansd_core/embedded/recipe/vae.py), at toy sizes."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from humansd_core.errors import HumanSDError
from humansd_core.models.checkpoint import VAE_PREFIX, build_models, save_models
from humansd_core.models.checkpoint_read import read_checkpoint
from humansd_core.models.configs import ModelConfig, UNetConfig, VAEConfig, tiny_config
from humansd_core.models.vae import AutoencoderKL
from humansd_core.training.run_models import load_vae
from humansd_core.embedded.recipe.vae import (
    DECODER_SIDE,
    VAE_METADATA_KEY,
    VAETrainOptions,
    _batch,
    draw_pool,
    read_vae,
    train_vae,
    vae_loss,
    with_decoder,
)

VAE = VAEConfig(ch=32, ch_mult=(1, 1), num_res_blocks=1)  # factor 2: 32 px scenes, 16 px crops


def options(**changes: object) -> VAETrainOptions:
    base = dict(vae=VAE, image_size=32, crop=16, pool=6, steps=3, batch_size=4, eval_count=2, warmup_steps=2)
    return VAETrainOptions(**{**base, **changes})


def test_trained_vae_is_what_humansd_train_reads(tmp_path: Path) -> None:
    out = tmp_path / "vae.safetensors"
    result = train_vae(options(), out)
    assert result.path == out and result.scale_factor > 0 and len(result.losses) == 3
    with safe_open(str(out), "pt") as handle:
        meta = handle.metadata()
        assert all(k.startswith("first_stage_model.") for k in handle.keys())
    assert float(meta["scale_factor"]) == result.scale_factor and VAE_METADATA_KEY in meta
    config = ModelConfig(unet=UNetConfig(**{**dataclasses.asdict(tiny_config().unet), "channel_mult": (1, 2)}),
                         vae=VAE, text=tiny_config().text)
    models = build_models(config)
    load_vae(models, out)  # the trainer's --vae path: every key present with the right shape
    assert torch.isfinite(models.vae.encode(torch.zeros(1, 3, 32, 32))).all()


def test_loss_falls_within_a_few_dozen_steps(tmp_path: Path) -> None:
    result = train_vae(options(steps=30, lr=3e-3, pool=1, skeleton_fraction=0.0), tmp_path / "vae.safetensors")
    assert sum(result.losses[-5:]) < 0.7 * sum(result.losses[:5])


def test_batches_weight_the_people_and_keep_skeletons_unflipped() -> None:
    opts = options(batch_size=8, skeleton_fraction=0.5, body_weight=3.0)
    pool = draw_pool(6, 32, seed=0)
    x, weight = _batch(pool, opts, torch.Generator().manual_seed(0))
    assert x.shape == (8, 3, 16, 16) and weight.shape == (8, 1, 16, 16)
    assert x.min() >= -1 and x.max() <= 1
    assert set(weight.unique().tolist()) <= {1.0, 4.0} and (weight == 4.0).any()
    skeleton_part = x[:4]
    drawn = (skeleton_part > -1).any(1, keepdim=True)
    assert torch.equal(drawn, weight[:4] == 4.0)  # a skeleton crop is weighted exactly where it is drawn


def test_edge_loss_adds_the_error_of_the_pixel_differences() -> None:
    torch.manual_seed(0)
    vae = AutoencoderKL(VAE)
    x, weight = torch.rand(2, 3, 16, 16) * 2 - 1, torch.ones(2, 1, 16, 16)
    noise = torch.randn(2, VAE.embed_dim, 8, 8)
    with torch.no_grad():
        plain, l1 = vae_loss(vae, x, weight, 1e-5, noise)
        edged, l1_edged = vae_loss(vae, x, weight, 1e-5, noise, edge_weight=0.5)
    assert l1 == l1_edged and float(edged) > float(plain)


def test_bad_options_are_refused() -> None:
    with pytest.raises(HumanSDError, match="crop"):
        options(crop=15)
    with pytest.raises(HumanSDError, match="skeleton_fraction"):
        options(skeleton_fraction=1.5)
    with pytest.raises(HumanSDError, match="edge_weight"):
        options(edge_weight=-0.1)


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    opts = options(steps=4, edge_weight=0.5)
    whole = train_vae(opts, tmp_path / "whole.safetensors")

    class Stop(Exception):
        pass

    def stop(_vae: object, step: int) -> None:
        raise Stop(step)

    state = tmp_path / "state.pt"
    with pytest.raises(Stop):
        train_vae(opts, tmp_path / "cut.safetensors", checkpoint=state, checkpoint_every=2, validate=stop,
                  validate_every=2)
    assert torch.load(state, weights_only=True)["step"] == 2
    resumed = train_vae(opts, tmp_path / "resumed.safetensors", checkpoint=state, checkpoint_every=2)
    assert resumed.losses == whole.losses and len(resumed.losses) == 4
    a, b = (load_file(str(tmp_path / name)) for name in ("whole.safetensors", "resumed.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(HumanSDError, match="other options"):
        train_vae(options(steps=5), tmp_path / "other.safetensors", checkpoint=state)


def test_decoder_only_keeps_the_encoder_and_scale_and_goes_into_a_checkpoint(tmp_path: Path) -> None:
    first = train_vae(options(steps=2), tmp_path / "first.safetensors")
    with pytest.raises(HumanSDError, match="needs an init VAE"):
        train_vae(options(decoder_only=True), tmp_path / "no_init.safetensors")
    tuned = train_vae(options(steps=6, lr=3e-3, decoder_only=True, seed=3), tmp_path / "decoder.safetensors",
                      init=first.path)
    before, after = (read_vae(path)[0] for path in (first.path, tuned.path))
    decoder_side = {name for name in before if name.startswith(DECODER_SIDE)}
    assert decoder_side and decoder_side != before.keys()
    assert all(torch.equal(before[k], after[k]) for k in before.keys() - decoder_side)  # encoder, quant_conv
    assert sum(not torch.equal(before[k], after[k]) for k in decoder_side) > len(decoder_side) // 2
    assert tuned.scale_factor == first.scale_factor  # the latents did not change, nor their scale

    # Into a HumanSD checkpoint of that VAE's architecture, in the checkpoint's own dtype.
    config = ModelConfig(unet=UNetConfig(**{**dataclasses.asdict(tiny_config().unet), "channel_mult": (1, 2)}),
                         vae=VAE, text=tiny_config().text)
    model = tmp_path / "model.safetensors"
    save_models(build_models(config), model, dtype=torch.float16)
    combined = tmp_path / "combined.safetensors"
    with_decoder(model, tuned.path, combined)
    (old, old_meta), (new, new_meta) = read_checkpoint(model), read_checkpoint(combined)
    assert old.keys() == new.keys() and old_meta == new_meta
    for key in old:
        name = key.removeprefix(VAE_PREFIX)
        expected = after[name].half() if key.startswith(VAE_PREFIX) and name in decoder_side else old[key]
        assert new[key].dtype == old[key].dtype and torch.equal(new[key], expected), key
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(1)}, str(plain))
    with pytest.raises(HumanSDError, match="no first_stage_model"):
        read_vae(plain)
