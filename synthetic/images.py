"""Drawn images for tests and demos: a structured pattern, painted label maps, a moving-square clip,
and the writers of single images and clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dfgen.video_files import write_video_file


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


ANALOGY_PALETTES = (
    np.array([[0.85, 0.15, 0.15], [0.15, 0.7, 0.2], [0.15, 0.25, 0.85]]),  # red, green, blue
    np.array([[0.95, 0.85, 0.2], [0.55, 0.15, 0.65], [0.2, 0.85, 0.85]]),  # yellow, purple, cyan
)


def paint(labels: np.ndarray, palette: np.ndarray, noise: float = 0.03, seed: int = 0) -> np.ndarray:
    """Paint a label map with `palette` [K, 3] (values in [0, 1]) plus Gaussian grain; uint8 [H, W, 3]."""
    image = palette[labels] + np.random.default_rng(seed).normal(0, noise, size=(*labels.shape, 3))
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def moving_square_clip(
    num_frames: int = 9, size: tuple[int, int] = (16, 16), square: int = 4, speed: int = 1, seed: int = 0
) -> np.ndarray:
    """A square crossing a still textured background at `speed` px per frame (left to right); uint8 [T, H, W, 3].

    The known motion of the learning tests: the real clip's frame-to-frame change is the
    square's leading and trailing edges only.
    """
    height, width = size
    background = (pattern_image(height, width, seed) * 0.5).astype(np.uint8)  # a dim, structured backdrop
    frames = np.repeat(background[None], num_frames, axis=0)
    top = (height - square) // 2
    for t in range(num_frames):
        left = (t * speed) % max(width - square, 1)
        frames[t, top : top + square, left : left + square] = (255, 220, 40)
    return frames


def write_clip(path: str | Path, frames: np.ndarray, fps: float = 8.0) -> Path:
    """Write uint8 frames [T, H, W, 3] as a video file (by the suffix of `path`) or, without suffix, a frame folder."""
    path = Path(path)
    if path.suffix:
        return write_video_file(path, frames, fps)
    path.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        write_image(path / f"frame_{t:04d}.png", frame)
    return path
