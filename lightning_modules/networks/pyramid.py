"""Per-scale networks of a SinGAN-style pyramid (spec section 1.2).

Both players are five valid 3x3 convolutions (receptive field 11x11). Nothing is
padded inside the networks: the generator zero-pads its input by 5 px so that its
output has the size of the real image at that scale, and the critic returns a
score map 10 px smaller than its input in each direction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.networks.resize import Shape, resize

NUM_LAYERS = 5
PADDING = NUM_LAYERS * (3 - 1) // 2  # valid 3x3 convolutions shrink by 1 px per side each


def scale_width(scale: int, base_width: int = 32, max_width: int = 128) -> int:
    """Channel width at scale `scale` (0 = coarsest): doubles every 4 scales, capped."""
    return min(base_width * 2 ** (scale // 4), max_width)


class ConvBlock(nn.Sequential):
    """Conv2d(3x3, valid) -> BatchNorm2d -> LeakyReLU(0.2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(0.2),
        )


def _body(channels: int, width: int, out_channels: int) -> nn.Sequential:
    """head ConvBlock, three body ConvBlocks, tail 3x3 convolution."""
    blocks = [ConvBlock(channels, width)] + [ConvBlock(width, width) for _ in range(NUM_LAYERS - 2)]
    return nn.Sequential(*blocks, nn.Conv2d(width, out_channels, kernel_size=3))


def init_weights(module: nn.Module) -> None:
    """Conv weights ~ N(0, 0.02); norm weights ~ N(1, 0.02), norm biases 0 (as the official code)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class ScaleGenerator(nn.Module):
    """G_s: refines the upsampled coarser image `prev` given noise, residually.

    output = tanh(f(pad(noise + prev))) + prev, where the noise is already scaled by
    the scale's amplitude sigma_s.
    """

    def __init__(self, width: int, channels: int = 3) -> None:
        super().__init__()
        self.body = _body(channels, width, channels)
        init_weights(self)

    def forward(self, noise: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        # noise, prev: [B, C, H, W] -> [B, C, H, W]
        residual = torch.tanh(self.body(F.pad(noise + prev, [PADDING] * 4)))
        return residual + prev


class PatchCritic(nn.Module):
    """D_s: a Markovian WGAN critic; returns a score map [B, 1, H - 10, W - 10]."""

    def __init__(self, width: int, channels: int = 3) -> None:
        super().__init__()
        self.body = _body(channels, width, 1)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


def coarsest_noise(batch: int, shape: Shape, generator: torch.Generator | None) -> torch.Tensor:
    """Noise of the coarsest scale [B, 3, H, W]: single-channel Gaussian replicated to RGB."""
    device = generator.device if generator is not None else None
    return torch.randn(batch, 1, *shape, generator=generator, device=device).expand(-1, 3, -1, -1).contiguous()


def scale_noise(scale: int, batch: int, shape: Shape, generator: torch.Generator) -> torch.Tensor:
    """Unit Gaussian noise [B, 3, H, W] for `scale` (grayscale at the coarsest scale), on the generator's device."""
    if scale == 0:
        return coarsest_noise(batch, shape, generator)
    return torch.randn(batch, 3, *shape, generator=generator, device=generator.device)


def run_pyramid(
    generators: Sequence[nn.Module],
    inputs: list[torch.Tensor],
    shapes: list[Shape],
    first_scale: int = 0,
    prev: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run G_first .. G_{first+len(inputs)-1}; `inputs[i]` is the already-scaled noise of that scale.

    `prev` is the image entering the first scale (zeros at scale 0, or an injected image);
    between scales each output is resized to the next scale's shape.
    """
    x = prev if prev is not None else torch.zeros_like(inputs[0])
    for offset, noise in enumerate(inputs):
        scale = first_scale + offset
        if offset > 0:
            x = resize(x, shapes[scale])
        x = generators[scale](noise, x)
    return x


@contextmanager
def eval_mode(modules: nn.Module) -> Iterator[None]:
    """Put `modules` (and their children) in eval mode, restoring each one's mode afterwards."""
    modes = [(module, module.training) for module in modules.modules()]
    modules.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.train(mode)
