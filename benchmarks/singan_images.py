"""SinGAN on K images: one run that trains the K pyramids together against K runs of one image.

    python -m benchmarks.singan_images                         # K = 1, 4, 16 at max_size 64, auto device
    python -m benchmarks.singan_images --max-size 250 --images 1 4 16 50

The images are crops of the photographs in assets/, all resized to one shape. Each K runs in its
own process (peak memory is its own) for `--iters` iterations per scale; the median time of an
iteration at each scale, after a quarter of warm-up, is projected to the paper's 2000 iterations
per scale. K separate runs take K times the one-image run (one after another on the same device),
so their images per hour are the one-image run's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch
from lightning.pytorch import Trainer
from PIL import Image

from benchmarks.child import measure_in_child, peak_memory_mib
from benchmarks.plain_singan import timed
from benchmarks.singan_speed import IterationClock, device_name
from datamodules.single_image import SingleImageDataModule
from lightning_modules.singan import SinGAN

PHOTOS = ("hubble_deep_field.jpg", "chelsea.png", "coffee.png", "brick.png", "gravel.png", "horse.png")
PAPER_ITERS_PER_SCALE = 2000


def write_crops(folder: Path, count: int, shape: tuple[int, int]) -> None:
    """`count` different crops of the photographs, each resized to `shape` (height, width)."""
    for index in range(count):
        photo = Image.open(Path("assets") / PHOTOS[index % len(PHOTOS)]).convert("RGB")
        offset = (index // len(PHOTOS)) * 12
        crop = photo.crop((offset, offset, photo.width - offset, photo.height - offset))
        crop.resize(shape[::-1], Image.BICUBIC).save(
            folder / f"{index:02d}_{Path(PHOTOS[index % len(PHOTOS)]).stem}.png"
        )


def run(num_images: int, max_size: int, iters: int, device: torch.device, adam: str) -> dict:
    shape = (max_size * 3 // 4, max_size)  # a 4:3 landscape, like most of the photographs
    with tempfile.TemporaryDirectory() as folder:
        write_crops(Path(folder), num_images, shape)
        data = SingleImageDataModule(
            folder, image_shape=shape, max_size=max_size, min_size=25 if max_size >= 100 else 16
        )
        clock = IterationClock(timed(device))
        trainer = Trainer(
            accelerator=device.type, devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, callbacks=[clock],
        )  # fmt: skip
        trainer.fit(SinGAN(iters_per_scale=iters, adam_implementation=adam), data)
    per_scale: dict[int, list[float]] = {}
    for scale, seconds in clock.times:
        per_scale.setdefault(scale, []).append(seconds)
    ms = [1000 * statistics.median(per_scale[s][iters // 4 :]) for s in sorted(per_scale)]
    return {"shapes": data.pyramid_shapes, "ms": ms} | peak_memory_mib(device)


def table(results: dict[int, dict], max_size: int, device: str) -> str:
    """One row per K; `results[1]` is the one-image run that K separate runs repeat."""
    one = results[1]
    memory = "peak_gpu_mib" if one["peak_gpu_mib"] is not None else "peak_rss_mib"
    hours_one = sum(one["ms"]) * PAPER_ITERS_PER_SCALE / 3.6e6
    lines = [
        f"max_size {max_size} ({len(one['shapes'])} scales) on {device}; the paper's {PAPER_ITERS_PER_SCALE} "
        "iterations per scale",
        "",
        "| K images | ms/iteration, all scales | one run, hours | images/hour, one run | images/hour, K runs "
        f"| speed-up | {memory} |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, result in sorted(results.items()):
        hours = sum(result["ms"]) * PAPER_ITERS_PER_SCALE / 3.6e6
        lines.append(
            f"| {k} | {sum(result['ms']):.1f} | {hours:.2f} | {k / hours:.2f} | {1 / hours_one:.2f} | "
            f"{k / hours * hours_one:.2f} | {result[memory]:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--max-size", type=int, default=64)
    parser.add_argument("--iters", type=int, default=8, help="iterations per scale (a quarter are warm-up)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--adam-implementation", default="default")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.child:  # one measurement, as JSON
        print(json.dumps(run(args.images[0], args.max_size, args.iters, device, args.adam_implementation)))
        return
    results = {
        k: measure_in_child(
            "benchmarks.singan_images",
            "--child",
            "--images",
            k,
            "--max-size",
            args.max_size,
            "--iters",
            args.iters,
            "--device",
            args.device,
            "--adam-implementation",
            args.adam_implementation,
        )  # fmt: skip
        for k in sorted({1, *args.images})  # the one-image run is the K separate runs' measure
    }
    print(table(results, args.max_size, device_name(device)), flush=True)


if __name__ == "__main__":
    main()
