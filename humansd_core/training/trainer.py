"""The training loop: HumanSD denoising with the heatmap-guided loss, LoRA or full, one or many processes.

Per optimiser step, ``grad_accum`` micro-batches of ``batch_size`` samples per rank:
``z_0`` (VAE latent × scale), ``pose`` (skeleton latent), ``t ~ U{0..999}``,
``ε ~ N(0, I)``, ``z_t = √ᾱ_t z_0 + √(1−ᾱ_t) ε``, ``ε̂ = UNet(cat(z_t, pose), t, text)``,
loss = :class:`~.loss.HeatmapGuidedLoss` (or plain MSE). ``ε``, ``t`` (and a VAE
posterior sample) of the sample at global batch position ``p`` come from a generator
seeded by ``(seed, step, micro-step, p)``, so they do not depend on the number of
processes or on where a run was resumed: N processes with batch ``b`` compute what one
process with batch ``N·b`` computes, and a resumed run continues bit for bit.

Then gradient clipping, AdamW, the LR schedule (:func:`~.lr_schedule.lr_factor`: linear
warmup, then cosine or constant), EMA; every ``save_every`` steps an atomic resume checkpoint (the last
``keep_last`` kept), every ``sample_every`` steps a sample grid, every ``log_every``
steps a line of the loss log; with the heatmap loss the line also holds the mask coverage
per timestep bin of the main process's samples since the previous line or checkpoint (``coverage_by_t``, ``count_by_t``:
ten bins of 100 timesteps, ``None`` for an empty bin; restarting the bins at checkpoints too
keeps a resumed run's log equal to an uninterrupted one's). A non-finite loss stops the run (:class:`TrainingDiverged`)
before anything is written. At the end: the LoRA (``lora.safetensors``) or the full
model (``model.safetensors``), the EMA weights when EMA is on.

Seams for a host that already holds the networks and the samples (the ComfyUI nodes):
``Trainer(config, models=..., samples=..., hooks=...)`` trains the given networks
(prepared with :func:`~.run_models.prepare_for_training`; nothing is loaded or copied) on
the given :class:`~.dataset.Record` list, and reports to :class:`TrainHooks`.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..errors import HumanSDError
from ..fileio import atomic_write_text
from ..models.checkpoint import HumanSDModels
from ..sampling.schedule import NoiseSchedule
from . import resume_checkpoints as ckpt
from .config import TrainConfig
from .dataset import Record
from .distributed import DistInfo, any_true, barrier, gather_objects, init_distributed, mean_over_ranks
from .lora import base_weights_hash
from .loss import TimestepBinStats
from .lr_schedule import lr_factor
from .run_data import RunData
from .run_log import LossLog, plot_losses
from .run_models import DTYPES, Denoiser, load_for_training, resolve_base, trainable_parameters
from .run_outputs import export_weights, write_samples
from .timestep_weights import high_noise_weights

logger = logging.getLogger(__name__)


class TrainingDiverged(HumanSDError):
    """The loss became NaN or infinite; the run stopped without writing a checkpoint."""


@dataclass
class TrainResult:
    """What :meth:`Trainer.train` returns: final step, exported file, per-step losses of this run."""

    step: int
    output: Path | None
    losses: list[float] = field(default_factory=list)


@dataclass
class TrainHooks:
    """Callbacks of a host driving the loop (one process), e.g. ComfyUI's progress bar, preview and cancel.

    Attributes:
        on_step: ``(step, total, stats)`` after every optimiser step (its log line, samples and
            checkpoint done); ``stats`` as :meth:`Trainer.train_step` returns them.
        on_samples: ``(step, images)`` after each sample grid: the generated images, RGB uint8
            ``[H, W, 3]``, one per sample pose.
        export: ``(trainer) -> Path`` writes the trained weights at the end instead of the
            trainer's own export (for networks the core cannot save itself).

    A hook may raise to stop the run (e.g. the host's cancel): the trainer first saves a
    resume checkpoint of the finished step, then lets the exception through, so a run
    with ``resume = "auto"`` continues exactly there.
    """

    on_step: Callable[[int, int, dict[str, float]], None] | None = None
    on_samples: Callable[[int, list[np.ndarray]], None] | None = None
    export: Callable[[Trainer], Path] | None = None


def sample_seed(seed: int, step: int, micro: int, position: int) -> int:
    """Seed of the noise of one sample (global batch position ``position``)."""
    return int(np.random.SeedSequence([seed, step, micro, position]).generate_state(1, np.uint64)[0])


class Trainer:
    """Set up and run one training run from a :class:`TrainConfig` (see the module docstring)."""

    def __init__(self, config: TrainConfig, dist: DistInfo | None = None, *, models: HumanSDModels | None = None,
                 samples: Sequence[Record] | None = None, hooks: TrainHooks | None = None) -> None:
        """``models``: networks already prepared for training (see the module docstring; ``[model]`` loading
        options are then unused); ``samples``: the data's records instead of scanning ``data``;
        ``hooks``: host callbacks."""
        config.validate()
        self.config = config
        self.hooks = hooks or TrainHooks()
        self.dist = dist or init_distributed(config.model.device)
        self.device = self.dist.device
        self.run_dir = Path(config.output.output)
        self.ckpt_dir = self.run_dir / "checkpoints"
        o = config.optim
        random.seed(o.seed)
        np.random.seed(o.seed % 2**32)
        torch.manual_seed(o.seed)
        if o.deterministic:
            if self.device.type == "cuda":
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by deterministic cuBLAS
            torch.use_deterministic_algorithms(True)
        if config.model.cpu_threads:
            torch.set_num_threads(config.model.cpu_threads)
        resume_path = self._resume_path()
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            ckpt.remove_partial(self.ckpt_dir)
            atomic_write_text(self.run_dir / "config.json", config.to_json() + "\n")
        barrier(self.dist)
        if models is None:
            base = resolve_base(config.model, self.run_dir, o.seed, self.dist)
            models = load_for_training(config.model, base, self.device)
        self.models = models
        self.base_hash = base_weights_hash(self.models.unet) if config.model.mode == "lora" else ""
        self.data = RunData(config, self.models, self.run_dir, self.dist, samples)
        trains_text = config.model.train_text_encoder
        self.denoiser = Denoiser(self.models.unet, self.models.text_encoder if trains_text else None)
        self.params = trainable_parameters(self.denoiser)
        self.model: torch.nn.Module = self.denoiser
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.denoiser, device_ids=ids)
        tensors = [p for _, p in self.params]
        if o.optimizer == "adafactor":
            # One parameter at a time: foreach would hold temporaries the size of all trained weights.
            self.optimizer: torch.optim.Optimizer = torch.optim.Adafactor(tensors, lr=o.lr,
                                                                          weight_decay=o.weight_decay, foreach=False)
        else:
            self.optimizer = torch.optim.AdamW(tensors, lr=o.lr, betas=(o.adam_beta1, o.adam_beta2), eps=o.adam_eps,
                                               weight_decay=o.weight_decay, foreach=True)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, o.warmup_steps, o.steps, o.lr_schedule, o.min_lr_ratio))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=o.precision == "fp16")
        self.ema = None
        if o.ema_decay > 0:
            self.ema = AveragedModel(torch.nn.ParameterList(tensors), multi_avg_fn=get_ema_multi_avg_fn(o.ema_decay))
        self.loss_fn = self.data.make_loss()
        self.coverage_bins = TimestepBinStats()
        self.alphas = NoiseSchedule().alphas_cumprod.to(self.device, torch.float32)
        self.timestep_weights = high_noise_weights(self.alphas, o.high_noise_weight_cap)  # [T] or None
        self.step = 0
        if resume_path is not None:
            self._load(resume_path)
        self.log = LossLog(self.run_dir / "loss_log.jsonl", self.step if resume_path else None) \
            if self.dist.is_main else None

    # -- resume ------------------------------------------------------------------------------------

    def _resume_path(self) -> Path | None:
        resume = self.config.output.resume
        if resume == "auto":
            return ckpt.latest_checkpoint(self.ckpt_dir)
        if resume:
            return Path(resume)
        if ckpt.list_checkpoints(self.ckpt_dir):
            raise HumanSDError(f"output {self.run_dir} already holds checkpoints; pass --resume auto to continue "
                               "that run, or choose another output folder")
        return None

    def _load(self, path: Path) -> None:
        tensors, state = ckpt.read_checkpoint(path)
        names = dict(self.params)
        if sorted(state["params"]) != sorted(names):
            raise HumanSDError(f"{path}: its trained parameters do not match this run's (different mode or targets?)")
        with torch.no_grad():
            for name, param in names.items():
                param.copy_(tensors[f"param.{name}"])
        ckpt.load_optimizer(self.optimizer, tensors, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict({k[4:]: v.to(self.device) for k, v in tensors.items() if k.startswith("ema.")})
        self.data.load_extra(tensors)
        rng = state["rng"]
        if state["world_size"] != self.dist.world_size:
            logger.warning("%s was saved by %d processes, this run has %d: the data order and RNG streams differ "
                           "from an uninterrupted run", path, state["world_size"], self.dist.world_size)
        ckpt.restore_rng(rng[self.dist.rank] if self.dist.rank < len(rng) else rng[0])
        self.step = int(state["step"])
        logger.info("resumed from %s at step %d", path, self.step)

    def save_checkpoint(self) -> Path:
        """Write the resume checkpoint of the current step (rank 0 writes; every rank must call)."""
        rngs = gather_objects(self.dist, ckpt.capture_rng())
        path = ckpt.checkpoint_path(self.ckpt_dir, self.step)
        if self.dist.is_main:
            tensors = {f"param.{name}": p for name, p in self.params}
            optim_tensors, optim_meta = ckpt.optimizer_tensors(self.optimizer)
            tensors.update(optim_tensors)
            if self.ema is not None:
                tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
            tensors.update(self.data.extra_tensors())
            state = {"step": self.step, "params": [n for n, _ in self.params], "optimizer": optim_meta,
                     "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "rng": rngs,
                     "world_size": self.dist.world_size, "config": self.config.to_dict()}
            ckpt.save_checkpoint(path, tensors, state)
            ckpt.prune_checkpoints(self.ckpt_dir, self.config.output.keep_last)
            plot_losses(self.log.entries, self.run_dir / "loss.png")
        barrier(self.dist)
        return path

    # -- one step ----------------------------------------------------------------------------------

    def _noise(self, shape: torch.Size, micro: int, sample_posterior: bool) -> tuple[torch.Tensor, ...]:
        """Per-sample ``(noise [B,4,h,w], t [B], posterior noise [B,4,h,w] or None)`` on the device.

        With ``noise_offset`` > 0 the noise gets ``noise_offset · N(0,1)`` per channel added
        (constant over the sample's pixels), drawn last so that the other draws do not change.
        """
        b = shape[0]
        offset = self.config.optim.noise_offset
        noises, ts, posts = [], [], []
        for i in range(b):
            position = self.dist.rank * b + i
            g = torch.Generator().manual_seed(sample_seed(self.config.optim.seed, self.step, micro, position))
            ts.append(torch.randint(0, len(self.alphas), (), generator=g))
            noises.append(torch.randn(shape[1:], generator=g))
            if sample_posterior:
                posts.append(torch.randn(shape[1:], generator=g))
            if offset > 0:
                noises[-1] = noises[-1] + offset * torch.randn(shape[1], 1, 1, generator=g)
        post = torch.stack(posts).to(self.device) if posts else None
        return torch.stack(noises).to(self.device), torch.stack(ts).to(self.device), post

    def micro_step(self, batch: dict, micro: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one micro-batch (backward not yet run) and its statistics."""
        o = self.config.optim
        mean, logvar, pose_latent = self.data.latents(batch)
        noise, t, post = self._noise(mean.shape, micro, self.config.data.vae_sample)
        z0 = mean if post is None else mean + torch.exp(0.5 * logvar) * post
        z0 = z0 * self.models.config.scale_factor
        a = self.alphas[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
        cond = self.data.condition(batch["caption"])
        amp = torch.autocast(self.device.type, dtype=DTYPES[o.precision], enabled=o.precision != "fp32")
        with amp:
            eps = self.model(torch.cat([zt, pose_latent], dim=1), t, cond)
        eps = eps.float()
        timestep_weight = None if self.timestep_weights is None else self.timestep_weights[t]
        if self.loss_fn is None:
            if timestep_weight is None:
                loss = F.mse_loss(eps, noise)
                stats = {"plain_loss": loss.detach()}
            else:
                per_sample = ((eps - noise) ** 2).mean(dim=(1, 2, 3))
                loss = (per_sample * timestep_weight).mean()
                stats = {"plain_loss": per_sample.detach().mean()}
        else:
            loss, diag = self.loss_fn(eps, noise, t, batch["pose"], self.step, timestep_weight)
            self.coverage_bins.update(diag)
            stats = {"plain_loss": diag.plain_loss, "mean_weight": diag.mean_weight, "coverage": diag.mask_coverage}
        if any_true(self.dist, not bool(torch.isfinite(loss))):
            last = ckpt.latest_checkpoint(self.ckpt_dir)
            raise TrainingDiverged(
                f"loss is not finite ({float(loss.detach())}) at step {self.step}, micro-batch {micro} (samples "
                f"{batch['index']}); training stopped. Last good checkpoint: {last or 'none saved yet'}. "
                "Try a lower lr, max_grad_norm, or precision bf16/fp32.")
        return loss, {k: float(v) for k, v in stats.items()}

    def train_step(self, batches: list[dict]) -> dict[str, float]:
        """One optimiser step over ``grad_accum`` micro-batches; returns this rank's mean statistics."""
        o = self.config.optim
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for micro, batch in enumerate(batches):
            sync = not self.dist.enabled or micro == len(batches) - 1
            with contextlib.nullcontext() if sync else self.model.no_sync():
                loss, stats = self.micro_step(batch, micro)
                self.scaler.scale(loss / len(batches)).backward()
            for k, v in {"loss": float(loss.detach()), **stats}.items():
                totals[k] = totals.get(k, 0.0) + v / len(batches)
        if o.max_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            totals["grad_norm"] = float(torch.nn.utils.clip_grad_norm_([p for _, p in self.params], o.max_grad_norm))
        totals["lr"] = self.scheduler.get_last_lr()[0]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)  # no gradients held while sampling, saving, or idle
        if self.ema is not None:
            self.ema.update_parameters(torch.nn.ParameterList([p for _, p in self.params]))
        self.step += 1
        return totals

    # -- the loop ----------------------------------------------------------------------------------

    def train(self, stop_at: int | None = None) -> TrainResult:
        """Train to ``steps``; returns the final step, the exported file and this run's losses.

        ``stop_at``: pause at that step instead (a checkpoint is saved there, nothing is
        exported); a later run with ``resume = "auto"`` continues exactly where it stopped.
        """
        from tqdm.auto import tqdm

        o, out = self.config.optim, self.config.output
        end = o.steps if stop_at is None else min(stop_at, o.steps)
        loader = self.data.loader(start=self.step * o.grad_accum)
        batches = iter(loader)
        losses: list[float] = []
        bar = tqdm(total=o.steps, initial=self.step, disable=not (self.dist.is_main and out.progress),
                   desc="train", unit="step", dynamic_ncols=True)
        started = time.perf_counter()
        while self.step < end:
            stats = self.train_step([next(batches) for _ in range(o.grad_accum)])
            losses.append(stats["loss"])
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss']:.4f}", lr=f"{stats['lr']:.2e}")
            last = self.step == end
            if self.step % out.log_every == 0 or last:
                keys = sorted(stats)
                means = mean_over_ranks(self.dist, torch.tensor([stats[k] for k in keys], dtype=torch.float64))
                entry = {"step": self.step, **dict(zip(keys, means.tolist())),
                         "time": round(time.perf_counter() - started, 3), **self._coverage_by_timestep()}
                if self.log is not None:
                    self.log.append(entry)
            if out.sample_every and self.dist.is_main and (self.step % out.sample_every == 0 or self.step == o.steps):
                with self.ema_weights():
                    images = self.write_sample_grid()
                self._call_hook(self.hooks.on_samples, self.step, images)
            due = self.step % out.save_every == 0 or last
            if due:
                self.save_checkpoint()
                self.coverage_bins = TimestepBinStats()
            self._call_hook(self.hooks.on_step, self.step, o.steps, stats, saved=due)
        bar.close()
        output = None
        if self.dist.is_main and self.step == o.steps:
            with self.ema_weights():
                output = self.hooks.export(self) if self.hooks.export else \
                    export_weights(self.models, self.config, self.run_dir, self.step, self.base_hash)
        barrier(self.dist)
        return TrainResult(self.step, output, losses)

    def _coverage_by_timestep(self) -> dict[str, list]:
        """This rank's mask coverage per timestep bin since the last call (heatmap loss only), then new bins."""
        if self.loss_fn is None:
            return {}
        summary, self.coverage_bins = self.coverage_bins.summary(), TimestepBinStats()
        return {"coverage_by_t": [None if math.isnan(v) else round(v, 4) for v in summary["coverage"]],
                "count_by_t": [int(v) for v in summary["count"]]}

    def write_sample_grid(self) -> list[np.ndarray]:
        """Write the sample grid of the current weights as ``samples/step-<step>.png``; returns the generated
        images (RGB uint8 ``[H, W, 3]``, one per sample pose; :func:`~.run_outputs.write_samples`)."""
        out = self.config.output
        path = self.run_dir / "samples" / f"step-{self.step:08d}.png"
        items = self.data.sample_items(out.sample_count)
        return write_samples(self.models, items, out, self.config.data.pose_threshold, path)

    def _call_hook(self, hook: Callable[..., None] | None, *args: object, saved: bool = False) -> None:
        """Call ``hook(*args)``; if it raises, save a checkpoint of this step first (unless ``saved``)."""
        if hook is None:
            return
        try:
            hook(*args)
        except BaseException:
            if not saved:
                self.save_checkpoint()
            raise

    @contextlib.contextmanager
    def ema_weights(self):  # noqa: ANN201 - a context manager
        """Within the block the trained parameters hold the EMA weights (no-op without EMA)."""
        if self.ema is None:
            yield
            return
        live = [p.detach().clone() for _, p in self.params]
        with torch.no_grad():
            for (_, p), e in zip(self.params, self.ema.module.parameters()):
                p.copy_(e)
        try:
            yield
        finally:
            with torch.no_grad():
                for (_, p), saved in zip(self.params, live):
                    p.copy_(saved)
