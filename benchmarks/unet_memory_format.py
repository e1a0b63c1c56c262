"""UNet forward time, contiguous (NCHW) vs channels-last, measured side by side.

    python -m benchmarks.unet_memory_format [--config sd21_humansd|tiny] [--latent 32] [--dtype float32]

Builds the UNet with the random weights of ``random_state_dict`` (those of the test
files), checks the output is finite, then times ``--repeats`` forward passes in
each memory format, alternating, and prints the ratio. Uses CUDA when available.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from humansd_core.models.checkpoint import UNET_PREFIX, random_state_dict  # noqa: E402
from humansd_core.models.configs import named_config  # noqa: E402
from humansd_core.models.unet import UNetModel  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="sd21_humansd")
    parser.add_argument("--latent", type=int, default=32, help="latent side (image side / 8)")
    parser.add_argument("--batch", type=int, default=2, help="2 = one CFG pair")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = named_config(args.config)

    state = {k[len(UNET_PREFIX):]: v for k, v in random_state_dict(config, dtype).items() if k.startswith(UNET_PREFIX)}
    with torch.device("meta"):
        unet = UNetModel(config.unet)
    unet.load_state_dict(state, assign=True)
    del state
    unet = unet.to(device).eval()

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, config.unet.in_channels, args.latent, args.latent, generator=gen).to(device, dtype)
    t = torch.tensor([500] * args.batch, device=device)
    ctx = torch.randn(args.batch, 77, config.unet.context_dim, generator=gen).to(device, dtype)

    def run(channels_last: bool) -> float:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        unet.to(memory_format=fmt)
        inp = x.contiguous(memory_format=fmt)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            out = unet(inp, t, ctx)
        if device == "cuda":
            torch.cuda.synchronize()
        run.out = out  # type: ignore[attr-defined]
        return time.perf_counter() - start

    run(False)  # warm-up
    ref = run.out.float()  # type: ignore[attr-defined]
    print(f"{args.config} UNet on {device} {args.dtype}, x {list(x.shape)}: "
          f"output finite={bool(torch.isfinite(ref).all())},"
          f" std {ref.std():.3f}")
    run(True)
    diff = (run.out.float() - ref).abs().max().item()  # type: ignore[attr-defined]
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeats):
        for channels_last in (False, True):
            times[channels_last].append(run(channels_last))
    nchw, nhwc = statistics.median(times[False]), statistics.median(times[True])
    print(f"contiguous {nchw:.3f} s, channels-last {nhwc:.3f} s (median of {args.repeats}): "
          f"channels-last / contiguous = {nhwc / nchw:.2f}; max |difference| {diff:.2e}")


if __name__ == "__main__":
    main()
