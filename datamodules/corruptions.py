"""Image corruptions at five severities, for writing CIFAR-C-style test suites.

Each function maps uint8 images [N, H, W, 3] to corrupted uint8 images of the same shape.
The severity parameters grow roughly like those of the CIFAR-10-C benchmark, scaled for
small images; they are not the benchmark's exact values.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter


def _clip(images: np.ndarray) -> np.ndarray:
    return np.clip(images, 0, 255).round().astype(np.uint8)


def gaussian_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1] * 255
    return _clip(images + rng.normal(0, sigma, images.shape))


def shot_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    photons = (500, 250, 100, 75, 50)[severity - 1]
    return _clip(rng.poisson(images / 255.0 * photons) / photons * 255)


def impulse_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    amount = (0.01, 0.02, 0.03, 0.05, 0.07)[severity - 1]
    corrupted = images.copy()
    mask = rng.uniform(size=images.shape) < amount
    corrupted[mask] = rng.choice(np.array([0, 255], dtype=np.uint8), size=int(mask.sum()))
    return corrupted


def _per_image(images: np.ndarray, transform) -> np.ndarray:
    return np.stack([np.asarray(transform(Image.fromarray(image))) for image in images])


def defocus_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius = (0.4, 0.6, 0.8, 1.0, 1.5)[severity - 1]
    return _per_image(images, lambda image: image.filter(ImageFilter.GaussianBlur(radius)))


def brightness(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    shift = (0.1, 0.2, 0.3, 0.4, 0.5)[severity - 1] * 255
    return _clip(images.astype(np.float32) + shift)


def contrast(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    factor = (0.75, 0.5, 0.4, 0.3, 0.15)[severity - 1]
    mean = images.mean(axis=(1, 2, 3), keepdims=True)
    return _clip((images - mean) * factor + mean)


def pixelate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    factor = (0.95, 0.9, 0.85, 0.75, 0.65)[severity - 1]

    def transform(image: Image.Image) -> Image.Image:
        small = image.resize((max(1, round(image.width * factor)),) * 2, Image.BOX)
        return small.resize(image.size, Image.BOX)

    return _per_image(images, transform)


def jpeg_compression(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    quality = (80, 65, 58, 50, 40)[severity - 1]

    def transform(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        return Image.open(buffer).convert("RGB")

    return _per_image(images, transform)


CORRUPTION_FUNCTIONS = {
    function.__name__: function
    for function in (
        gaussian_noise, shot_noise, impulse_noise, defocus_blur, brightness, contrast, pixelate, jpeg_compression,
    )
}  # fmt: skip
