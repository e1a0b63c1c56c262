"""How much a checkpoint's UNet listens to the background colour its prompt names, side by side.

For ``--count`` synthetic scenes with a plain background (seed ``--seed``, 128 px, never in
the embedded model's training set), at each timestep ``t`` of ``--timesteps``: the scene's
latent noised to ``t`` (one shared noise draw), then the UNet's ε prediction with

* the scene's caption ``c``,
* the same caption naming another background colour ``c'`` (the next free palette colour),
* the empty prompt ``u`` (the unconditional branch).

Printed per ``t``: ``swap/uncond`` = ‖ε(c) − ε(c')‖ / ‖ε(c) − ε(u)‖ (how much of the text's
whole effect the background word carries; 0: the word is ignored), and how far the
predicted clean latent's per-channel mean (the background's colour, mostly) moves when the
word changes, against how far it is from the truth. Then, end to end (DDIM 25, cfg 3, the
demo's settings): each scene generated with ``c`` and with ``c'`` from the same seed, the
fraction whose read background colour (:func:`~humansd_core.synthetic.colour_reading.background_colour`)
changes and the mean absolute RGB change of the border.

Last line: ``swap_over_uncond_t999=<r> swap_over_uncond_t500=<r> background_changed=<f>``.
Usage: ``python -m benchmarks.text_influence [--checkpoint PATH] [--count 8]``.
"""
from __future__ import annotations

import argparse
import re

import torch

from humansd_core.embedded.model import CFG, MAX_PEOPLE, SIZE, STEPS, embedded_model_path
from humansd_core.pipeline import HumanSDPipeline
from humansd_core.sampling.schedule import NoiseSchedule
from humansd_core.synthetic import COLOURS, generate_scene, scene_rng
from humansd_core.synthetic.colour_reading import background_colour, border_pixels, named_background

PLAIN = re.compile(r"plain (\w+) background")


def plain_scenes(seed: int, count: int) -> list:
    """The first ``count`` scenes of ``seed`` whose caption names a plain background."""
    scenes, index = [], 0
    while len(scenes) < count:
        scene = generate_scene(scene_rng(seed, index), SIZE, max_people=MAX_PEOPLE)
        index += 1
        if PLAIN.search(scene.caption):
            scenes.append(scene)
    return scenes


def swapped(caption: str) -> str:
    """``caption`` naming the next palette colour after its background's that no one in it wears."""
    named = named_background(caption)
    order = list(COLOURS)
    for step in range(1, len(order)):
        other = order[(order.index(named) + step) % len(order)]
        if f" {other} shirt" not in caption and f" {other} trousers" not in caption:
            return PLAIN.sub(f"plain {other} background", caption)
    raise ValueError(f"no free colour for {caption!r}")


@torch.no_grad()
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(embedded_model_path()),
                        help="HumanSD checkpoint (default: the embedded model)")
    parser.add_argument("--count", type=int, default=8, help="scenes (default %(default)s)")
    parser.add_argument("--seed", type=int, default=777, help="scene seed stream (default %(default)s)")
    parser.add_argument("--timesteps", type=int, nargs="+", default=[999, 900, 700, 500, 200],
                        help="timesteps of the ε comparison (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = HumanSDPipeline.from_checkpoint(args.checkpoint)
    scenes = plain_scenes(args.seed, args.count)
    captions = [s.caption for s in scenes]
    others = [swapped(c) for c in captions]
    real = torch.stack([torch.from_numpy(s.image).permute(2, 0, 1).float() / 255 for s in scenes])
    x0 = pipe.encode_images(real)  # [N,4,16,16]
    pose = pipe.encode_images(pipe.skeleton_images([s.pose for s in scenes], SIZE, SIZE))
    c, c2, u = pipe.text_encoder(captions), pipe.text_encoder(others), pipe.text_encoder([""]).expand(len(scenes), -1, -1)
    alphas = NoiseSchedule().alphas_cumprod
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    ratios = {}
    for t in args.timesteps:
        a = alphas[t]
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        inp, steps = torch.cat([x_t, pose], 1), torch.full((len(scenes),), t)
        eps = {name: pipe.unet(inp, steps, ctx) for name, ctx in (("c", c), ("c'", c2), ("u", u))}
        ratio = ((eps["c"] - eps["c'"]).flatten(1).norm(dim=1) / (eps["c"] - eps["u"]).flatten(1).norm(dim=1)).mean()
        means = {name: ((x_t - (1 - a).sqrt() * e) / a.sqrt()).mean((2, 3)) for name, e in eps.items()}
        moved = (means["c"] - means["c'"]).abs().mean().item()
        error = (means["c"] - x0.mean((2, 3))).abs().mean().item()
        ratios[t] = ratio.item()
        print(f"t={t:4d}  swap/uncond {ratio.item():.3f}   predicted x0 channel means: moved by the word "
              f"{moved:.3f}, off the truth by {error:.3f}", flush=True)
    seeds = dict(negative="", added_prompt="", steps=STEPS, cfg=CFG, width=SIZE, height=SIZE, progress=False)
    changed, shift = 0, 0.0
    for i, (scene, first, second) in enumerate(zip(scenes, captions, others)):
        one = pipe.generate(scene.pose, first, seed=1234 + i, **seeds).images[0]
        two = pipe.generate(scene.pose, second, seed=1234 + i, **seeds).images[0]
        changed += background_colour(one) != background_colour(two)
        shift += float(abs(border_pixels(one).mean(0) - border_pixels(two).mean(0)).mean()) / len(scenes)
    print(f"end to end ({len(scenes)} scenes, DDIM {STEPS}, cfg {CFG}): read background changed in "
          f"{changed}/{len(scenes)}, border RGB moved {shift:.1f} / 255 on average")
    print(f"swap_over_uncond_t999={ratios.get(999, float('nan')):.3f} swap_over_uncond_t500="
          f"{ratios.get(500, float('nan')):.3f} background_changed={changed / len(scenes):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
