"""A run's inputs on the device: samples, buckets, caches, text conditioning, the loss.

:class:`RunData` is built once per process. Rank 0 writes every cache file (detected
poses, latents, text embeddings) while the others wait, then read them back.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from ..errors import HumanSDError
from ..models.checkpoint import HumanSDModels
from ..pose.formats import load_pose_file
from ..pose.keypoints import PoseSet
from .augment import apply_to_pose
from .buckets import BucketBatchSampler, assign_bucket, make_buckets
from .cache import TextCache, build_latent_cache
from .config import FIT_DISTILLED, TrainConfig
from ..pose.heatmaps import HeatmapEstimator, KeypointGaussianEstimator
from .dataset import Record, TrainingDataset, collate, scan_dataset
from .distilled_heatmaps import DistilledHeatmapEstimator, distillation_source, shipped_distilled
from .distributed import DistInfo, barrier
from .latent_decoders import LinearLatentDecoder
from .loss import HeatmapGuidedLoss, HeatmapLossConfig

logger = logging.getLogger(__name__)


class RunData:
    """Samples and conditioning of one run (see the module docstring)."""

    def __init__(self, config: TrainConfig, models: HumanSDModels, run_dir: Path, dist: DistInfo,
                 records: Sequence[Record] | None = None) -> None:
        """``records``: the samples, already found (e.g. by a host's data node); None: scan ``config.data``."""
        self.config, self.models, self.dist = config, models, dist
        d = config.data
        self.cache_dir = Path(d.cache_dir) if d.cache_dir else run_dir / "cache"
        self.records = list(records) if records is not None else []
        for turn in (True, False):  # rank 0 first (it may write detected poses), then the others
            if records is None and dist.is_main == turn:
                self.records = scan_dataset(d.data, caption_ext=d.caption_ext, max_people=d.max_people,
                                            detector_weights=d.detector_weights, cache_dir=self.cache_dir)
            barrier(dist)
        if not self.records:
            raise HumanSDError(f"data {d.data}: no samples")
        mc = models.config
        multiple = mc.vae.downsample_factor * 2 ** (len(mc.unet.channel_mult) - 1)
        if d.bucket_step % multiple:
            raise HumanSDError(f"option bucket_step={d.bucket_step}: must be a multiple of {multiple} for this model")
        side = d.resolution // d.bucket_step * d.bucket_step
        self.buckets = make_buckets(d.resolution, d.bucket_step, d.max_aspect) if d.buckets else [(side, side)]
        self.bucket_of = [assign_bucket(r.width, r.height, self.buckets) for r in self.records]
        self.dataset = TrainingDataset(self.records, self.buckets, self.bucket_of, d, config.optim.seed)
        if d.cache == "latents":
            flips = (False, True) if d.flip_prob > 0 else (False,)
            if d.random_crop and d.zoom_max > 1.0:
                logger.warning("cache = latents: crops are centred and zoom is off (use cache = pixels for them)")
            for turn in (True, False):
                if dist.is_main == turn:
                    self.dataset.latent_cache = build_latent_cache(
                        self.dataset, models.vae, mc.scale_factor, self.cache_dir, flips=flips, write=dist.is_main)
                barrier(dist)
        self.text_cache = None
        if not config.model.train_text_encoder and d.cache_text:
            captions = [r.caption for r in self.records] + ["", config.output.sample_prompt]
            self.text_cache = TextCache(models.text_encoder, self.cache_dir, dist.is_main)
            for turn in (True, False):
                if dist.is_main == turn:
                    self.text_cache.prefill(captions)
                barrier(dist)
        self.loss_fn: HeatmapGuidedLoss | None = None

    # -- batches -----------------------------------------------------------------------------------

    def loader(self, start: int) -> torch.utils.data.DataLoader:
        """Micro-batches of this rank from micro-batch number ``start`` on (endless)."""
        o, d = self.config.optim, self.config.data
        sampler = BucketBatchSampler(self.bucket_of, o.batch_size, self.dist.world_size, self.dist.rank,
                                     o.seed, start)
        workers = d.num_workers if self.dataset.latent_cache is None else 0
        return torch.utils.data.DataLoader(self.dataset, batch_sampler=sampler, collate_fn=collate,
                                           num_workers=workers, pin_memory=self.dist.device.type == "cuda",
                                           persistent_workers=workers > 0)

    @torch.no_grad()
    def latents(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mean, logvar, pose_latent)`` float32 ``[B,4,h,w]`` on the device (mean/logvar unscaled)."""
        device = self.dist.device
        if "mean" in batch:
            return batch["mean"].to(device), batch["logvar"].to(device), batch["pose_latent"].to(device)
        vae = self.models.vae
        n = batch["image"].shape[0]
        x = torch.cat([batch["image"], batch["skeleton"]]).to(device, vae.dtype) / 127.5 - 1.0
        mean, logvar = vae.encode_dist(x)
        return mean[:n].float(), logvar[:n].float(), mean[n:].float() * self.models.config.scale_factor

    def condition(self, captions: Sequence[str]) -> torch.Tensor:
        """Context ``[B,77,C]`` (frozen text tower) or token ids ``[B,77]`` (text tower trains)."""
        if self.config.model.train_text_encoder:
            return self.models.text_encoder.tokenize(list(captions)).to(self.dist.device)
        if self.text_cache is not None:
            return self.text_cache(captions).to(self.dist.device)
        with torch.no_grad():
            return self.models.text_encoder(list(captions)).float()

    def sample_items(self, count: int) -> list[tuple[PoseSet, str]]:
        """Poses and prompts of the samples: the first ``count`` frames of ``sample_pose`` (on their own canvas)
        with ``sample_prompt`` (or the first sample's caption); without ``sample_pose``, the poses (centre
        crop, on their bucket canvas) and captions of the first ``count`` samples."""
        out = self.config.output
        if out.sample_pose:
            frames = load_pose_file(out.sample_pose)[:count]
            if not frames:
                raise HumanSDError(f"sample_pose {out.sample_pose}: no frames")
            return [(frame, out.sample_prompt or self.records[0].caption) for frame in frames]
        return [(apply_to_pose(self.records[i].pose, self.dataset.cached_geometry(i, False)), self.records[i].caption)
                for i in range(min(count, len(self.records)))]

    # -- the loss ----------------------------------------------------------------------------------

    def make_loss(self) -> HeatmapGuidedLoss | None:
        """The heatmap-guided loss of the ``[loss]`` options (None: plain MSE)."""
        opts = self.config.loss
        if opts.loss == "plain":
            return None
        estimator: HeatmapEstimator
        if opts.estimator == "openpose":
            if not opts.estimator_weights:
                raise HumanSDError("estimator = openpose needs estimator_weights (body_pose_model.pth)")
            from ..pose.detect import OpenPoseHeatmapEstimator

            estimator = OpenPoseHeatmapEstimator.from_file(opts.estimator_weights, device=self.dist.device)
        elif opts.estimator == "tiny":
            from ..pose.mannequin_estimator import TinyHeatmapEstimator, shipped_estimator

            estimator = (TinyHeatmapEstimator.from_file(opts.estimator_weights, device=self.dist.device)
                         if opts.estimator_weights else shipped_estimator("loss", device=self.dist.device))
        else:
            estimator = KeypointGaussianEstimator()
        cfg = HeatmapLossConfig(mode=opts.heatmap_mode, weight=opts.heatmap_weight, threshold=opts.heatmap_threshold,
                                decoder=opts.heatmap_decoder, estimator_scale=opts.estimator_scale,
                                mask_to_latent=opts.mask_to_latent, refresh_every=opts.refresh_every,
                                distill_batches=opts.distill_batches, distill_steps=opts.distill_steps)
        distilled = None
        if cfg.mode == "paper" and cfg.decoder == "distilled" and estimator.needs_images:
            distilled = find_distilled(opts.distilled_weights, self.models.vae, estimator, self.dist.device)
        self.loss_fn = HeatmapGuidedLoss(self.models.vae, estimator, cfg, self.models.config.scale_factor,
                                         distilled=distilled)
        return self.loss_fn

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        """Loss state a resumed run needs: the fitted linear latent decoder or distilled net, if any."""
        out: dict[str, torch.Tensor] = {}
        decoder = None if self.loss_fn is None else self.loss_fn.linear_decoder
        if decoder is not None:
            out.update({"extra.linear_decoder.weight": decoder.weight, "extra.linear_decoder.bias": decoder.bias})
        distilled = None if self.loss_fn is None else self.loss_fn.distilled
        if distilled is not None:
            out.update({DISTILLED_PREFIX + k: v for k, v in distilled.state_tensors().items()})
            meta = json.dumps(distilled.metadata()).encode()
            out[DISTILLED_PREFIX + "__metadata__"] = torch.tensor(list(meta), dtype=torch.uint8)
        return out

    def load_extra(self, tensors: dict[str, torch.Tensor]) -> None:
        if self.loss_fn is not None and "extra.linear_decoder.weight" in tensors:
            self.loss_fn.linear_decoder = LinearLatentDecoder(
                tensors["extra.linear_decoder.weight"], tensors["extra.linear_decoder.bias"]).to(self.dist.device)
        meta_key = DISTILLED_PREFIX + "__metadata__"
        if self.loss_fn is not None and meta_key in tensors:
            meta = json.loads(bytes(tensors[meta_key].tolist()).decode())
            state = {k[len(DISTILLED_PREFIX):]: v for k, v in tensors.items()
                     if k.startswith(DISTILLED_PREFIX) and k != meta_key}
            self.loss_fn.distilled = DistilledHeatmapEstimator.from_state(state, meta, self.dist.device)


DISTILLED_PREFIX = "extra.distilled."


def find_distilled(path: str, vae: torch.nn.Module, estimator: HeatmapEstimator,
                   device: torch.device) -> DistilledHeatmapEstimator | None:
    """The distilled net for the loss: ``path`` when given; else the bundled one when it was distilled from
    this VAE decoder and estimator (same weights); else None (the loss fits one on the run's first batches).
    ``path == "fit"`` (:data:`~.config.FIT_DISTILLED`): None even when the bundled net would fit."""
    if path == FIT_DISTILLED:
        logger.info("heatmap loss: distilled_weights = %r, the distilled net will be fitted on the first batches",
                    FIT_DISTILLED)
        return None
    if path:
        return DistilledHeatmapEstimator.from_file(path, device=device)
    bundled = shipped_distilled(device)
    if bundled.source == distillation_source(vae, estimator):
        logger.info("heatmap loss: the bundled distilled net fits this VAE and estimator")
        return bundled
    logger.info("heatmap loss: the distilled net will be fitted on the first batches (full decode until then)")
    return None
