"""Resampling between pyramid scales, on the tensor's own device.

The official SinGAN code resizes through uint8 numpy arrays on the CPU with a
MATLAB-style bicubic kernel. We resample in float on whatever device the tensor
lives on, with PyTorch's antialiased bicubic filter (antialiasing only acts when
shrinking). This is a documented deviation: it is differentiable, keeps the
sub-quantisation detail, and removes a host round trip from every training step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Shape = tuple[int, int]


def resize(images: torch.Tensor, shape: Shape) -> torch.Tensor:
    """Resize `images` [B, C, H, W] to `shape` (height, width) with antialiased bicubic."""
    if tuple(images.shape[-2:]) == tuple(shape):
        return images
    return F.interpolate(images, size=tuple(shape), mode="bicubic", antialias=True, align_corners=False)
