"""Writers of small datasets in the real on-disk formats, for tests and demos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def pattern_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A structured RGB test image [H, W, 3] uint8: smooth colour gradients plus a few discs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin((x + y) / 6.0)], axis=-1)
    for _ in range(4):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        radius = rng.uniform(0.08, 0.2) * min(height, width)
        image[(y - cy) ** 2 + (x - cx) ** 2 < radius**2] = rng.uniform(0, 1, size=3)
    return (image * 255).round().astype(np.uint8)


def write_image(path: str | Path, array: np.ndarray, **save_kwargs) -> Path:
    """Save an [H, W], [H, W, 3] or [H, W, 4] uint8 array with PIL (format from the suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **save_kwargs)
    return path


def class_pattern_images(labels: np.ndarray, num_classes: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """Learnable images [N, size, size, 3] uint8: each class is a colour and stripe pattern, plus noise.

    The class appearance depends only on `num_classes` (the same in every split); `seed`
    draws the noise.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    palette = np.random.default_rng(num_classes).uniform(0.2, 0.8, size=(num_classes, 3))
    images = np.empty((len(labels), size, size, 3), dtype=np.float32)
    for index, label in enumerate(labels):
        stripes = 0.5 + 0.5 * np.sin((x * np.cos(label) + y * np.sin(label)) * (0.3 + 0.1 * (label % 5)))
        images[index] = palette[label] * (0.6 + 0.4 * stripes[..., None])
    images += rng.normal(0, 0.05, size=images.shape)
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8)


def write_cifar(root: str | Path, dataset: str = "cifar10", train: int = 100, test: int = 50, seed: int = 0) -> Path:
    """Write a tiny, learnable CIFAR-10/100 in torchvision's python-pickle layout under `root`."""
    num_classes = 10 if dataset == "cifar10" else 100
    rng = np.random.default_rng(seed)
    splits = []
    for count, split_seed in ((train, seed), (test, seed + 1)):
        labels = rng.integers(0, num_classes, size=count)
        splits.append((class_pattern_images(labels, num_classes, seed=split_seed), labels))
    return write_cifar_arrays(root, dataset, *splits)


def write_cifar_c(root: str | Path, num_classes: int = 10, per_severity: int = 20, seed: int = 0) -> Path:
    """Write a tiny CIFAR-C-style suite of learnable images under `root` (see write_corruption_suite)."""
    labels = np.random.default_rng(seed).integers(0, num_classes, size=per_severity)
    return write_corruption_suite(root, class_pattern_images(labels, num_classes, seed=seed + 2), labels, seed)


def write_cifar_arrays(root: str | Path, dataset: str, train: tuple, test: tuple) -> Path:
    """Write (images [N, 32, 32, 3] uint8, labels [N]) train/test arrays in torchvision's CIFAR layout."""
    import pickle

    from datamodules.cifar import LAYOUTS

    folder, train_files, test_files, label_key, _ = LAYOUTS[dataset]
    directory = Path(root) / folder
    directory.mkdir(parents=True, exist_ok=True)
    for files, (images, labels) in ((train_files, train), (test_files, test)):
        for name, part in zip(files, np.array_split(np.arange(len(labels)), len(files))):
            batch = {
                b"data": images[part].transpose(0, 3, 1, 2).reshape(len(part), -1),
                label_key: labels[part].tolist(),
            }
            with open(directory / name, "wb") as handle:
                pickle.dump(batch, handle)
    return Path(root)


def write_corruption_suite(root: str | Path, images: np.ndarray, labels: np.ndarray, seed: int = 0) -> Path:
    """Write `<corruption>.npy` (severities 1-5 in blocks) and labels.npy, as CIFAR-10-C lays them out."""
    from datamodules.corruptions import CORRUPTION_FUNCTIONS

    rng = np.random.default_rng(seed)
    directory = Path(root)
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "labels.npy", np.tile(labels, 5))
    for name, corrupt in CORRUPTION_FUNCTIONS.items():
        np.save(directory / f"{name}.npy", np.concatenate([corrupt(images, severity, rng) for severity in range(1, 6)]))
    return directory


