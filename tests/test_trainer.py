"""The trainer on the tiny model (CPU, deterministic): learning, resume, crash safety, outputs, CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from support.checkpoints import tiny_checkpoint
from PIL import Image
from safetensors.torch import save_file
from support.training_data import make_dataset, tiny_train_config

from humansd_core.cli import main
from humansd_core.errors import HumanSDError
from humansd_core.models.checkpoint import UNET_PREFIX, load_models, read_state_dict
from humansd_core.pose.heatmaps import KeypointGaussianEstimator
from humansd_core.training.resume_checkpoints import latest_checkpoint, list_checkpoints, read_checkpoint
from humansd_core.training.run_data import find_distilled
from humansd_core.training.dataset import collate
from humansd_core.training.lora import base_weights_hash, load_lora
from humansd_core.training.timestep_weights import high_noise_weights
from humansd_core.training.trainer import Trainer, TrainingDiverged

REPO = Path(__file__).resolve().parents[1]
UNET_INPUT = UNET_PREFIX + "input_blocks.0.0.weight"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "set", count=6)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("base") / "tiny.safetensors")


@torch.no_grad()
def eval_loss(trainer: Trainer, repeats: int = 6) -> float:
    """Plain denoising MSE over every sample at fixed noise and timesteps."""
    data = trainer.data
    batch = collate([data.dataset[(i, 0)] for i in range(len(data.dataset))])
    mean, _, pose = data.latents(batch)
    z0 = mean * trainer.models.config.scale_factor
    cond = data.condition(batch["caption"])
    g = torch.Generator().manual_seed(123)
    losses = []
    for _ in range(repeats):
        t = torch.randint(0, 1000, (z0.shape[0],), generator=g)
        noise = torch.randn(z0.shape, generator=g)
        a = trainer.alphas[t].view(-1, 1, 1, 1)
        eps = trainer.denoiser(torch.cat([a.sqrt() * z0 + (1 - a).sqrt() * noise, pose], 1), t, cond)
        losses.append(float(((eps - noise) ** 2).mean()))
    return float(np.mean(losses))


def test_training_lowers_the_loss(data: Path, tmp_path: Path) -> None:
    trainer = Trainer(tiny_train_config(data, tmp_path / "run", mode="full", steps=30, lr=2e-3, warmup_steps=3))
    before = eval_loss(trainer)
    result = trainer.train()
    after = eval_loss(trainer)
    assert before == pytest.approx(1.0, abs=0.1)  # fresh UNet: zero output conv predicts ε̂ = 0
    assert after < 0.85 * before, (before, after)
    log = [json.loads(line) for line in (tmp_path / "run" / "loss_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == list(range(1, 31)) and result.step == 30
    assert all(np.isfinite(e["loss"]) and e["mean_weight"] >= 1.0 for e in log)
    assert Image.open(tmp_path / "run" / "loss.png").size == (640, 360)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_interrupted_and_resumed_equals_uninterrupted_bit_for_bit(data: Path, base: Path, tmp_path: Path,
                                                                  mode: str) -> None:
    options = {"mode": mode, "steps": 6, "grad_accum": 2, "warmup_steps": 2, "ema_decay": 0.9, "lora_rank": 4}
    if mode == "lora":
        options["base"] = str(base)
    whole = Trainer(tiny_train_config(data, tmp_path / "a", **options))
    whole.train()
    Trainer(tiny_train_config(data, tmp_path / "b", **options)).train(stop_at=3)
    resumed = Trainer(tiny_train_config(data, tmp_path / "b", resume="auto", **options))
    assert resumed.step == 3
    resumed.train()
    for (name, p), (_, q) in zip(whole.params, resumed.params):
        assert torch.equal(p, q), name
    output = "model.safetensors" if mode == "full" else "lora.safetensors"
    assert (tmp_path / "a" / output).read_bytes() == (tmp_path / "b" / output).read_bytes()

    def without_time(run: str) -> list[dict]:
        lines = (tmp_path / run / "loss_log.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "time"} for line in lines]

    assert without_time("a") == without_time("b")


KILL_SCRIPT = """
import os, signal, sys
from tests.support.training_data import tiny_train_config
from humansd_core.training import resume_checkpoints
from humansd_core.training.trainer import Trainer

