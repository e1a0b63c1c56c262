"""Reproduce the embedded tiny HumanSD (``humansd_core/assets/weights/humansd_tiny.safetensors``).

The whole recipe, on the CPU, outside CI (see ``humansd_core/assets/MODEL_CARD.md``):

1. ``humansd synth --out WORK/data --count 3000 --size 128 --seed 0`` (a subprocess,
   running while step 2 trains);
2. the autoencoder: :func:`humansd_core.training.vae_train.train_vae` with
   ``presets/embedded_vae.toml`` on the architecture of ``presets/embedded_model.json``
   → ``WORK/vae.safetensors``; its latent scale factor goes into ``WORK/model_config.json``;
3. ``humansd train WORK/embedded_humansd.toml`` (the preset, copied beside the files it
   names) → ``WORK/humansd/model.safetensors`` (UNet + text tower trained, VAE frozen);
4. evaluation: the demo's poses, prompts and settings (:mod:`humansd_core.embedded`), judged
   by the judge estimator; the same sampled poses with their scenes' own captions (busy
   backgrounds); the judge on real scenes and on their VAE reconstructions (the ceiling the
   autoencoder leaves) → ``WORK/metrics.json`` (``--evaluate-only`` redoes just this step);
5. with ``--install``: copy the model into the package and write its SHA-256 to ``SHA256SUMS``.

Prints the CPU time (user + system, this process and its children) and wall time of
each step. Usage: ``python benchmarks/train_embedded.py --work runs/embedded [--install]``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import torch

from embedded_recipe import DATA, PRESETS, Clock, generate, humansd, synth_command
from humansd_core import embedded
from humansd_core.models.configs import ModelConfig
from humansd_core.training.vae_train import VAETrainOptions, train_vae


def vae_options(config: ModelConfig, smoke: bool) -> VAETrainOptions:
    values = tomllib.loads((PRESETS / "embedded_vae.toml").read_text(encoding="utf-8"))
    if smoke:
        values.update(steps=4, pool=16)
    return VAETrainOptions(vae=config.vae, **values)


@torch.no_grad()
def evaluate(model: Path, vae_scale: float) -> dict[str, object]:
    """The demo's score of ``model`` and the judge's score of real scenes and their VAE reconstructions."""
    from humansd_core.pipeline import HumanSDPipeline
    from humansd_core.synthetic import generate_scene, scene_rng

    pipe = HumanSDPipeline.from_checkpoint(model)

    def score(items: list) -> dict[str, float]:
        return dataclasses.asdict(embedded.score_poses(generate(pipe, items), [pose for pose, _ in items]))

    scenes = [generate_scene(scene_rng(embedded.EVAL_SEED, i), embedded.SIZE, max_people=embedded.MAX_PEOPLE)
              for i in range(48)]
    real = torch.stack([torch.from_numpy(s.image).permute(2, 0, 1).float() / 255 for s in scenes])
    recon = ((pipe.vae(real * 2 - 1).clamp(-1, 1) + 1) / 2).float()
    poses = [s.pose for s in scenes]
    return {"demo": score(embedded.evaluation_set()),
            "scene_captions": score(embedded.evaluation_set(examples=False, plain=False)),
            "real_scenes": dataclasses.asdict(embedded.score_poses(real, poses)),
            "vae_reconstructions": dataclasses.asdict(embedded.score_poses(recon, poses)),
            "vae_scale_factor": vae_scale}


def install(model: Path) -> None:
    """Copy ``model`` into the package as the embedded model and write its SHA-256 to ``SHA256SUMS``."""
    target = embedded.embedded_model_path()
    shutil.copyfile(model, target)
    target.chmod(0o644)
    embedded.record_digest(target)
    print(f"installed {target} ({target.stat().st_size / 1e6:.1f} MB)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="runs/embedded", help="work folder (default %(default)s)")
    parser.add_argument("--install", action="store_true", help="copy the model into humansd_core/assets/weights")
    parser.add_argument("--smoke", action="store_true", help="a few steps of each stage, to check the recipe runs")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="re-evaluate WORK's finished run (keeps the recorded times)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = work / "humansd" / "model.safetensors"
    if args.evaluate_only:
        metrics = json.loads((work / "metrics.json").read_text(encoding="utf-8"))
        metrics.update(evaluate(model, metrics["vae_scale_factor"]))
        (work / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
        print(json.dumps(metrics, indent=1))
        if args.install:
            install(model)
        return 0
    clock = Clock()
    count = 40 if args.smoke else DATA["count"]
    synth = subprocess.Popen(synth_command(work / "data", count))
    config = ModelConfig.from_json((PRESETS / "embedded_model.json").read_text(encoding="utf-8"))
    vae = train_vae(vae_options(config, args.smoke), work / "vae.safetensors",
                    progress=lambda step, l1: print(f"vae step {step} L1 {l1:.4f}", flush=True))
    config = dataclasses.replace(config, scale_factor=vae.scale_factor)
    (work / "model_config.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n", encoding="utf-8")
    if synth.wait() != 0:
        raise SystemExit("humansd synth failed")
    clock.lap("vae + data")
    shutil.copyfile(PRESETS / "embedded_humansd.toml", work / "embedded_humansd.toml")
    smoke = ["--steps", "3", "--batch-size", "2"] if args.smoke else []
    subprocess.run(humansd("train", str(work / "embedded_humansd.toml"), *smoke), check=True)
    clock.lap("humansd train")
    metrics = evaluate(model, vae.scale_factor)
    clock.lap("evaluate")
    metrics.update(vae_psnr={"scenes": round(vae.psnr_scenes, 2), "skeletons": round(vae.psnr_skeletons, 2)},
                   times=clock.rows, total_cpu_s=round(sum(r["cpu_s"] for r in clock.rows.values()), 1),
                   model_bytes=model.stat().st_size)
    (work / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(metrics, indent=1))
    if args.install:
        install(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
