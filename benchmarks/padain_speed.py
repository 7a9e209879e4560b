"""Cost of Permuted AdaIN: training images per second and peak memory, with and without the layer.

    python -m benchmarks.padain_speed [--task classification] [--steps 20] [--repeats 3] [--device cuda]
    python -m benchmarks.padain_speed --task segmentation [--shape 720 1280] [--batch-size 2]
    python -m benchmarks.padain_speed --probabilities 0 0.01 [--threads 1]

classification: a CIFAR ResNet-18 on 32x32 inputs, batch 128, with p = 0 (no layer), 0.01 (the
paper's) and 1 (fires at every layer). segmentation: DeepLab-v2 ResNet-101 with frozen BatchNorm
(the source-only stage), batch 2 (the paper's per-GPU batch) at 1280x720 on a GPU or 320x180 on a
CPU, with p = 0 and 0.01.

Each measurement runs in its own process (peak memory is its own); a step is forward,
backward and an SGD update on random data, timed after warm-up steps. The runs of the
settings are interleaved and repeated, and the table gives medians. Besides images per second
(wall clock), the table gives the process's CPU seconds per step, which a machine shared with
other work inflates much less.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.child import measure_in_child
from lightning_modules.networks.classifiers import build_classifier
from lightning_modules.networks.deeplab import DeepLabV2
from lightning_modules.segmenter import upsample

PROBABILITIES = {"classification": (0.0, 0.01, 1.0), "segmentation": (0.0, 0.01)}
BATCH_SIZES = {"classification": 128, "segmentation": 2}
SHAPES = {  # (height, width)
    "classification": {"cpu": (32, 32), "cuda": (32, 32)},
    "segmentation": {"cpu": (180, 320), "cuda": (720, 1280)},
}


def build(
    task: str, p: float, batch_size: int, shape: tuple[int, int], device: torch.device, bf16: bool = False
) -> Callable[[], None]:
    """One training step of the task's network on fixed random data; inputs are (height, width) `shape`.
    With `bf16` the forward pass and the loss run under bf16 autocast, as `precision=bf16-mixed` runs them."""
    torch.manual_seed(0)
    height, width = shape
    images = torch.randn(batch_size, 3, height, width, device=device)
    if task == "classification":
        network: nn.Module = build_classifier("resnet18", 100, cifar_stem=True, padain_p=p)
        labels = torch.randint(0, 100, (batch_size,), device=device)

        def loss() -> torch.Tensor:
            return F.cross_entropy(network(images), labels)
    else:
        network = DeepLabV2(19, "resnet101", frozen_batch_norm=True, padain_p=p)
        labels = torch.randint(0, 19, (batch_size, height, width), device=device)

        def loss() -> torch.Tensor:
            return F.cross_entropy(upsample(network(images), (height, width)), labels, ignore_index=255)

    network.to(device).train()
    optimizer = torch.optim.SGD([q for q in network.parameters() if q.requires_grad], lr=1e-3, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            value = loss()
        value.backward()
        optimizer.step()

    return step


def measure(step: Callable[[], None], steps: int, batch_size: int, device: torch.device) -> dict:
    for _ in range(max(2, steps // 5)):  # warm-up
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start, cpu_start = time.perf_counter(), cpu_seconds()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return {
        "images_per_s": steps * batch_size / seconds,
        "cpu_s_per_step": cpu / steps,
        "peak_mib": peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=tuple(PROBABILITIES), default="classification")
    parser.add_argument("--steps", type=int, help="timed steps (default: 20 classification, 5 segmentation)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--shape", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--probabilities", type=float, nargs="+", help="the p values (default: the task's)")
    parser.add_argument("--threads", type=int, help="torch CPU threads of each measurement (default: torch's)")
    parser.add_argument("--p", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    steps = args.steps or (20 if args.task == "classification" else 5)
    batch_size = args.batch_size or BATCH_SIZES[args.task]
    shape = tuple(args.shape or SHAPES[args.task][device.type])
    if args.p is not None:
        print(json.dumps(measure(build(args.task, args.p, batch_size, shape, device), steps, batch_size, device)))
        return
    network = "CIFAR ResNet-18" if args.task == "classification" else "DeepLab-v2 ResNet-101, frozen BatchNorm"
    memory = "peak GPU MiB" if device.type == "cuda" else "peak RSS MiB"
    threads = args.threads or torch.get_num_threads()
    print(f"{network}, batch {batch_size}, {shape[1]}x{shape[0]}, {steps} steps on {args.device} ", end="")
    print(f"({threads} threads), median of {args.repeats} interleaved runs\n")
    probabilities = args.probabilities or PROBABILITIES[args.task]
    header = f"| pAdaIN p | images/s | relative to p={probabilities[0]} | CPU s/step | {memory} |"
    print(f"{header}\n|---|---|---|---|---|")
    runs: dict[float, list[dict]] = {p: [] for p in probabilities}
    for _ in range(args.repeats):  # interleaved, so that drifts of the machine hit every p alike
        for p in runs:
            result = measure_in_child(
                "benchmarks.padain_speed", "--task", args.task, "--p", p, "--steps", steps,
                "--batch-size", batch_size, "--device", args.device, "--shape", *shape, "--threads", threads,
            )  # fmt: skip
            runs[p].append(result)
    baseline = statistics.median(r["images_per_s"] for r in runs[probabilities[0]])
    for p, results in runs.items():
        speed = statistics.median(r["images_per_s"] for r in results)
        cpu = statistics.median(r["cpu_s_per_step"] for r in results)
        peak = statistics.median(r["peak_mib"] for r in results)
        print(f"| {p} | {speed:.2f} | {speed / baseline:.3f} | {cpu:.2f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
