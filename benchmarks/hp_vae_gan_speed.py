"""HP-VAE-GAN speed: milliseconds per iteration and peak memory at every level, for our
LightningModule under the Trainer, on the example clip.

    python -m benchmarks.hp_vae_gan_speed                    # the paper's size (256 px wide) and 64 px, on a GPU
    python -m benchmarks.hp_vae_gan_speed --max-width 32 --iters 8 --device cpu

The paper's setting: 13 frames, 10 levels, M = 3 VAE levels, 64 channels, 128-d latent.
Each size runs in its own process so that peak memory is its own. A VAE iteration is one
VAE update; a GAN iteration one critic and one generator update. The time of an iteration
is measured from the end of the previous one (data loading and the loop included); the
first quarter of each level's iterations is warm-up and left out of the median. On CPU the
default sizes are 64 and 32 px wide: the paper's size takes minutes per iteration there.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics

import torch
from lightning.pytorch import Callback, Trainer

from benchmarks.child import measure_in_child
from benchmarks.plain_singan import timed
from benchmarks.singan_speed import device_name
from datamodules.single_video import SingleVideoDataModule
from lightning_modules.hp_vae_gan import HPVAEGAN

CLIP = "assets/coffee_pan.mp4"


class LevelClock(Callback):
    """Per-level iteration times and peak GPU memory (reset at each level's first iteration)."""

    def __init__(self, now, device: torch.device) -> None:
        self.now, self.device = now, device
        self.times: dict[int, list[float]] = {}
        self.peaks: dict[int, int] = {}

    def on_train_start(self, trainer, pl_module) -> None:
        self.last = self.now()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.device.type == "cuda" and pl_module.iteration % pl_module.hparams.iters_per_scale == 0:
            torch.cuda.reset_peak_memory_stats(self.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        end = self.now()
        level = pl_module.latest_scale
        self.times.setdefault(level, []).append(end - self.last)
        if self.device.type == "cuda":
            self.peaks[level] = torch.cuda.max_memory_allocated(self.device)
        self.last = end


def run(max_width: int, iters: int, device: torch.device, precision: str = "32-true") -> dict:
    data = SingleVideoDataModule(CLIP, num_frames=13, max_width=max_width, min_width=min(32, max_width // 2))
    clock = LevelClock(timed(device), device)
    trainer = Trainer(
        accelerator=device.type, devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[clock], precision=precision,
    )  # fmt: skip
    model = HPVAEGAN(iters_per_scale=iters)
    trainer.fit(model, data)
    return {
        "shapes": data.pyramid_shapes,
        "kinds": ["VAE" if s < model.num_vae_levels else "GAN" for s in range(len(data.pyramid_shapes))],
        "ms": [1000 * statistics.median(clock.times[s][iters // 4 :]) for s in sorted(clock.times)],
        "peak_gpu_mib": [clock.peaks[s] / 2**20 for s in sorted(clock.peaks)] or None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def table(max_width: int, result: dict, device: str) -> str:
    gpu = result["peak_gpu_mib"]
    lines = [
        f"HP-VAE-GAN, 13 frames, {max_width} px wide, on {device}",
        "",
        "| level | kind | frames x height x width | ms/it | peak GPU MiB |",
        "|---|---|---|---|---|",
    ]
    for s, (shape, kind, ms) in enumerate(zip(result["shapes"], result["kinds"], result["ms"])):
        peak = f"{gpu[s]:.0f}" if gpu else "-"
        lines.append(f"| {s} | {kind} | {'x'.join(map(str, shape))} | {ms:.1f} | {peak} |")
    lines.append(f"| all | | | {sum(result['ms']):.1f} | peak RSS {result['peak_rss_mib']:.0f} MiB |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cuda = torch.cuda.is_available()
    parser.add_argument("--max-width", type=int, nargs="+", default=[256, 64] if cuda else [64, 32])
    parser.add_argument("--iters", type=int, default=8, help="iterations per level (a quarter are warm-up)")
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.child:  # one measurement, as JSON
        print(json.dumps(run(args.max_width[0], args.iters, device)))
        return
    for max_width in args.max_width:
        result = measure_in_child(
            "benchmarks.hp_vae_gan_speed", "--child", "--max-width", max_width, "--iters", args.iters,
            "--device", args.device,
        )  # fmt: skip
        print(table(max_width, result, device_name(device)), "\n", flush=True)


if __name__ == "__main__":
    main()
