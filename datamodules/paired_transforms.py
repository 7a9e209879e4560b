"""Transforms of an image and its label together, as the official segmentation transforms
(`FADA/core/datasets/transform.py`) apply them: resize, random scale and crop, padding, flip,
colour jitter and ImageNet normalisation.

Tensor conventions: an image is float [3, H, W] in [0, 1] while it is transformed, a label int64
[H, W] of train ids; sizes are (width, height), as PIL gives them; randomness comes from `rng`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from dfgen.cityscapes import IGNORE_LABEL

# ImageNet's channel statistics, the normalisation torchvision-pretrained backbones expect
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Size = tuple[int, int]  # (width, height), as PIL gives sizes


def _check_pair(image: torch.Tensor, label: torch.Tensor | None) -> None:
    if label is not None and image.shape[-2:] != label.shape[-2:]:
        raise ValueError(f"image of shape {tuple(image.shape)} and label of shape {tuple(label.shape)} differ in size")


def resize_image(image: torch.Tensor, size: Size) -> torch.Tensor:
    """Image [3, H, W] -> [3, h, w] for size (w, h): bicubic with antialiasing, which is PIL's BICUBIC
    resize, the official transforms' (`Resize`, `RandomScale` of `FADA/core/datasets/transform.py`)."""
    width, height = size
    if image.shape[-2:] == (height, width):
        return image
    return TF.resize(image, [height, width], interpolation=TF.InterpolationMode.BICUBIC, antialias=True).clamp(0, 1)


def resize_label(label: torch.Tensor, size: Size) -> torch.Tensor:
    """Label [H, W] -> [h, w] for size (w, h): nearest neighbour (the source pixel under each
    output pixel's centre), so values are only ever copied."""
    width, height = size
    old_height, old_width = label.shape[-2:]
    if (old_height, old_width) == (height, width):
        return label
    rows = ((torch.arange(height) + 0.5) * (old_height / height)).long().clamp(max=old_height - 1)
    columns = ((torch.arange(width) + 0.5) * (old_width / width)).long().clamp(max=old_width - 1)
    return label[..., rows[:, None], columns[None, :]]


def resize(image: torch.Tensor, label: torch.Tensor, size: Size) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize a pair to size (w, h): the image bilinearly with antialiasing, the label by nearest neighbour."""
    _check_pair(image, label)
    return resize_image(image, size), resize_label(label, size)


def _uniform(low: float, high: float, rng: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=rng))


def random_scale_crop(
    image: torch.Tensor, label: torch.Tensor, scale_range: tuple[float, float], crop: Size, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The official `RandomScale` then `RandomCrop(pad_if_needed=True)` (`FADA/core/datasets/transform.py`).

    The pair [3, H, W], [H, W] is scaled by s ~ U(scale_range) relative to its own size, to
    (int(W * s), int(H * s)), padded where it is smaller than the crop (see `pad_to_crop`), and
    cropped at a uniformly random place to (w, h) = `crop`. Returns image [3, h, w], label [h, w].
    """
    _check_pair(image, label)
    height, width = image.shape[-2:]
    scale = _uniform(*scale_range, rng)
    image, label = resize(image, label, (max(int(width * scale), 1), max(int(height * scale), 1)))
    image, label = pad_to_crop(image, label, crop)
    crop_width, crop_height = crop
    top = int(torch.randint(image.shape[-2] - crop_height + 1, (), generator=rng))
    left = int(torch.randint(image.shape[-1] - crop_width + 1, (), generator=rng))
    return (
        image[:, top : top + crop_height, left : left + crop_width],
        label[top : top + crop_height, left : left + crop_width],
    )


def pad_to_crop(image: torch.Tensor, label: torch.Tensor, crop: Size) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a pair narrower (shorter) than the crop (w, h) by the shortfall on BOTH sides, the image
    with 0 and the label with 255 (ignored): the official RandomCrop's pad_if_needed, which passes
    torchvision's pad a (left/right, top/bottom) pair."""
    crop_width, crop_height = crop
    pad_width, pad_height = max(crop_width - image.shape[-1], 0), max(crop_height - image.shape[-2], 0)
    if not (pad_width or pad_height):
        return image, label
    padding = (pad_width, pad_width, pad_height, pad_height)
    return F.pad(image, padding, value=0.0), F.pad(label, padding, value=IGNORE_LABEL)


def random_flip(
    image: torch.Tensor, label: torch.Tensor | None, rng: torch.Generator, probability: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Flip the image (and the label, when given) horizontally with `probability`."""
    _check_pair(image, label)
    if float(torch.rand((), generator=rng)) < probability:
        return image.flip(-1), None if label is None else label.flip(-1)
    return image, label


def check_jitter_strength(strength: Sequence[float]) -> None:
    """ValueError unless `strength` is (brightness, contrast, saturation, hue), each >= 0, hue <= 0.5."""
    if len(strength) != 4 or min(strength) < 0 or strength[3] > 0.5:
        raise ValueError(
            f"jitter strengths {tuple(strength)}; expected (brightness, contrast, saturation, hue), "
            "each at least 0 and hue at most 0.5"
        )


def colour_jitter(
    image: torch.Tensor, brightness: float, contrast: float, saturation: float, hue: float, rng: torch.Generator
) -> torch.Tensor:
    """Random brightness, contrast and saturation factors from U(max(0, 1 - s), 1 + s) and a hue
    shift from U(-hue, hue) (hue <= 0.5), applied in a random order to an image [3, H, W] in [0, 1]."""
    check_jitter_strength((brightness, contrast, saturation, hue))
    factors = [_uniform(max(0.0, 1 - s), 1 + s, rng) for s in (brightness, contrast, saturation)]
    shift = _uniform(-hue, hue, rng)
    operations = (
        lambda x: TF.adjust_brightness(x, factors[0]),
        lambda x: TF.adjust_contrast(x, factors[1]),
        lambda x: TF.adjust_saturation(x, factors[2]),
        lambda x: TF.adjust_hue(x, shift),
    )
    for index in torch.randperm(len(operations), generator=rng).tolist():
        image = operations[index](image)
    return image.clamp(0, 1)


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """An image (or batch) in [0, 1] -> ImageNet mean/std normalised."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype)[:, None, None]
    return (image - mean) / std