real_save = resume_checkpoints.write_safetensors
saves = []

def save_then_die(filename, tensors, metadata=None, dtype=None):
    saves.append(filename)
    real_save(filename, tensors, metadata, dtype)
    if len(saves) == 3:  # the third checkpoint: cut its temporary file short and die mid-save
        with open(filename, "r+b") as handle:
            handle.truncate(os.path.getsize(filename) // 2)
        os.kill(os.getpid(), signal.SIGKILL)

resume_checkpoints.write_safetensors = save_then_die
Trainer(tiny_train_config(sys.argv[1], sys.argv[2], mode="full", steps=5, save_every=1, keep_last=2)).train()
"""


def test_process_killed_while_saving_leaves_the_last_checkpoint_loadable(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(data), str(run)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-3000:]
    ckpt_dir = run / "checkpoints"
    assert [step for step, _ in list_checkpoints(ckpt_dir)] == [1, 2]
    assert len(list(ckpt_dir.glob(".step-00000003*.tmp"))) == 1  # the half-written file, under a temporary name
    tensors, state = read_checkpoint(latest_checkpoint(ckpt_dir))
    assert state["step"] == 2 and all(torch.isfinite(v).all() for v in tensors.values())

    resumed = Trainer(tiny_train_config(data, run, mode="full", steps=5, save_every=1, keep_last=2, resume="auto"))
    assert resumed.step == 2 and not list(ckpt_dir.glob("*.tmp"))
    resumed.train()
    whole = Trainer(tiny_train_config(data, tmp_path / "whole", mode="full", steps=5))
    whole.train()
    assert all(torch.equal(p, q) for (_, p), (_, q) in zip(whole.params, resumed.params))


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(data: Path, tmp_path: Path) -> None:
    trainer = Trainer(tiny_train_config(data, tmp_path / "run", mode="full", steps=5, save_every=1))
    trainer.train(stop_at=2)
    with torch.no_grad():  # the weights blow up (as with a far too high learning rate)
        trainer.params[0][1].fill_(float("inf"))
    with pytest.raises(TrainingDiverged, match=r"loss is not finite \(nan\) at step 2.*Last good checkpoint: "
                                               r".*step-00000002\.safetensors"):
        trainer.train()
    ckpt_dir = tmp_path / "run" / "checkpoints"
    assert [step for step, _ in list_checkpoints(ckpt_dir)] == [1, 2]
    tensors, _ = read_checkpoint(ckpt_dir / "step-00000002.safetensors")
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith("param."))
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_lora_loads_back_and_changes_the_output(data: Path, base: Path, tmp_path: Path) -> None:
    trainer = Trainer(tiny_train_config(data, tmp_path / "run", base=str(base), mode="lora", lora_rank=4,
                                        lora_alpha=8.0, lora_input_conv=True, steps=8, lr=1e-2))
    result = trainer.train()
    assert result.output == tmp_path / "run" / "lora.safetensors"
    fresh = load_models(base)
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(2, 8, 8, 8, generator=g), torch.randn(2, 77, 32, generator=g)
    t = torch.tensor([50, 700])
    with torch.no_grad():
        before = fresh.unet(x, t, ctx)
        info = load_lora(fresh.unet, result.output)
        after = fresh.unet(x, t, ctx)
        trained = trainer.models.unet.eval()(x, t, ctx)
    assert (after - before).abs().max() > 1e-3
    torch.testing.assert_close(after, trained, rtol=1e-5, atol=1e-6)
    assert "input_blocks.0.0" in info.modules
    meta = info.metadata
    assert (meta["rank"], meta["alpha"], meta["steps"], meta["loss"]["loss"]) == (4, 8.0, 8, "heatmap")
    assert meta["base_model_hash"] == base_weights_hash(load_models(base).unet)


def test_full_finetune_of_unet_and_text_tower_from_pixels(data: Path, tmp_path: Path) -> None:
    options = {"mode": "full", "train_text_encoder": True, "steps": 2, "cache": "pixels", "zoom_max": 1.3,
               "gradient_checkpointing": True, "caption_dropout": 0.5}
    trainer = Trainer(tiny_train_config(data, tmp_path / "run", **options))
    assert trainer.data.dataset.latent_cache is None and trainer.data.text_cache is None
    loss, _ = trainer.micro_step(collate([trainer.data.dataset[(i, 0)] for i in range(2)]), 0)
    loss.backward()
    assert all(p.grad is not None for _, p in trainer.params)  # no unused weights (DDP would fail on them)
    result = trainer.train()
    assert all(p.grad is None for _, p in trainer.params)  # gradients are not kept between steps
    names = [n for n, _ in trainer.params]
    assert any(n.startswith("text_encoder.") for n in names) and any(n.startswith("unet.") for n in names)
    start, end = load_models(tmp_path / "run" / "init.safetensors"), load_models(result.output)
    changed = [not torch.equal(a, b) for a, b in zip(start.text_encoder.parameters(), end.text_encoder.parameters())]
    assert sum(changed) > 10
    assert torch.equal(start.vae.decoder.conv_out.weight, end.vae.decoder.conv_out.weight)  # the VAE stays fixed


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_steps(data: Path, tmp_path: Path, precision: str) -> None:
    trainer = Trainer(tiny_train_config(data, tmp_path / "run", mode="full", steps=2, precision=precision))
    result = trainer.train()
    assert all(np.isfinite(result.losses)) and len(result.losses) == 2
    _, state = read_checkpoint(tmp_path / "run" / "checkpoints" / "step-00000002.safetensors")
    assert bool(state["scaler"]) == (precision == "fp16")  # fp16 trains with a gradient scaler


def test_noise_offset_adds_a_channel_constant_drawn_after_the_other_draws(data: Path, tmp_path: Path) -> None:
    shape = torch.Size([2, 4, 8, 8])
    plain = Trainer(tiny_train_config(data, tmp_path / "plain"))._noise(shape, 0, True)
    offset = Trainer(tiny_train_config(data, tmp_path / "offset", noise_offset=0.3))._noise(shape, 0, True)
    assert torch.equal(plain[1], offset[1]) and torch.equal(plain[2], offset[2])  # timesteps, posterior noise
    shift = offset[0] - plain[0]  # [B, 4, h, w]: one value per sample and channel
    assert torch.allclose(shift, shift[..., :1, :1].expand_as(shift), atol=1e-6) and shift.abs().amax() > 0.01
    with pytest.raises(HumanSDError, match="noise_offset"):
        tiny_train_config(data, tmp_path / "bad", noise_offset=-0.1)


def test_high_noise_weights_scale_each_sample_by_its_clamped_inverse_snr(data: Path, tmp_path: Path) -> None:
    alphas = Trainer(tiny_train_config(data, tmp_path / "schedule")).alphas
    per_step = high_noise_weights(alphas, 20.0)
    assert high_noise_weights(alphas, 1.0) is None
    assert float(per_step.mean()) == pytest.approx(1.0, abs=1e-5)
    assert bool((per_step[1:] >= per_step[:-1]).all())  # more noise, never less weight
    snr = alphas / (1 - alphas)
    assert float(per_step[999] / per_step[0]) == pytest.approx(20.0)  # 1/SNR(999) ≈ 214: the cap holds
    low = snr > 1
    assert torch.allclose(per_step[low], per_step[0].expand(int(low.sum())))  # low noise: weight 1 before scaling

    trainers = {cap: Trainer(tiny_train_config(data, tmp_path / f"cap{cap}", loss="plain", high_noise_weight_cap=cap))
                for cap in (1.0, 20.0)}  # the same fresh weights, batches, timesteps and noise
    batch = collate([trainers[1.0].data.dataset[(i, 0)] for i in range(2)])
    losses = {cap: trainer.micro_step(batch, 0) for cap, trainer in trainers.items()}
    trainer = trainers[20.0]
    mean, _, pose = trainer.data.latents(batch)
    noise, t, _ = trainer._noise(mean.shape, 0, False)
    a = trainer.alphas[t].view(-1, 1, 1, 1)
    z0 = mean * trainer.models.config.scale_factor
    with torch.no_grad():
        eps = trainer.model(torch.cat([a.sqrt() * z0 + (1 - a).sqrt() * noise, pose], 1), t,
                            trainer.data.condition(batch["caption"]))
    per_sample = ((eps - noise) ** 2).mean(dim=(1, 2, 3))
    expected = (per_sample * per_step[t]).mean()
    assert losses[20.0][0].item() == pytest.approx(float(expected), rel=1e-5)
    assert losses[1.0][0].item() == pytest.approx(float(per_sample.mean()), rel=1e-5)
    assert losses[20.0][1]["plain_loss"] == pytest.approx(losses[1.0][1]["plain_loss"], rel=1e-6)
    with pytest.raises(HumanSDError, match="high_noise_weight_cap=0.5"):
        tiny_train_config(data, tmp_path / "bad", high_noise_weight_cap=0.5)


def test_distilled_weights_fit_is_a_keyword_not_a_file(data: Path, tmp_path: Path) -> None:
    config = tiny_train_config(data, tmp_path / "run")
    config.set("distilled_weights", "fit", base_dir=tmp_path)
    assert config.loss.distilled_weights == "fit"  # not resolved against the config's folder
    config.check_files()  # and not required to exist
    assert find_distilled("fit", torch.nn.Identity(), KeypointGaussianEstimator(), torch.device("cpu")) is None


def test_start_from_sd21_zero_inits_the_pose_channels(data: Path, base: Path, tmp_path: Path) -> None:
    state = read_state_dict(base)
    state[UNET_INPUT] = state[UNET_INPUT][:, :4].contiguous()
    sd21 = tmp_path / "sd21.safetensors"
    save_file(state, str(sd21))
    trainer = Trainer(tiny_train_config(data, tmp_path / "run", base=str(sd21), mode="full", steps=1))
    converted = read_state_dict(tmp_path / "run" / "base-from-sd21.safetensors")[UNET_INPUT]
    assert torch.equal(converted[:, :4], state[UNET_INPUT]) and not converted[:, 4:].any()
    assert torch.equal(trainer.models.unet.input_blocks[0][0].weight, converted)


def test_cli_trains_from_a_toml_file_with_flag_overrides(data: Path, tmp_path: Path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text(f'[model]\ninit_config = "tiny"\ncpu_threads = 1\n[data]\ndata = "{data}"\nresolution = 64\n'
                    '[optim]\nsteps = 50\nbatch_size = 2\n[output]\noutput = "run"\nsample_every = 2\n'
                    'sample_steps = 2\nsample_count = 2\nprogress = false\nlog_every = 1\n')
    assert main(["train", str(toml), "--steps", "2", "--mode", "full"]) == 0
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["optim"]["steps"] == 2
    assert len((run / "loss_log.jsonl").read_text().splitlines()) == 2
    grid = Image.open(run / "samples" / "step-00000002.png")
    assert grid.size == (128, 128)  # two 64x64 samples: skeletons above, images below
    assert load_models(run / "model.safetensors").config.unet.model_channels == 32
    assert main(["train", str(toml), "--steps", "2"]) == 2  # checkpoints exist: refuses to start over
