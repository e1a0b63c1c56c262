"""Tiny networks: shapes, dtypes, LDM math details, gradient checkpointing, text semantics."""
from __future__ import annotations

import logging
import math

import pytest
import torch

from humansd_core.models.attention import CrossAttention
from humansd_core.models.checkpoint import build_models
from humansd_core.models.configs import tiny_config
from humansd_core.models.unet_blocks import GroupNorm32, timestep_embedding


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    built = build_models(tiny_config())
    # LDM zero-initialises output layers; randomise them so every path shows in outputs.
    with torch.no_grad():
        for p in built.unet.parameters():
            if not p.any():
                p.normal_(0, 0.05)
    return built


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_forward_shapes_and_dtypes(models, dtype: torch.dtype) -> None:
    unet = build_models(tiny_config()).unet.to(dtype)
    unet.load_state_dict(models.unet.state_dict())
    vae = build_models(tiny_config()).vae.to(dtype)
    vae.load_state_dict(models.vae.state_dict())
    text = models.text_encoder
    with torch.no_grad():
        ctx = text(["a dancer", "two people"])
        assert ctx.shape == (2, 77, 32) and ctx.dtype == torch.float32
        x = torch.randn(2, 8, 8, 8)
        eps = unet(x, torch.tensor([0, 999]), ctx)
        assert eps.shape == (2, 4, 8, 8) and eps.dtype == torch.float32  # back to the input's dtype
        assert torch.isfinite(eps).all()
        images = torch.rand(2, 3, 64, 64) * 2 - 1
        latents = vae.encode(images)
        assert latents.shape == (2, 4, 8, 8) and latents.dtype == dtype
        mean, logvar = vae.encode_dist(images)
        assert torch.equal(mean, latents) and logvar.shape == mean.shape
        assert logvar.min() >= -30 and logvar.max() <= 20
        decoded = vae.decode(latents)
        assert decoded.shape == (2, 3, 64, 64) and torch.isfinite(decoded.float()).all()


def test_bf16_close_to_fp32(models) -> None:
    unet16 = build_models(tiny_config()).unet.to(torch.bfloat16)
    unet16.load_state_dict(models.unet.state_dict())
    with torch.no_grad():
        ctx = models.text_encoder(["a person"])
        x = torch.randn(1, 8, 8, 8)
        t = torch.tensor([500])
        ref = models.unet(x, t, ctx)
        low = unet16(x, t, ctx)
    assert (low - ref).abs().max() <= 0.05 * ref.abs().max() + 1e-3


def test_odd_latent_sizes_and_scalar_timestep(models) -> None:
    with torch.no_grad():
        ctx = models.text_encoder(["x"])
        out = models.unet(torch.randn(1, 8, 9, 13), torch.tensor(3.5), ctx)
    assert out.shape == (1, 4, 9, 13)


def test_timesteps_change_the_output(models) -> None:
    with torch.no_grad():
        ctx = models.text_encoder(["x"])
        x = torch.randn(1, 8, 8, 8)
        a, b = models.unet(x, torch.tensor([10]), ctx), models.unet(x, torch.tensor([900]), ctx)
        c = models.unet(x, torch.tensor([10]), models.text_encoder(["something else entirely"]))
    assert not torch.allclose(a, b) and not torch.allclose(a, c)


def test_timestep_embedding_is_ldm_cos_then_sin() -> None:
    t = torch.tensor([0.0, 7.0])
    emb = timestep_embedding(t, 8)
    freqs = torch.tensor([10000 ** (-i / 4) for i in range(4)])
    expected = torch.cat([torch.cos(t[:, None] * freqs), torch.sin(t[:, None] * freqs)], dim=1)
    assert torch.allclose(emb, expected, atol=1e-6)
    assert torch.equal(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))


def test_norm_epsilons_follow_ldm(models) -> None:
    unet, vae = models.unet, models.vae
    assert isinstance(unet.input_blocks[1][0].in_layers[0], GroupNorm32)
    assert unet.input_blocks[1][0].in_layers[0].eps == 1e-5 and unet.out[0].eps == 1e-5
    assert unet.input_blocks[1][1].norm.eps == 1e-6  # SpatialTransformer's Normalize
    assert vae.encoder.mid.block_1.norm1.eps == 1e-6 and vae.decoder.norm_out.eps == 1e-6
    assert all(m.num_groups == 32 for m in unet.modules() if isinstance(m, torch.nn.GroupNorm))


