"""One-shot translation speed: iterations per second and peak memory under the Lightning Trainer,
for the digits networks (phase 1 at batch 64, phase 2 at batch 1) and the ResNet recipe at
256x256 (phase 1 and phase 2, batch 1, facades split: 12 residual blocks at 256 channels).

    python -m benchmarks.ost_speed [--iters 30] [--device cuda]

Each measurement runs in its own process so that peak memory is its own; the rate is the
median over the iterations after a third of warm-up, measured end to end (data included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from benchmarks.child import measure_in_child, peak_memory_mib
from benchmarks.plain_singan import timed
from benchmarks.singan_speed import IterationClock, device_name
from datamodules.digits import OneShotDigitsDataModule
from datamodules.unpaired_folders import UnpairedFoldersDataModule
from lightning_modules.one_shot_translation import OneShotTranslation
from synthetic import write_image

CASES = ("digits_phase1", "digits_phase2", "resnet_phase1", "resnet_phase2")


def folders(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split in ("trainA", "trainB", "testA", "testB"):
        for index in range(2):
            write_image(root / split / f"{index}.png", rng.integers(0, 256, size=(286, 286, 3), dtype=np.uint8))
    return root


def run_case(case: str, iters: int, device: torch.device, work: Path) -> dict:
    network, phase = case.split("_phase")
    phase = int(phase)
    checkpoint = work / f"{network}_phase1.ckpt"
    if network == "digits":
        data = OneShotDigitsDataModule("handwritten", "textured", phase=phase, num_eval=16)
    else:
        data = UnpairedFoldersDataModule(str(folders(work / "data")), phase=phase, num_eval=1, num_references=1)
    kwargs = {
        "channels_a": 1 if network == "digits" else 3,
        "channels_b": 3,
        "pool_size": 50 if network == "resnet" else 0,
    }
    model = OneShotTranslation(
        network=network, phase=phase, iterations=iters, phase_one_checkpoint=str(checkpoint), **kwargs
    )
    now = timed(device)
    clock = IterationClock(now)
    callbacks = [clock] + ([ModelCheckpoint(dirpath=work, filename=checkpoint.stem)] if phase == 1 else [])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer = Trainer(
        accelerator=device.type, devices=1, max_epochs=1, logger=False, limit_val_batches=0, callbacks=callbacks,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=work,
    )  # fmt: skip
    trainer.fit(model, data)
    seconds = [s for _, s in clock.times][iters // 3 :]
    return {
        "it_per_s": 1 / statistics.median(seconds),
        **peak_memory_mib(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.case:  # child process: one measurement, as JSON on the last line
        print(json.dumps(run_case(args.case, args.iters, device, Path(args.work))))
        return
    print(f"one-shot translation on {device_name(device)}\n")
    print("| networks | phase | batch | size | it/s | peak memory (MiB) |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        for case in CASES:  # phase 1 writes the checkpoint that phase 2 loads
            result = measure_in_child(
                "benchmarks.ost_speed", "--case", case, "--work", work, "--iters", args.iters, "--device", args.device
            )
            network, phase = case.split("_phase")
            batch = 64 if case == "digits_phase1" else 1
            size = "32x32" if network == "digits" else "256x256"
            memory = result["peak_gpu_mib"] if result["peak_gpu_mib"] is not None else result["peak_rss_mib"]
            kind = "GPU" if result["peak_gpu_mib"] is not None else "RSS"
            print(f"| {network} | {phase} | {batch} | {size} | {result['it_per_s']:.1f} | {memory:.0f} ({kind}) |")


if __name__ == "__main__":
    main()
