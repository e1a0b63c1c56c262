"""Recipe step: train a small LDM ``AutoencoderKL`` on synthetic mannequin scenes and their skeleton images.

The trainer (:mod:`humansd_core.training.trainer`) keeps the VAE frozen, so a model trained from scratch
(the embedded tiny HumanSD) first needs an autoencoder of its own. This one learns
both kinds of image the diffusion model meets: mannequin scenes (what it generates)
and skeleton images (its pose condition, VAE-encoded), drawn by
:func:`humansd_core.synthetic.sample_scene` and :func:`humansd_core.pose.render_skeleton`.

Recipe: a fixed pool of scenes is drawn once; each step takes random square crops
(the network is convolutional, so crops smaller than the image cost less and teach
the same local code), flips some, and minimises ``L1(x, decode(z)) + kl_weight · KL``
with ``z`` a sample of the posterior (KL-regularised as LDM's ``AutoencoderKL``; the
KL term is averaged over latent elements, the L1 over pixels), plus, with
``edge_weight > 0``, the same weighted L1 between the horizontal and vertical pixel
differences of the reconstruction and of the target (thin limbs and outlines are where
an L1-trained autoencoder blurs first). AdamW with a linear warm-up and a cosine decay
to ``min_lr_ratio`` (:func:`~humansd_core.training.lr_schedule.lr_factor`).

With ``decoder_only`` the run starts from an ``init`` VAE (a file of this module or a HumanSD
checkpoint) and trains its decoder side alone (``decoder`` and ``post_quant_conv``, the
:data:`DECODER_SIDE`): the encoder, hence every latent a UNet was trained on and the scale
factor, stays as it was, while reconstructions and decoded samples sharpen (SD's own
fine-tuned VAE decoders were made this way). :func:`with_decoder` puts such a decoder into
a HumanSD checkpoint.

With a ``checkpoint`` path the run saves its whole state (weights, optimiser,
schedule, generator, step, losses) there every ``checkpoint_every`` steps, atomically,
and resumes from it: a resumed run computes what an uninterrupted one computes (the
pool is redrawn from its seed).

The result is a safetensors file with the LDM keys ``first_stage_model.*`` (what
``humansd train --vae FILE`` reads), the :class:`VAEConfig` JSON under
:data:`VAE_METADATA_KEY` and the latent scale factor (``1 / std`` of the posterior
means of held-out scenes, as SD chose 0.18215) under ``"scale_factor"``.

The embedded model's options are ``presets/embedded_vae.toml`` (:func:`preset_options`);
``python -m humansd_core.embedded.recipe.vae --out FILE [--checkpoint STATE]`` trains it
alone (the whole recipe, :mod:`.humansd`, trains it in-process).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from ...assets import file_digest
from ...errors import HumanSDError
from ...fileio import atomic_write_with
from ...models.checkpoint import VAE_PREFIX
from ...models.checkpoint_read import read_checkpoint
from ...models.configs import CONFIG_METADATA_KEY, VAEConfig
from ...models.safetensors_write import write_safetensors
from ...models.vae import AutoencoderKL
from ...pose.render import render_skeleton
from ...synthetic import sample_scene, scene_rng
from ...training.lr_schedule import lr_factor
from .presets import model_config, read_preset
from .resume_state import load_state, save_state

logger = logging.getLogger(__name__)

VAE_METADATA_KEY = "humansd_vae_config"
DECODER_SIDE = ("decoder.", "post_quant_conv.")  # the parameters a decoder-only run trains (names in the VAE)


@dataclass(frozen=True)
class VAETrainOptions:
    """Options of :func:`train_vae` (sizes in pixels).

    ``image_size``: side of the scenes drawn; ``crop``: side of the training crops
    (a multiple of the VAE factor, at most ``image_size``); ``pool``: scenes drawn
    once and reused; ``body_weight``: extra L1 weight on the people (pixels their
    skeleton image covers); ``skeleton_fraction``: share of each batch that are skeleton
    images; ``eval_count``: held-out scenes (seed ``seed + 1``) for the metrics and
    the scale factor; ``edge_weight``: weight of the L1 of the pixel differences (0: none);
    ``decoder_only``: train the decoder side of an ``init`` VAE alone (the module docstring).
    """

    vae: VAEConfig = dataclasses.field(default_factory=VAEConfig)
    image_size: int = 128
    crop: int = 64
    pool: int = 2000
    steps: int = 1500
    batch_size: int = 8
    lr: float = 1e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.0
    kl_weight: float = 1e-5
    body_weight: float = 4.0
    skeleton_fraction: float = 0.25
    seed: int = 0
    eval_count: int = 64
    log_every: int = 50
    edge_weight: float = 0.0
    decoder_only: bool = False

    def __post_init__(self) -> None:
        factor = self.vae.downsample_factor
        if self.crop % factor or self.image_size % factor or not 0 < self.crop <= self.image_size:
            raise HumanSDError(f"VAE training: crop {self.crop} and image_size {self.image_size} must be multiples "
                               f"of the VAE factor {factor}, with crop <= image_size")
        if self.steps < 1 or self.batch_size < 1 or self.pool < 1 or self.eval_count < 1:
            raise HumanSDError("VAE training: steps, batch_size, pool and eval_count must be at least 1")
        if self.edge_weight < 0:
            raise HumanSDError(f"VAE training: edge_weight must not be negative, got {self.edge_weight}")
        if not 0.0 <= self.skeleton_fraction <= 1.0:
            raise HumanSDError(f"VAE training: skeleton_fraction must lie in [0, 1], got {self.skeleton_fraction}")


@dataclass(frozen=True)
class VAETrainResult:
    """What :func:`train_vae` returns: the file, the scale factor and held-out metrics.

    ``psnr_scenes`` / ``psnr_skeletons``: reconstruction PSNR (dB, images in [0, 1])
    through the posterior mean on full-size held-out images; ``seconds``: training time (of this
    process, when it resumed a run).
    """

    path: Path
    scale_factor: float
    psnr_scenes: float
    psnr_skeletons: float
    seconds: float
    losses: list[float]


def draw_pool(count: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scenes, skeletons)``, each uint8 ``[count, 3, size, size]``: scene ``i`` of ``seed`` and its skeleton."""
    scenes = np.empty((count, size, size, 3), np.uint8)
    skeletons = np.empty_like(scenes)
    for i in range(count):
        image, pose, _ = sample_scene(scene_rng(seed, i), size)
        scenes[i], skeletons[i] = image, render_skeleton(pose)
    return torch.from_numpy(scenes).permute(0, 3, 1, 2), torch.from_numpy(skeletons).permute(0, 3, 1, 2)


