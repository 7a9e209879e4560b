"""bf16 against fp32: throughput and peak memory of three workloads, each trained in fp32 and in
bf16-mixed (bf16 autocast around the forward passes and losses, fp32 weights and updates).

    python -m benchmarks.bf16_speed [--workloads segmentation did hp_vae_gan] [--device cuda]

- segmentation: DeepLab-v2 ResNet-101 with frozen BatchNorm and pAdaIN p = 0.01 (the source-only
  stage), batch 2 at 1280x720 on a GPU, 320x180 on a CPU; SGD steps on random data.
- did: domain intersection/difference under the Trainer at 128x128, batch 32 + 32 (the official
  recipe) on a GPU, 8 + 8 on a CPU.
- hp_vae_gan: HP-VAE-GAN under the Trainer on 13 frames of assets/coffee_pan.mp4, 256 px wide on a
  GPU, 32 on a CPU; the finest level's iterations (the run trains every level first).

Each (workload, precision) runs in its own process, so that peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from benchmarks import disentangle_speed, hp_vae_gan_speed, padain_speed
from benchmarks.child import measure_in_child, peak_memory_mib
from benchmarks.plain_singan import timed
from benchmarks.singan_speed import device_name

PRECISIONS = ("32-true", "bf16-mixed")
SETTINGS = {  # per workload and device type: what the table's "setting" column says
    "segmentation": {"cuda": "batch 2, 1280x720", "cpu": "batch 2, 320x180"},
    "did": {"cuda": "128x128, batch 32+32", "cpu": "128x128, batch 8+8"},
    "hp_vae_gan": {"cuda": "13 frames, 256 px wide, finest level", "cpu": "13 frames, 32 px wide, finest level"},
}


def segmentation(device: torch.device, precision: str) -> dict:
    shape = padain_speed.SHAPES["segmentation"][device.type]
    step = padain_speed.build("segmentation", 0.01, 2, shape, device, bf16=precision == "bf16-mixed")
    result = padain_speed.measure(step, 5, 2, device)
    return {"it_per_s": result["images_per_s"] / 2, "peak_mib": result["peak_mib"]}


def did(device: torch.device, precision: str) -> dict:
    iters, batch = 12, 32 if device.type == "cuda" else 8
    data = disentangle_speed.RandomDomains(128, batch)
    seconds = disentangle_speed.train_lightning("did", data, iters, device, timed(device), precision)
    return {"it_per_s": 1 / statistics.median(seconds[iters // 3 :]), "peak_mib": peak_mib(device)}


def hp_vae_gan(device: torch.device, precision: str) -> dict:
    result = hp_vae_gan_speed.run(256 if device.type == "cuda" else 32, 4, device, precision)
    peak = result["peak_gpu_mib"][-1] if result["peak_gpu_mib"] else result["peak_rss_mib"]
    return {"it_per_s": 1000 / result["ms"][-1], "peak_mib": peak}


def peak_mib(device: torch.device) -> float:
    peaks = peak_memory_mib(device)
    return peaks["peak_gpu_mib"] if peaks["peak_gpu_mib"] is not None else peaks["peak_rss_mib"]


WORKLOADS = {"segmentation": segmentation, "did": did, "hp_vae_gan": hp_vae_gan}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", choices=tuple(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--child", choices=PRECISIONS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.child:  # one measurement, as JSON
        print(json.dumps(WORKLOADS[args.workloads[0]](device, args.child)))
        return
    memory = "peak GPU MiB" if device.type == "cuda" else "peak RSS MiB"
    print(f"bf16-mixed against fp32 on {device_name(device)}\n")
    print(f"| workload | setting | fp32 it/s | bf16 it/s | bf16 / fp32 speed | fp32 {memory} | bf16 {memory} |")
    print("|---|---|---|---|---|---|---|")
    for workload in args.workloads:
        fp32, bf16 = (
            measure_in_child("benchmarks.bf16_speed", "--workloads", workload, "--device", args.device, "--child", p)
            for p in PRECISIONS
        )
        print(
            f"| {workload} | {SETTINGS[workload][device.type]} | {fp32['it_per_s']:.3f} | {bf16['it_per_s']:.3f} | "
            f"{bf16['it_per_s'] / fp32['it_per_s']:.2f} | {fp32['peak_mib']:.0f} | {bf16['peak_mib']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
