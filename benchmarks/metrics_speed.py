"""FID + KID speed: images per second and peak memory, ours (the FIDKID callback under
`Trainer.validate`) against calling torch-fidelity directly on the same images.

    python -m benchmarks.metrics_speed                            # 1k images per side; 1k, 10k and 50k on a GPU
    python -m benchmarks.metrics_speed --samples 1000 10000 --device cpu

Both use the same Inception-v3 architecture and read the images through the same loader
settings (torch-fidelity's: up to 4 worker processes, pinned memory on a GPU), so that the
comparison is of the metric pipelines. Speed does not depend on the weights, so
when the standard weights file is absent a randomly initialised one is written to a
temporary file and used by both sides. Each measurement runs in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DataLoader, Dataset

from benchmarks.child import measure_in_child
from callbacks.fid_kid import FIDKID
from callbacks.inception import inception_weights


class RandomImages(Dataset):
    """`count` deterministic uint8 images [3, size, size]; index i is always the same image."""

    def __init__(self, count: int, size: int, offset: int) -> None:
        self.count, self.size, self.offset = count, size, offset

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.offset + index)
        return torch.randint(0, 256, (3, self.size, self.size), generator=generator, dtype=torch.uint8)


class Pairs(Dataset):
    def __init__(self, real: Dataset, generated: Dataset) -> None:
        self.real, self.generated = real, generated

    def __len__(self) -> int:
        return len(self.real)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.real[index], self.generated[index]


class PairedImages(LightningModule):
    """Hands the FIDKID callback its batch as (real, generated), in [-1, 1]."""

    def validation_step(self, batch, batch_idx) -> None:
        return None

    def fidelity_images(self, batch, batch_idx):
        real, generated = batch
        return real.float() / 127.5 - 1, generated.float() / 127.5 - 1


def weights_file(directory: str) -> str:
    """The standard Inception weights if cached, else random weights of the same network."""
    try:
        return str(inception_weights(download=False))
    except FileNotFoundError:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        with (
            mock.patch("torch.load", return_value={}),
            mock.patch.object(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None),
        ):
            network = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path="-")
        path = Path(directory) / "random-inception.pth"
        torch.save(network.state_dict(), path)
        return str(path)


def measure(variant: str, samples: int, size: int, batch_size: int, device: str, weights: str) -> dict:
    real, generated = RandomImages(samples, size, 0), RandomImages(samples, size, 10**6)
    subset = min(1000, samples)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    if variant == "ours":
        callback = FIDKID(weights_path=weights, max_samples=samples, kid_subset_size=subset)
        trainer = Trainer(
            accelerator="gpu" if device == "cuda" else "cpu", devices=1, logger=False, callbacks=[callback],
            enable_progress_bar=False, enable_model_summary=False,
        )  # fmt: skip
        # torch-fidelity's own loader settings for a Dataset input
        loader = DataLoader(
            Pairs(real, generated), batch_size=batch_size, num_workers=min(4, 2 * os.cpu_count()),
            pin_memory=device == "cuda",
        )  # fmt: skip
        trainer.validate(PairedImages(), loader)
        fid = callback.last["val/fid"]
    else:
        import torch_fidelity

        result = torch_fidelity.calculate_metrics(
            input1=real, input2=generated, cuda=device == "cuda", fid=True, kid=True, kid_subset_size=subset,
            batch_size=batch_size, feature_extractor_weights_path=weights, cache=False, verbose=False,
        )  # fmt: skip
        fid = result["frechet_inception_distance"]
    seconds = time.perf_counter() - start
    return {
        "images_per_s": 2 * samples / seconds,
        "seconds": seconds,
        "fid": fid,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, nargs="+", help="images per side (default: 1000; 1k, 10k, 50k on a GPU)")
    parser.add_argument("--size", type=int, default=64, help="side of the images before Inception's resize to 299")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variant", choices=["ours", "torch-fidelity"], help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        result = measure(args.variant, args.samples[0], args.size, args.batch_size, args.device, args.weights)
        print(json.dumps(result))
        return
    samples_per_side = args.samples or ([1000, 10000, 50000] if args.device == "cuda" else [1000])
    memory = "peak_gpu_mib" if args.device == "cuda" else "peak_rss_mib"
    print(f"FID + KID on {args.device}, {args.size}x{args.size} uint8 images, batch {args.batch_size}\n")
    header = ["images per side", "ours img/s", "torch-fidelity img/s", f"ours {memory}", f"torch-fidelity {memory}"]
    print("| " + " | ".join([*header, "FID ours / theirs"]) + " |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as directory:
        weights = weights_file(directory)
        for samples in samples_per_side:
            results = {}
            for variant in ("torch-fidelity", "ours"):
                results[variant] = measure_in_child(
                    "benchmarks.metrics_speed", "--variant", variant, "--weights", weights, "--samples", samples,
                    "--size", args.size, "--batch-size", args.batch_size, "--device", args.device,
                )  # fmt: skip
            ours, theirs = results["ours"], results["torch-fidelity"]
            print(
                f"| {samples} | {ours['images_per_s']:.1f} | {theirs['images_per_s']:.1f} "
                f"| {ours[memory]:.0f} | {theirs[memory]:.0f} | {ours['fid']:.4g} / {theirs['fid']:.4g} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
