"""Small tensor operations that several methods share."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def psnr(images: torch.Tensor, references: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB over the whole tensors; `data_range` 2 for images in [-1, 1]."""
    return 10 * torch.log10(data_range**2 / torch.mean((images - references) ** 2))


def seeded_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per sample, so that a sample depends on its own seed only, not on the
    batch it is drawn in."""
    return [torch.Generator().manual_seed(int(seed)) for seed in seeds]


def draw_per_sample(
    generators: Sequence[torch.Generator], draw: Callable[..., torch.Tensor], *args: object
) -> torch.Tensor:  # fmt: skip
    """The batch of `draw(*args, generator)` (one sample [1, ...] each) of every sample's generator,
    in order: [N, ...]."""
    return torch.cat([draw(*args, generator) for generator in generators])
