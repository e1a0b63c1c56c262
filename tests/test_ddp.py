"""DDP: ``torchrun`` with 2 CPU processes (gloo) equals one process with the same global batch.

Tolerance: both runs draw the same samples, noise and timesteps (seeded per global batch
position), so they differ only by float32 rounding in the gradient all-reduce. After 3
AdamW steps at lr 1e-3 (2 micro-batches each) every parameter agrees within 5e-6
(measured: about 1e-6), and the logged losses within 1e-6 relative. AdamW's epsilon is
1e-6 here: with the default 1e-8, weights whose gradient is within rounding of zero get
updates of up to ``lr`` in either direction, and the runs drift apart by ~5e-5.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support.training_data import make_dataset, tiny_train_config

from humansd_core.training.resume_checkpoints import read_checkpoint
from humansd_core.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", count=8)
    options = {"mode": "full", "steps": 3, "grad_accum": 2, "adam_eps": 1e-6, "lr": 1e-3, "flip_prob": 0.5}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "humansd_core.cli", "train", "--init-config", "tiny", "--data", str(data),
               "--output", str(tmp_path / "ddp"), "--resolution", "64", "--batch-size", "2", "--log-every", "1",
               "--no-progress", "--save-dtype", "fp32", "--deterministic", "--cpu-threads", "1"]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "rank 1/2 on cpu (gloo)" in proc.stderr

    single = Trainer(tiny_train_config(data, tmp_path / "single", batch_size=4, **options))
    single.train()
    tensors, state = read_checkpoint(tmp_path / "ddp" / "checkpoints" / "step-00000003.safetensors")
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    worst = max((tensors[f"param.{name}"] - p.detach()).abs().max().item() for name, p in single.params)
    assert worst <= 5e-6
    moved = max((tensors[f"param.{name}"] - p).abs().max().item()
                for (name, _), p in zip(single.params, initial_unet_params(tmp_path / "single")))
    assert moved > 1e-4  # the comparison is not between untrained weights

    def log(run: str) -> list[dict]:
        return [json.loads(line) for line in (tmp_path / run / "loss_log.jsonl").read_text().splitlines()]

    ddp_log, single_log = log("ddp"), log("single")
    assert [e["step"] for e in ddp_log] == [1, 2, 3]
    for a, b in zip(ddp_log, single_log):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)


def initial_unet_params(run: Path) -> list[torch.Tensor]:
    """The UNet weights the run started from (its ``init.safetensors``), in parameter order."""
    from humansd_core.models.checkpoint import load_models

    return [p for p in load_models(run / "init.safetensors").unet.parameters()]
