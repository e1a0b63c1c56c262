"""Recipe step: reproduce the embedded tiny HumanSD (``humansd_core/assets/weights/humansd_tiny.safetensors``).

The whole model, on the CPU, outside CI (see ``humansd_core/assets/MODEL_CARD.md``):

1. the training scenes, ``humansd synth`` with ``presets/embedded_data.toml`` → ``WORK/data``
   and, for step 4, its ``[text_stage]`` → ``WORK/data_plain`` (subprocesses, running while step 2 trains);
2. the autoencoder: :func:`.vae.train_vae` with ``presets/embedded_vae.toml`` on the
   architecture of ``presets/embedded_model.json`` → ``WORK/vae.safetensors``; its latent
   scale factor goes into ``WORK/model_config.json``;
3. ``humansd train WORK/embedded_humansd.toml`` (the preset, copied beside the files it
   names) → ``WORK/humansd/model.safetensors`` (UNet + text tower trained, VAE frozen);
4. the text stage: ``humansd train WORK/embedded_humansd_text.toml``, step 3's model trained on
   plain-background scenes with the loss weighted towards the noisiest steps →
   ``WORK/humansd_text/model.safetensors``;
5. the decoder stage: :func:`.vae.train_vae` with ``presets/embedded_vae_decoder.toml``, the
   decoder side of step 4's VAE alone (its encoder, hence the latents, unchanged) →
   ``WORK/vae_decoder.safetensors``, and step 4's model with that decoder →
   ``WORK/humansd_tiny.safetensors``, the embedded model;
6. evaluation: the demo's poses, prompts and settings (:mod:`humansd_core.embedded.evaluation`),
   judged by the judge estimator; the same sampled poses with their scenes' own captions
   (busy backgrounds); the judge on real scenes and on their VAE reconstructions (the
   ceiling the autoencoder leaves) → ``WORK/metrics.json`` (``--evaluate-only`` redoes
   just this step); step 3's and step 4's models on the demo's set too, as ``stage_demo``;
7. with ``--install``: copy the model into the package and write its SHA-256 to ``SHA256SUMS``.

Prints the CPU time (user + system, this process and its children) and wall time of
each step. Usage: ``python -m humansd_core.embedded.recipe.humansd --work runs/embedded [--install]``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import torch

from ...assets import record_digest
from ...pipeline import HumanSDPipeline
from ..evaluation import evaluation_set, generate_images, score_adherence, score_poses
from ..model import EVAL_SEED, MAX_PEOPLE, SIZE, embedded_model_path
from .clock import Clock
from .presets import (
    HUMANSD_PRESET,
    TEXT_STAGE_PRESET,
    humansd,
    model_config,
    synth_command,
    write_json,
)
from .vae import preset_options, train_vae, with_decoder


@torch.no_grad()
def demo_score(pipe: HumanSDPipeline) -> dict[str, object]:
    """What ``make demo`` prints of ``pipe``'s model: its pose score and, under ``"adherence"``, its prompt
    adherence."""
    items = evaluation_set()
    images = generate_images(pipe, items)
    return {**dataclasses.asdict(score_poses(images, [pose for pose, _ in items])),
            "adherence": dataclasses.asdict(score_adherence(images, items))}


@torch.no_grad()
def evaluate(model: Path, vae_scale: float) -> dict[str, object]:
    """The demo's score of ``model`` and the judge's score of real scenes and their VAE reconstructions."""
    from ...synthetic import generate_scene, scene_rng

    pipe = HumanSDPipeline.from_checkpoint(model)

    def score(items: list) -> dict[str, float]:
        return dataclasses.asdict(score_poses(generate_images(pipe, items), [pose for pose, _ in items]))

    scenes = [generate_scene(scene_rng(EVAL_SEED, i), SIZE, max_people=MAX_PEOPLE) for i in range(48)]
    real = torch.stack([torch.from_numpy(s.image).permute(2, 0, 1).float() / 255 for s in scenes])
    recon = ((pipe.vae(real * 2 - 1).clamp(-1, 1) + 1) / 2).float()
    poses = [s.pose for s in scenes]
    return {"demo": demo_score(pipe),
            "scene_captions": score(evaluation_set(examples=False, plain=False)),
            "real_scenes": dataclasses.asdict(score_poses(real, poses)),
            "vae_reconstructions": dataclasses.asdict(score_poses(recon, poses)),
            "vae_scale_factor": vae_scale}


def install(model: Path) -> None:
    """Copy ``model`` into the package as the embedded model and write its SHA-256 to ``SHA256SUMS``."""
    target = embedded_model_path()
    shutil.copyfile(model, target)
    target.chmod(0o644)
    record_digest(target)
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
    stages = {"humansd": work / "humansd" / "model.safetensors", "text": work / "humansd_text" / "model.safetensors"}
    model = work / "humansd_tiny.safetensors"
    if args.evaluate_only:
        metrics = json.loads((work / "metrics.json").read_text(encoding="utf-8"))
        metrics.update(evaluate(model, metrics["vae_scale_factor"]))
        write_json(work / "metrics.json", metrics)
        print(json.dumps(metrics, indent=1))
        if args.install:
            install(model)
        return 0
    clock = Clock()
    count = 40 if args.smoke else None
    synths = [subprocess.Popen(synth_command(work / "data", count)),
              subprocess.Popen(synth_command(work / "data_plain", count, table="text_stage"))]
    vae = train_vae(preset_options(args.smoke), work / "vae.safetensors",
                    progress=lambda step, l1: print(f"vae step {step} L1 {l1:.4f}", flush=True))
    config = dataclasses.replace(model_config(), scale_factor=vae.scale_factor)
    write_json(work / "model_config.json", config.to_dict())
    if [synth.wait() for synth in synths] != [0, 0]:
        raise SystemExit("humansd synth failed")
    print(clock.lap("vae + data"), flush=True)
    smoke = ["--steps", "3", "--batch-size", "2"] if args.smoke else []
    for preset, lap in ((HUMANSD_PRESET, "humansd train"), (TEXT_STAGE_PRESET, "humansd train, text stage")):
        shutil.copyfile(preset, work / preset.name)
        subprocess.run(humansd("train", str(work / preset.name), *smoke), check=True)
        print(clock.lap(lap), flush=True)
    decoder = train_vae(preset_options(args.smoke, "embedded_vae_decoder.toml"), work / "vae_decoder.safetensors",
                        progress=lambda step, l1: print(f"decoder step {step} L1 {l1:.4f}", flush=True),
                        init=stages["text"])
    with_decoder(stages["text"], decoder.path, model)
    print(clock.lap("vae decoder"), flush=True)
    metrics = evaluate(model, vae.scale_factor)
    metrics["stage_demo"] = {name: demo_score(HumanSDPipeline.from_checkpoint(path)) for name, path in stages.items()}
    print(clock.lap("evaluate"), flush=True)
    metrics.update(vae_psnr={"scenes": round(vae.psnr_scenes, 2), "skeletons": round(vae.psnr_skeletons, 2),
                             "decoder_stage_scenes": round(decoder.psnr_scenes, 2),
                             "decoder_stage_skeletons": round(decoder.psnr_skeletons, 2)},
                   times=clock.rows, total_cpu_s=round(sum(r["cpu_s"] for r in clock.rows.values()), 1),
                   model_bytes=model.stat().st_size)
    write_json(work / "metrics.json", metrics)
    print(json.dumps(metrics, indent=1))
    if args.install:
        install(model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