def write_image_folders(root: str | Path, labels: np.ndarray, images: np.ndarray, classes: list[str]) -> Path:
    """Write images [N, H, W, 3] uint8 as PNG files in `<root>/<class>/` folders."""
    root = Path(root)
    for index, (image, label) in enumerate(zip(images, labels)):
        write_image(root / classes[label] / f"{index:05d}.png", image)
    return root


def write_imagenet(root: str | Path, num_classes: int = 3, train: int = 24, val: int = 12, seed: int = 0) -> Path:
    """A tiny ImageNet layout (`train/` and `val/` class folders) of learnable 32x32 images."""
    classes = [f"n{index:08d}" for index in range(num_classes)]
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        labels = rng.integers(0, num_classes, size=count)
        write_image_folders(Path(root) / split, labels, class_pattern_images(labels, num_classes, seed=seed), classes)
    return Path(root)


def write_imagenet_c(root: str | Path, val_root: str | Path, corruptions: list[str], seed: int = 0) -> Path:
    """ImageNet-C-style `<corruption>/<severity>/<class>/` folders made from a `val/` class-folder tree."""
    from datamodules.corruptions import CORRUPTION_FUNCTIONS

    rng = np.random.default_rng(seed)
    files = sorted(Path(val_root).glob("*/*.png"))
    images = np.stack([np.asarray(Image.open(path).convert("RGB")) for path in files])
    classes = sorted({path.parent.name for path in files})
    labels = np.array([classes.index(path.parent.name) for path in files])
    for corruption in corruptions:
        for severity in range(1, 6):
            corrupted = CORRUPTION_FUNCTIONS[corruption](images, severity, rng)
            write_image_folders(Path(root) / corruption / str(severity), labels, corrupted, classes)
    return Path(root)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Write a tiny dataset in its real on-disk layout.")
    parser.add_argument("kind", choices=["cifar10", "cifar100", "cifar10-c", "cifar100-c"])
    parser.add_argument("root")
    args = parser.parse_args()
    if args.kind.endswith("-c"):
        write_cifar_c(args.root, num_classes=10 if args.kind == "cifar10-c" else 100)
    else:
        write_cifar(args.root, args.kind)
    print(f"wrote {args.kind} to {args.root}")


ANALOGY_PALETTES = (
    np.array([[0.85, 0.15, 0.15], [0.15, 0.7, 0.2], [0.15, 0.25, 0.85]]),  # red, green, blue
    np.array([[0.95, 0.85, 0.2], [0.55, 0.15, 0.65], [0.2, 0.85, 0.85]]),  # yellow, purple, cyan
)


def structure_map(size: int, seed: int, num_regions: int = 3) -> np.ndarray:
    """A label map [size, size] of `num_regions` regions: a background and discs of two labels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    labels = np.zeros((size, size), dtype=np.int64)
    for index in range(6):
        cy, cx = rng.uniform(0.15, 0.85, size=2) * size
        radius = rng.uniform(0.1, 0.2) * size
        labels[(y - cy) ** 2 + (x - cx) ** 2 < radius**2] = 1 + index % (num_regions - 1)
    return labels


def paint(labels: np.ndarray, palette: np.ndarray, noise: float = 0.03, seed: int = 0) -> np.ndarray:
    """Paint a label map with `palette` [K, 3] (values in [0, 1]) plus Gaussian grain; uint8 [H, W, 3]."""
    image = palette[labels] + np.random.default_rng(seed).normal(0, noise, size=(*labels.shape, 3))
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def write_analogy_pair(directory: str | Path, size: int = 32, seed: int = 0) -> tuple[Path, Path]:
    """Write a.png and b.png: one structure map painted with two palettes (independent grain).

    The known answer of structural analogy: an image of A's kind translated to B keeps its
    regions and takes B's palette; `structure_map(size, seed)` gives the regions.
    """
    labels = structure_map(size, seed)
    paths = [
        write_image(Path(directory) / f"{name}.png", paint(labels, palette, seed=seed + index))
        for index, (name, palette) in enumerate(zip("ab", ANALOGY_PALETTES))
    ]
    return paths[0], paths[1]
