"""Structural analogy speed: milliseconds per iteration at every scale and peak memory at the
official default size (220x220, min_size 18, 11 scales, widths 32-128), and the wall time of
a whole training run of one pair at a small size.

    python -m benchmarks.analogy_speed                         # both, auto device
    python -m benchmarks.analogy_speed --iters 4 --device cpu  # fewer iterations per scale

Each measurement runs in its own process so that peak memory is its own. An iteration is
one critic step and one generator step for both pyramids; its time is measured from the
end of the previous one, so it includes the loop's own overhead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from lightning.pytorch import Trainer

from benchmarks.child import measure_in_child, peak_memory_mib
from benchmarks.plain_singan import timed
from benchmarks.singan_speed import IterationClock, device_name
from datamodules.image_pair import ImagePairDataModule
from lightning_modules.structural_analogy import StructuralAnalogy

PAIR = ("assets/chelsea.png", "assets/coffee.png")
SMALL = {"image_size": 64, "min_size": 18, "iters_per_scale": 200}  # the README's CPU demos use this size


def fit(data: ImagePairDataModule, model: StructuralAnalogy, device: torch.device, callbacks: list) -> None:
    trainer = Trainer(
        accelerator=device.type, devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks,
    )  # fmt: skip
    trainer.fit(model, data)


def per_scale(iters: int, device: torch.device) -> dict:
    data = ImagePairDataModule(*PAIR)  # the official defaults
    now = timed(device)
    clock = IterationClock(now)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fit(data, StructuralAnalogy(iters_per_scale=iters), device, [clock])
    times: dict[int, list[float]] = {}
    for scale, seconds in clock.times:
        times.setdefault(scale, []).append(seconds)
    return {
        "shapes": data.pyramid_shapes,
        # the first iterations of a scale pay for allocation and kernel selection
        "ms": [1000 * statistics.median(times[s][iters // 2 :]) for s in sorted(times)],
        **peak_memory_mib(device),
    }


def whole_run(device: torch.device) -> dict:
    data = ImagePairDataModule(*PAIR, image_size=SMALL["image_size"], min_size=SMALL["min_size"])
    model = StructuralAnalogy(iters_per_scale=SMALL["iters_per_scale"])
    start = time.perf_counter()
    fit(data, model, device, [])
    return {"seconds": time.perf_counter() - start, "scales": len(data.pyramid_shapes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=6, help="iterations per scale (the first half are warm-up)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--part", choices=["per_scale", "whole_run"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.part:  # child process: one measurement, as JSON
        result = per_scale(args.iters, device) if args.part == "per_scale" else whole_run(device)
        print(json.dumps(result))
        return
    results = {}
    for part in ("per_scale", "whole_run"):
        results[part] = measure_in_child(
            "benchmarks.analogy_speed", "--part", part, "--iters", args.iters, "--device", args.device
        )
    scales, run = results["per_scale"], results["whole_run"]
    memory = "peak_gpu_mib" if scales["peak_gpu_mib"] is not None else "peak_rss_mib"
    print(f"structural analogy, 220x220 official defaults, on {device_name(device)}\n")
    print("| scale | size | ms/it |\n|---|---|---|")
    for s, (shape, ms) in enumerate(zip(scales["shapes"], scales["ms"])):
        print(f"| {s} | {shape[0]}x{shape[1]} | {ms:.0f} |")
    print(f"| {memory} | | {scales[memory]:.0f} |")
    print(
        f"\nwhole run at {SMALL['image_size']}x{SMALL['image_size']}, min_size {SMALL['min_size']} "
        f"({run['scales']} scales x {SMALL['iters_per_scale']} iterations): {run['seconds']:.0f} s"
    )


if __name__ == "__main__":
    main()
