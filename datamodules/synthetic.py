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