def _batch(pool: tuple[torch.Tensor, torch.Tensor], opts: VAETrainOptions,
           g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops ``[B, 3, crop, crop]`` in ``[-1, 1]`` (skeletons for ``skeleton_fraction`` of them)
    and their L1 weights ``[B, 1, crop, crop]``: ``1 + body_weight`` where the skeleton image is drawn."""
    scenes, skeletons = pool
    n_skel = round(opts.batch_size * opts.skeleton_fraction)
    picks = torch.randint(0, len(scenes), (opts.batch_size,), generator=g)
    crops, weights = [], []
    for k, index in enumerate(picks.tolist()):
        top, left = (int(v) for v in torch.randint(0, opts.image_size - opts.crop + 1, (2,), generator=g))
        window = (slice(None), slice(top, top + opts.crop), slice(left, left + opts.crop))
        crop = (skeletons if k < n_skel else scenes)[index][window]
        body = skeletons[index][window].amax(0, keepdim=True) > 0
        if k >= n_skel and bool(torch.rand((), generator=g) < 0.5):  # skeleton colours code left/right: no flip
            crop, body = crop.flip(-1), body.flip(-1)
        crops.append(crop)
        weights.append(1.0 + opts.body_weight * body.float())
    return torch.stack(crops).float() / 127.5 - 1.0, torch.stack(weights)


def _differences(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal ``[B,C,H,W-1]`` and vertical ``[B,C,H-1,W]`` neighbour differences of ``x [B,C,H,W]``."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def vae_loss(vae: AutoencoderKL, x: torch.Tensor, weight: torch.Tensor, kl_weight: float,
             noise: torch.Tensor, edge_weight: float = 0.0) -> tuple[torch.Tensor, float]:
    """``(loss, l1)`` for images ``x [B,3,H,W]`` in ``[-1,1]``: the ``weight``-ed mean L1 (weights
    ``[B,1,H,W]``) of the reconstruction through a posterior sample (``noise`` ``[B,4,h,w]``), plus
    ``edge_weight`` × the weighted L1 of its neighbour differences against the target's (a pixel pair
    weighs as its heavier pixel), plus ``kl_weight`` × the mean KL to N(0, 1) per latent element;
    ``l1`` is the plain mean L1."""
    mean, logvar = vae.encode_dist(x)
    z = mean + torch.exp(0.5 * logvar) * noise
    y = vae.decode(z)
    error = (y - x).abs()
    weighted = (error * weight).mean() / weight.mean()
    if edge_weight > 0:
        pairs = (torch.maximum(weight[..., :, 1:], weight[..., :, :-1]),
                 torch.maximum(weight[..., 1:, :], weight[..., :-1, :]))
        for dy, dx, pair in zip(_differences(y), _differences(x), pairs):
            weighted = weighted + edge_weight * ((dy - dx).abs() * pair).mean() / pair.mean()
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
    return weighted + kl_weight * kl, float(error.detach().mean())


@torch.no_grad()
def _psnr(vae: AutoencoderKL, images: torch.Tensor, batch: int = 16) -> float:
    errors = []
    for start in range(0, len(images), batch):
        x = images[start:start + batch].float() / 127.5 - 1.0
        y = vae(x).clamp(-1, 1)
        errors.append(((y - x) / 2).pow(2).flatten(1).mean(1))
    return float((-10 * torch.log10(torch.cat(errors).clamp(min=1e-10))).mean())


@torch.no_grad()
def latent_scale_factor(vae: AutoencoderKL, images: torch.Tensor, batch: int = 16) -> float:
    """``1 / std`` of the posterior means of ``images`` (uint8 ``[N,3,H,W]``), to 4 significant digits."""
    means = torch.cat([vae.encode(images[s:s + batch].float() / 127.5 - 1.0) for s in range(0, len(images), batch)])
    return float(f"{1.0 / float(means.std()):.4g}")


def save_vae(vae: AutoencoderKL, path: str | Path, scale_factor: float, extra: dict[str, str] | None = None,
             dtype: torch.dtype = torch.float32) -> None:
    """Write the VAE as ``first_stage_model.*`` safetensors with its config and scale factor in the metadata."""
    state = {VAE_PREFIX + k: v.detach().to("cpu", dtype).contiguous() for k, v in vae.state_dict().items()}
    meta = {VAE_METADATA_KEY: json.dumps(dataclasses.asdict(vae.config), sort_keys=True),
            "scale_factor": repr(scale_factor), **(extra or {})}
    atomic_write_with(path, lambda tmp: save_file(state, str(tmp), metadata=meta))


def read_vae(path: str | Path) -> tuple[dict[str, torch.Tensor], float]:
    """``(state dict in float32, latent scale factor)`` of the VAE in ``path``: a file of :func:`save_vae`
    or a HumanSD checkpoint (its ``first_stage_model.*`` tensors and its config's scale factor)."""
    state, meta = read_checkpoint(path)
    vae = {key[len(VAE_PREFIX):]: value.float() for key, value in state.items() if key.startswith(VAE_PREFIX)}
    if not vae:
        raise HumanSDError(f"{path}: no {VAE_PREFIX}* tensors, not a VAE or HumanSD checkpoint")
    if "scale_factor" in meta:
        return vae, float(meta["scale_factor"])
    if CONFIG_METADATA_KEY in meta:
        return vae, float(json.loads(meta[CONFIG_METADATA_KEY])["scale_factor"])
    raise HumanSDError(f"{path}: no scale factor in its metadata (neither 'scale_factor' nor {CONFIG_METADATA_KEY!r})")


def with_decoder(model: str | Path, vae: str | Path, out: str | Path) -> None:
    """Write ``out``: the HumanSD checkpoint ``model`` with the :data:`DECODER_SIDE` tensors of the VAE file
    ``vae`` in place of its own (in its dtype), everything else and the metadata as they are."""
    tensors, meta = read_checkpoint(model)
    decoder, _ = read_vae(vae)
    for name, value in decoder.items():
        if name.startswith(DECODER_SIDE):
            key = VAE_PREFIX + name
            if key not in tensors or tensors[key].shape != value.shape:
                raise HumanSDError(f"{vae}: {name} {list(value.shape)} does not fit {model}")
            tensors[key] = value.to(tensors[key].dtype)
    atomic_write_with(out, lambda tmp: write_safetensors(tmp, tensors, meta))


def train_vae(opts: VAETrainOptions, out: str | Path,
              progress: Callable[[int, float], None] | None = None, checkpoint: str | Path | None = None,
              checkpoint_every: int = 500, validate: Callable[[AutoencoderKL, int], None] | None = None,
              validate_every: int = 0, init: str | Path | None = None) -> VAETrainResult:
    """Train a VAE from scratch (seeded), or from the VAE of ``init``, and write it to ``out`` (see the
    module docstring; ``decoder_only`` needs ``init``).

    ``progress(step, l1)`` is called every ``log_every`` steps. ``checkpoint``: the resume
    file (saved every ``checkpoint_every`` steps; a run resumes from it when it exists
    and was written by a run of the same options, ``log_every`` aside). ``validate(vae,
    step)`` is called every ``validate_every`` steps (0: never) with the VAE in eval mode.
    """
    if checkpoint_every < 1:
        raise HumanSDError(f"VAE training: checkpoint_every must be at least 1, got {checkpoint_every}")
    if opts.decoder_only and init is None:
        raise HumanSDError("VAE training: decoder_only needs an init VAE to start from")
    torch.manual_seed(opts.seed)
    vae = AutoencoderKL(opts.vae)
    init_scale = None
    if init is not None:
        weights, init_scale = read_vae(init)
        vae.load_state_dict(weights)
    trained = [p for name, p in vae.named_parameters() if not opts.decoder_only or name.startswith(DECODER_SIDE)]
    vae.requires_grad_(False)
    for parameter in trained:
        parameter.requires_grad_(True)
    began = time.perf_counter()
    pool = draw_pool(opts.pool, opts.image_size, opts.seed)
    held_out = draw_pool(opts.eval_count, opts.image_size, opts.seed + 1)
    optimizer = torch.optim.AdamW(trained, lr=opts.lr, weight_decay=opts.weight_decay)

    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, opts.warmup_steps, opts.steps, "cosine", opts.min_lr_ratio))
    g = torch.Generator().manual_seed(opts.seed)
    latent = opts.crop // opts.vae.downsample_factor
    losses: list[float] = []
    start = 0
    fields = {k: v for k, v in dataclasses.asdict(opts).items() if k != "log_every"}
    if init is not None:
        fields["init"] = file_digest(init)  # a resumed run must start from the same VAE
    identity = json.dumps(fields, sort_keys=True)
    path = Path(checkpoint) if checkpoint is not None else None
    state = load_state(path, identity, "the VAE trainer")
    if state is not None:
        vae.load_state_dict(state["vae"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        g.set_state(state["generator"])
        start, losses = int(state["step"]), state["losses"].tolist()
        logger.info("resumed VAE training from %s at step %d", path, start)
    vae.train()
    for step in range(start, opts.steps):
        x, weight = _batch(pool, opts, g)
        noise = torch.randn(opts.batch_size, opts.vae.embed_dim, latent, latent, generator=g)
        loss, l1 = vae_loss(vae, x, weight, opts.kl_weight, noise, opts.edge_weight)
        if not math.isfinite(l1):
            raise HumanSDError(f"VAE training diverged at step {step} (loss {float(loss)}); try a lower lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(l1)
        done = step + 1
        if progress is not None and (done % opts.log_every == 0 or done == opts.steps):
            progress(done, float(np.mean(losses[-opts.log_every:])))
        if path is not None and (done % checkpoint_every == 0 or done == opts.steps):
            save_state(path, {"vae": vae.state_dict(), "optimizer": optimizer.state_dict(),
                              "scheduler": scheduler.state_dict(), "generator": g.get_state(), "step": done,
                              "losses": torch.tensor(losses, dtype=torch.float64)}, identity)
        if validate is not None and validate_every and (done % validate_every == 0 or done == opts.steps):
            vae.eval()
            validate(vae, done)
            vae.train()
    seconds = time.perf_counter() - began
    vae.eval()
    scale = init_scale if opts.decoder_only else latent_scale_factor(vae, held_out[0])  # same encoder, same scale
    result = VAETrainResult(Path(out), scale, _psnr(vae, held_out[0]), _psnr(vae, held_out[1]), seconds, losses)
    options = {k: v for k, v in dataclasses.asdict(opts).items() if k != "vae"}
    save_vae(vae, out, scale, {"vae_training": json.dumps({**options, "psnr_scenes": round(result.psnr_scenes, 2),
                                                             "psnr_skeletons": round(result.psnr_skeletons, 2)})})
    logger.info("wrote %s (scale factor %s, PSNR scenes %.2f dB, skeletons %.2f dB)", out, scale,
                result.psnr_scenes, result.psnr_skeletons)
    return result


def preset_options(smoke: bool = False, preset: str = "embedded_vae.toml") -> VAETrainOptions:
    """The embedded model's VAE options (``presets/<preset>``, the autoencoder's or the decoder stage's
    ``embedded_vae_decoder.toml``, on ``embedded_model.json``'s VAE); ``smoke``: 4 steps on a pool of
    16 scenes, to check the recipe runs."""
    values = read_preset(preset)
    if smoke:
        values.update(steps=4, pool=16)
    return VAETrainOptions(vae=model_config().vae, **values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="the VAE file to write (safetensors)")
    parser.add_argument("--smoke", action="store_true", help="a few steps, to check the step runs")
    parser.add_argument("--checkpoint", default=None,
                        help="resume state: saved every 500 steps, resumed from when it exists (default: none)")
    parser.add_argument("--decoder-of", default=None, metavar="MODEL",
                        help="train only the decoder of MODEL's VAE (a HumanSD checkpoint or VAE file) with "
                             "presets/embedded_vae_decoder.toml (default: a whole VAE from scratch)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    preset = "embedded_vae.toml" if args.decoder_of is None else "embedded_vae_decoder.toml"
    result = train_vae(preset_options(args.smoke, preset), args.out,
                       progress=lambda step, l1: logger.info("vae step %d L1 %.4f", step, l1),
                       checkpoint=args.checkpoint, init=args.decoder_of)
    print(f"{result.path}: scale factor {result.scale_factor}, PSNR scenes {result.psnr_scenes:.2f} dB, "
          f"skeletons {result.psnr_skeletons:.2f} dB, {result.seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
