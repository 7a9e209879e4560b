"""AugMix (Hendrycks et al., ICLR 2020), the augmentation of the pAdaIN CIFAR-100-C recipe
(`corruption/augmentations.py` and `corruption/cifar.py` of onuriel/PermutedAdaIN).

Each training image yields three views: the clean image and two AugMix mixtures. A
mixture blends `width` chains of 1-3 random operations with Dirichlet(alpha) weights and
mixes the result with the clean image with a Beta(alpha, alpha) weight. The operations
leave out those that overlap the CIFAR-C corruptions (colour, contrast, brightness,
sharpness), as AugMix's default does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset


def _level(severity: int, maximum: float, rng: np.random.Generator) -> float:
    """A strength in [0.01, severity / 10] of `maximum`, as AugMix samples it (`float_parameter`)."""
    return rng.uniform(0.1, severity) * maximum / 10


def _int_level(severity: int, maximum: float, rng: np.random.Generator) -> int:
    """`_level` truncated to an integer, as the official `int_parameter` does: whole degrees for
    rotate, whole pixels for translate, whole bits and grey levels for posterize and solarize."""
    return int(_level(severity, maximum, rng))


def _signed(value: float, rng: np.random.Generator) -> float:
    """-value with probability 1/2 (the official draw: negative when uniform() > 0.5)."""
    return -value if rng.uniform() > 0.5 else value


def autocontrast(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    return ImageOps.autocontrast(image)


def equalize(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    return ImageOps.equalize(image)


def posterize(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    return ImageOps.posterize(image, 4 - _int_level(severity, 4, rng))


def rotate(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    return image.rotate(_signed(_int_level(severity, 30, rng), rng), resample=Image.BILINEAR)


def solarize(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    return ImageOps.solarize(image, 256 - _int_level(severity, 256, rng))


def _affine(image: Image.Image, matrix: tuple) -> Image.Image:
    return image.transform(image.size, Image.AFFINE, matrix, resample=Image.BILINEAR)


def shear_x(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    return _affine(image, (1, _signed(_level(severity, 0.3, rng), rng), 0, 0, 1, 0))


def shear_y(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    return _affine(image, (1, 0, 0, _signed(_level(severity, 0.3, rng), rng), 1, 0))


def translate_x(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    return _affine(image, (1, 0, _signed(_int_level(severity, image.width / 3, rng), rng), 0, 1, 0))


def translate_y(image: Image.Image, severity: int, rng: np.random.Generator) -> Image.Image:
    return _affine(image, (1, 0, 0, 0, 1, _signed(_int_level(severity, image.height / 3, rng), rng)))


OPERATIONS = (autocontrast, equalize, posterize, rotate, solarize, shear_x, shear_y, translate_x, translate_y)


def augmix(
    image: Image.Image,
    preprocess: Callable[[Image.Image], torch.Tensor],
    rng: np.random.Generator,
    severity: int = 3,
    width: int = 3,
    depth: int = -1,
    alpha: float = 1.0,
) -> torch.Tensor:
    """One AugMix view of `image`, preprocessed: (1 - m) * x + m * sum_i w_i * chain_i(x)."""
    weights = rng.dirichlet([alpha] * width).astype(np.float32)
    blend = np.float32(rng.beta(alpha, alpha))
    mixture = torch.zeros_like(preprocess(image))
    for weight in weights:
        augmented = image.copy()
        for _ in range(depth if depth > 0 else rng.integers(1, 4)):
            augmented = OPERATIONS[rng.integers(len(OPERATIONS))](augmented, severity, rng)
        mixture += weight * preprocess(augmented)
    return (1 - blend) * preprocess(image) + blend * mixture


class AugMixViews(Dataset):
    """Wraps a dataset of (uint8 image tensor [3, H, W], label) into ((clean, mix_1, mix_2), label).

    `geometric` (crop and flip) is applied first, to all three views alike; `preprocess`
    turns a PIL image into the normalised tensor.
    """

    def __init__(
        self,
        dataset: Dataset,
        geometric: Callable[[torch.Tensor], torch.Tensor],
        preprocess: Callable[[Image.Image], torch.Tensor],
        seed: int = 0,
    ) -> None:
        self.dataset, self.geometric, self.preprocess, self.seed = dataset, geometric, preprocess, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], int]:
        image, label = self.dataset[index]
        rng = np.random.default_rng([self.seed, index, torch.randint(2**31, ()).item()])
        picture = Image.fromarray(self.geometric(image).permute(1, 2, 0).numpy())
        views = (self.preprocess(picture), augmix(picture, self.preprocess, rng), augmix(picture, self.preprocess, rng))
        return views, label
