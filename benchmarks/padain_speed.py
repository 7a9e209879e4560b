"""Cost of Permuted AdaIN: training images per second and peak memory of a CIFAR ResNet-18
on 32x32 inputs with p = 0 (no layer), 0.01 (the paper's) and 1 (fires at every layer).

    python -m benchmarks.padain_speed [--steps 20] [--repeats 3] [--batch-size 128] [--device cuda]

Each measurement runs in its own process (peak memory is its own); a step is forward,
backward and an SGD update on random data, timed after warm-up steps. The runs of the
three settings are interleaved and repeated, and the table gives medians.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from lightning_modules.networks.classifiers import build_classifier


def measure(p: float, steps: int, batch_size: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    network = build_classifier("resnet18", 100, cifar_stem=True, padain_p=p).to(device).train()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9)
    images = torch.randn(batch_size, 3, 32, 32, device=device)
    labels = torch.randint(0, 100, (batch_size,), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(network(images), labels).backward()
        optimizer.step()

    for _ in range(max(2, steps // 5)):  # warm-up
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return {
        "images_per_s": steps * batch_size / seconds,
        "peak_mib": peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--p", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.p is not None:
        print(json.dumps(measure(args.p, args.steps, args.batch_size, torch.device(args.device))))
        return
    memory = "peak GPU MiB" if args.device == "cuda" else "peak RSS MiB"
    print(f"CIFAR ResNet-18, batch {args.batch_size}, 32x32, {args.steps} steps on {args.device}, ", end="")
    print(f"median of {args.repeats} interleaved runs\n")
    print(f"| pAdaIN p | images/s | relative to p=0 | {memory} |\n|---|---|---|---|")
    runs: dict[float, list[dict]] = {p: [] for p in (0.0, 0.01, 1.0)}
    for _ in range(args.repeats):  # interleaved, so that drifts of the machine hit every p alike
        for p in runs:
            command = [sys.executable, "-m", "benchmarks.padain_speed", "--p", str(p), "--steps", str(args.steps)]
            command += ["--batch-size", str(args.batch_size), "--device", args.device]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            runs[p].append(json.loads(output.splitlines()[-1]))
    baseline = statistics.median(r["images_per_s"] for r in runs[0.0])
    for p, results in runs.items():
        speed = statistics.median(r["images_per_s"] for r in results)
        peak = statistics.median(r["peak_mib"] for r in results)
        print(f"| {p} | {speed:.1f} | {speed / baseline:.3f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