def test_cross_attention_matches_explicit_softmax() -> None:
    torch.manual_seed(1)
    attn = CrossAttention(query_dim=32, heads=2, dim_head=16, context_dim=24)
    x, ctx = torch.randn(2, 5, 32), torch.randn(2, 7, 24)
    q = attn.to_q(x).view(2, 5, 2, 16).transpose(1, 2)
    k = attn.to_k(ctx).view(2, 7, 2, 16).transpose(1, 2)
    v = attn.to_v(ctx).view(2, 7, 2, 16).transpose(1, 2)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(16), dim=-1)
    expected = attn.to_out((weights @ v).transpose(1, 2).reshape(2, 5, 32))
    assert torch.allclose(attn(x, ctx), expected, atol=1e-5)


def test_gradient_checkpointing_gives_same_gradients(models) -> None:
    unet = build_models(tiny_config()).unet
    unet.load_state_dict(models.unet.state_dict())
    torch.manual_seed(2)
    x, ctx = torch.randn(2, 8, 8, 8), torch.randn(2, 77, 32)
    t = torch.tensor([100, 700])

    def grads(enabled: bool) -> dict[str, torch.Tensor]:
        unet.zero_grad()
        unet.set_gradient_checkpointing(enabled)
        unet(x, t, ctx).square().mean().backward()
        return {n: p.grad.clone() for n, p in unet.named_parameters()}

    plain, checkpointed = grads(False), grads(True)
    assert plain.keys() == checkpointed.keys()
    assert any(g.abs().sum() > 0 for g in plain.values())
    for name in plain:
        assert torch.allclose(plain[name], checkpointed[name], atol=1e-6, rtol=1e-5), name


def test_text_context_is_penultimate_block_then_ln_final(models) -> None:
    text = models.text_encoder
    tokens = text.tokenize(["a photo of a person dancing"])
    assert tokens.shape == (1, 77) and tokens.dtype == torch.long
    assert tokens[0, 0] == 49406 and 49407 in tokens[0]
    with torch.no_grad():
        x = text.token_embedding(tokens) + text.positional_embedding
        mask = torch.full((77, 77), float("-inf")).triu(1)
        for block in text.transformer.resblocks[:-1]:
            x = block(x, attn_mask=mask)
        expected = text.ln_final(x)
        last = text.ln_final(text.transformer.resblocks[-1](x, attn_mask=mask))
        got = text(tokens)
    assert got.shape == (1, 77, 32)
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, last, atol=1e-3)


def test_text_is_causal(models) -> None:
    text = models.text_encoder
    with torch.no_grad():
        a = text(["a person standing"])
        b = text(["a person standing on a beach at sunset"])
    # The first tokens (start, "a", "person", "standing") see only what precedes them.
    assert torch.allclose(a[0, :4], b[0, :4], atol=1e-5)
    assert not torch.allclose(a[0, 4], b[0, 4], atol=1e-3)


def test_long_prompt_is_truncated_with_warning(models, caplog: pytest.LogCaptureFixture) -> None:
    long_prompt = " ".join(["person"] * 100)
    with caplog.at_level(logging.WARNING, logger="humansd_core.models.text_encoder"):
        tokens = models.text_encoder.tokenize(["short", long_prompt])
    assert tokens.shape == (2, 77)
    assert tokens[1, -1] == 49407  # still ends with the end token
    warnings = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1 and "prompt 1 has 102 tokens" in warnings[0].getMessage()


def test_unet_accepts_channels_last_input(models) -> None:
    x = torch.randn(1, 8, 8, 8)
    ctx = torch.randn(1, 77, 32)
    with torch.no_grad():
        ref = models.unet(x, torch.tensor([5]), ctx)
        got = models.unet(x.to(memory_format=torch.channels_last), torch.tensor([5]), ctx)
    assert torch.allclose(ref, got, atol=1e-5)


def test_vae_attention_is_single_head_softmax(models) -> None:
    block = models.vae.encoder.mid.attn_1
    x = torch.randn(1, 64, 4, 4)
    with torch.no_grad():
        h = block.norm(x)
        q, k, v = (m(h).flatten(2) for m in (block.q, block.k, block.v))  # [1, C, HW]
        w = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(64), dim=-1)  # [1, HW, HW]
        expected = x + block.proj_out((v @ w.transpose(1, 2)).view(1, 64, 4, 4))
        assert torch.allclose(block(x), expected, atol=1e-5)
