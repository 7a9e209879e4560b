"""Resampling: the real images' pyramid, and generated images from one scale to the next.

The official SinGAN and structural analogy codes resize through uint8 numpy arrays on the
CPU with a MATLAB-style bicubic kernel (`SinGAN/imresize.py` of tamarott/SinGAN). Here:

- `resize` makes the reals' pyramid and fits user images to a scale: PyTorch's antialiased
  bicubic in float on the tensor's device (a documented deviation: differentiable, no host
  round trip, no quantisation);
- `rescale` carries a generated image to the next scale (and shrinks an injected image)
  as the official code does: the same cubic kernel (Keys, a = -0.5), mirrored borders, a
  scaling by exactly the given factor (1/r between scales, r the pyramid's fitted ratio)
  and a crop of the top-left corner to the target size, with the clamp to [-1, 1] before
  and after that the uint8 round trip does. Only the quantisation to 1/255 steps is left out.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

Shape = tuple[int, int]  # (height, width)
VideoShape = tuple[int, int, int]  # (frames, height, width)


def resize(images: torch.Tensor, shape: Shape) -> torch.Tensor:
    """Resize `images` [B, C, H, W] to `shape` (height, width) with antialiased bicubic."""
    if tuple(images.shape[-2:]) == tuple(shape):
        return images
    return F.interpolate(images, size=tuple(shape), mode="bicubic", antialias=True, align_corners=False)


def keys_cubic(distance: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's "cubic"), support [-2, 2]."""
    x = distance.abs()
    near = (1.5 * x**3 - 2.5 * x**2 + 1) * (x <= 1)
    far = (-0.5 * x**3 + 2.5 * x**2 - 4 * x + 2) * ((x > 1) & (x <= 2))
    return near + far


@functools.lru_cache(maxsize=512)
def resampling_matrix(in_length: int, out_length: int, scale: float) -> torch.Tensor:
    """Weights [out_length, in_length] (float64, CPU) of a cubic resampling by `scale` along one axis.

    Output pixel q samples the input at (q + 0.5) / scale - 0.5, so the output is the input
    resized by exactly `scale` and cropped to `out_length` pixels. When shrinking, the kernel
    is widened by 1 / scale (antialiasing). Taps beyond the border are mirrored (the edge
    pixel repeated: ..., 1, 0 | 0, 1, ...), and each row's weights sum to one.
    """
    centres = (torch.arange(out_length, dtype=torch.float64) + 0.5) / scale - 0.5
    stretch = min(scale, 1.0)  # < 1: antialiasing widens the kernel
    half_width = 2.0 / stretch
    taps = torch.floor(centres - half_width).long()[:, None] + torch.arange(math.ceil(2 * half_width) + 2)
    weights = stretch * keys_cubic(stretch * (centres[:, None] - taps))  # [out, taps]
    weights = weights / weights.sum(dim=1, keepdim=True)
    folded = taps % (2 * in_length)
    inside = torch.where(folded < in_length, folded, 2 * in_length - 1 - folded)
    return torch.zeros(out_length, in_length, dtype=torch.float64).scatter_add_(1, inside, weights)


def rescale(images: torch.Tensor, factor: float, shape: Shape) -> torch.Tensor:
    """The official imresize by `factor`, then the crop to `shape` that follows it in the official code.

    images [B, C, h, w] in (about) [-1, 1] -> [B, C, *shape] in [-1, 1]: clamped, resampled
    with the cubic kernel so that the image is scaled by exactly `factor` (a generated image
    goes to the next scale with factor 1/r), its top-left `shape` kept, and clamped again
    (bicubic overshoot; the official uint8 round trip clips both).
    """
    rows = resampling_matrix(images.shape[-2], shape[0], factor).to(images)  # [H, h]
    columns = resampling_matrix(images.shape[-1], shape[1], factor).to(images)  # [W, w]
    return (rows @ images.clamp(-1, 1) @ columns.t()).clamp(-1, 1)
