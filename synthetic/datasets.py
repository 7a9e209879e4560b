"""Writers of tiny, learnable classification datasets in their real on-disk layouts: CIFAR-10/100
(torchvision's python pickles), CIFAR-C (.npy per corruption), ImageNet and ImageNet-C (class folders)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.cifar import LAYOUTS
from datamodules.corruptions import CORRUPTION_FUNCTIONS
from synthetic.images import write_image


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
