"""pAdaIN and a change of style, on real handwritten digits, in well under an hour of CPU.

    python -m benchmarks.padain_digits [--seeds 0 1 2] [--p 0 0.01 0.1] [--epochs 10] [--threads 1]

pAdaIN's claim (Nuriel et al., CVPR 2021) is that swapping the channel statistics of samples
during training makes a network lean less on global statistics (colour, contrast, texture) and
more on shape, and so makes it more robust when the style of the test images changes. Here a
CIFAR ResNet-20 (19 pAdaIN points) learns scikit-learn's handwritten digits (the 1437 training
scans of the fixed stratified split, `datamodules.digits.handwritten_digits`: light strokes on
black, as RGB) through the real CLI and `configs/padain/digits.yaml`, and is tested on the 360
test digits as they are ("clean") and rendered in four styles it never saw:

    colour        a random stroke colour on a random background colour, per image
    low_contrast  grey strokes of 30 % contrast on a mid-grey background
    inverted      dark strokes on white
    textured      the strokes blended into crops of real photographs (`textured_digits`, MNIST-M style)

for every p and seed; the table gives mean ± std over seeds of each accuracy and of the mean over
the four styles ("shifted"), with the CPU seconds of a training epoch. A run that was interrupted
continues from its `last.ckpt` when the benchmark is started again, and a finished one is only
evaluated, so the CPU seconds are those of the epochs trained by this invocation.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from datamodules.cifar import ImageArray
from datamodules.digits import handwritten_digits, textured_digits
from lightning_modules.cli import build_cli
from synthetic import write_cifar_arrays

CONFIG = "configs/padain/digits.yaml"
STYLES = ("colour", "low_contrast", "inverted", "textured")


def rgb(strokes: np.ndarray) -> np.ndarray:
    """Grey digits [N, 32, 32] uint8 -> [N, 32, 32, 3]."""
    return np.repeat(strokes[..., None], 3, axis=-1)


def colour_style(strokes: np.ndarray, rng: np.random.Generator, min_difference: float = 100.0) -> np.ndarray:
    """Each digit in its own stroke colour on its own background colour, uniform RGB, drawn again until
    the two differ by at least `min_difference` grey levels on average over the channels."""
    images = np.empty((*strokes.shape, 3), dtype=np.uint8)
    for index, stroke in enumerate(strokes.astype(np.float32) / 255):
        background, ink = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        while np.abs(ink - background).mean() < min_difference:
            background, ink = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        images[index] = np.round(background + (ink - background) * stroke[..., None]).astype(np.uint8)
    return images


def styled_test_sets(seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The test digits [360, 32, 32, 3] uint8 clean and in every style of STYLES, and their labels."""
    strokes, labels = handwritten_digits("test")
    sets = {
        "clean": rgb(strokes),
        "colour": colour_style(strokes, np.random.default_rng(seed)),
        "low_contrast": rgb(np.round(0.35 * 255 + 0.3 * strokes.astype(np.float32)).astype(np.uint8)),
        "inverted": rgb(255 - strokes),
        "textured": textured_digits("test")[0],  # the same digits, in the same order
    }
    return sets, labels


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def accuracy(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, transform) -> float:
    """Top-1 accuracy (%) of `model` in eval mode on uint8 images [N, 32, 32, 3]."""
    loader = DataLoader(ImageArray(images, labels, transform), batch_size=256)
    correct = 0
    model.eval()
    with torch.no_grad():
        for batch, targets in loader:
            correct += int((model(batch).argmax(dim=1) == targets).sum())
    return 100 * correct / len(labels)


def run(root: Path, seed: int, p: float, epochs: int, test_sets: dict[str, np.ndarray], labels: np.ndarray) -> dict:
    """Train one model through the CLI, or continue it from its `last.ckpt` (a finished run is only
    evaluated); its accuracy (%) on every test set, and the CPU seconds and epochs of this training."""
    run_dir = root / f"p{p}_seed{seed}"
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    resume = checkpoint.exists()
    start_step = torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"] if resume else 0
    start = cpu_seconds()
    cli = build_cli([
        "fit", "--config", CONFIG, f"--data.data_dir={root / 'data'}", f"--seed_everything={seed}",
        f"--model.padain_p={p}", f"--trainer.max_epochs={epochs}", f"--trainer.default_root_dir={run_dir}",
        *([f"--ckpt_path={checkpoint}"] if resume else []),
    ])  # fmt: skip
    transform = cli.datamodule.test_transform
    result = {name: accuracy(cli.model, images, labels, transform) for name, images in test_sets.items()}
    result["shifted"] = statistics.mean(result[style] for style in STYLES)
    result["cpu_s"] = cpu_seconds() - start
    result["epochs_trained"] = (cli.trainer.global_step - start_step) / cli.trainer.num_training_batches
    return result


def cell(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {spread:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--p", type=float, nargs="+", default=[0.0, 0.01, 0.1])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: least CPU time on a shared machine)")
    parser.add_argument("--root", type=Path, default=Path("runs/padain_digits"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_strokes, train_labels = handwritten_digits("train")
    test_sets, test_labels = styled_test_sets()
    train, test = (rgb(train_strokes), train_labels), (test_sets["clean"], test_labels)
    write_cifar_arrays(args.root / "data", "cifar10", train, test)
    results = {p: [run(args.root, seed, p, args.epochs, test_sets, test_labels) for seed in args.seeds] for p in args.p}
    (args.root / "results.json").write_text(json.dumps(results, indent=1))
    columns = ["clean", *STYLES, "shifted"]
    print(f"\n{len(args.seeds)} seeds, {args.epochs} epochs, accuracy (%) mean ± std\n")
    print(f"| pAdaIN p | {' | '.join(columns)} | CPU s / epoch |\n|---|{'---|' * (len(columns) + 1)}")
    for p, runs in results.items():
        cells = [cell([r[name] for r in runs]) for name in columns]
        trained = [r for r in runs if r["epochs_trained"] > 0]
        epoch_cpu = sum(r["cpu_s"] for r in trained) / sum(r["epochs_trained"] for r in trained) if trained else None
        print(f"| {p} | {' | '.join(cells)} | {'-' if epoch_cpu is None else f'{epoch_cpu:.0f}'} |")


if __name__ == "__main__":
    main()
