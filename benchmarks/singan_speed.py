"""SinGAN speed: milliseconds per iteration at every scale and peak memory, for our
LightningModule under the Trainer and for the same networks and losses in a plain loop.

    python -m benchmarks.singan_speed                      # max_size 250 and 64, auto device
    python -m benchmarks.singan_speed --max-size 64 --iters 20 --device cpu
    python -m benchmarks.singan_speed --adam-implementations default foreach fused   # each against the plain loop

Each (variant, size) runs in its own process so that peak memory is its own. An
iteration is 3 critic and 3 generator steps; the time of one iteration is measured from
the end of the previous one, so it includes data loading and the loop's own overhead.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics

import torch
from lightning.pytorch import Callback, Trainer

from benchmarks.child import measure_in_child
from benchmarks.plain_singan import timed, train_plain
from datamodules.single_image import SingleImageDataModule
from lightning_modules.networks.pyramid import scale_width
from lightning_modules.singan import SinGAN

IMAGE = "assets/hubble_deep_field.jpg"


class IterationClock(Callback):
    def __init__(self, now) -> None:
        self.now, self.times = now, []

    def on_train_start(self, trainer, pl_module) -> None:
        self.last = self.now()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        end = self.now()
        self.times.append((getattr(pl_module, "latest_scale", 0), end - self.last))
        self.last = end


def run_variant(variant: str, max_size: int, iters: int, device: torch.device, adam: str = "default") -> dict:
    data = SingleImageDataModule(IMAGE, max_size=max_size, min_size=25 if max_size >= 100 else 16)
    data.setup("fit")
    now = timed(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if variant == "lightning":
        clock = IterationClock(now)
        trainer = Trainer(
            accelerator=device.type, devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, callbacks=[clock],
        )  # fmt: skip
        trainer.fit(SinGAN(iters_per_scale=iters, adam_implementation=adam), data)
        times = clock.times
    else:
        times, last = [], [now()]

        def record(scale: int) -> None:
            end = now()
            times.append((scale, end - last[0]))
            last[0] = end

        train_plain(data.pyramid, iters, device, record)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    per_scale = {}
    for scale, seconds in times:
        per_scale.setdefault(scale, []).append(seconds)
    return {
        "shapes": data.pyramid_shapes,
        # the first iterations of a scale pay for allocation and kernel selection
        "ms": [1000 * statistics.median(per_scale[s][iters // 4 :]) for s in sorted(per_scale)],
        "peak_gpu_mib": peak / 2**20 if peak is not None else None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def table(max_size: int, ours: dict, plain: dict, device: str, adam: str = "default") -> str:
    memory = "peak_gpu_mib" if ours["peak_gpu_mib"] is not None else "peak_rss_mib"
    lines = [
        f"max_size {max_size} on {device}, ours with adam_implementation={adam}",
        "",
        "| scale | size | width | ours ms/it | plain ms/it | ours/plain |",
        "|---|---|---|---|---|---|",
    ]
    for s, (shape, a, b) in enumerate(zip(ours["shapes"], ours["ms"], plain["ms"])):
        lines.append(f"| {s} | {shape[0]}x{shape[1]} | {scale_width(s)} | {a:.1f} | {b:.1f} | {a / b:.3f} |")
    total_a, total_b = sum(ours["ms"]), sum(plain["ms"])
    lines.append(f"| all | | | {total_a:.1f} | {total_b:.1f} | {total_a / total_b:.3f} |")
    lines.append(f"| {memory} | | | {ours[memory]:.0f} | {plain[memory]:.0f} | {ours[memory] / plain[memory]:.3f} |")
    return "\n".join(lines)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-size", type=int, nargs="+", default=[250, 64])
    parser.add_argument("--iters", type=int, default=12, help="iterations per scale (a quarter are warm-up)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--adam-implementations", nargs="+", default=["default"], help="ours, once with each")
    parser.add_argument("--variant", choices=["lightning", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.variant:  # child process: one measurement, as JSON
        adam = args.adam_implementations[0]
        print(json.dumps(run_variant(args.variant, args.max_size[0], args.iters, device, adam)))
        return
    for max_size in args.max_size:
        settings = ["--max-size", max_size, "--iters", args.iters, "--device", args.device]
        plain = measure_in_child("benchmarks.singan_speed", "--variant", "plain", *settings)
        for adam in args.adam_implementations:
            ours = measure_in_child(
                "benchmarks.singan_speed", "--variant", "lightning", "--adam-implementations", adam, *settings
            )
            print(table(max_size, ours, plain, device_name(device), adam), "\n", flush=True)


if __name__ == "__main__":
    main()
