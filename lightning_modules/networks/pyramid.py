"""Per-scale networks of a SinGAN-style pyramid (`SinGAN/models.py` of tamarott/SinGAN,
`models.py` of rmokady/structural-analogy), and the blocks they share with the 3D networks of
HP-VAE-GAN (networks/video.py): `ConvBlock` and `conv_stack` take the number of spatial dims
(2 for images, 3 for videos).

Both players are five 3x3 convolutions (receptive field 11x11). In SinGAN nothing is
padded inside the networks: the generator zero-pads its input by 5 px so that its
output has the size of the real image at that scale, and the critic returns a score
map 10 px smaller than its input in each direction. Structural analogy's generators
zero-pad every convolution instead ("same" convolutions), and its two finest scales
drop the residual skip.

With `num_models` K, a network runs K independent models of the same shape as one
(networks/grouped.py): inputs and outputs carry the K models' channels one after another
([B, K*3, H, W] images, [B, K, h, w] critic scores), every convolution is grouped and every
normalisation is per channel, so per model. K = 1 is the single network, unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from dfgen.resize import Shape, rescale

NUM_LAYERS = 5
PADDING = NUM_LAYERS * (3 - 1) // 2  # valid 3x3 convolutions shrink by 1 px per side each


def scale_width(scale: int, base_width: int = 32, max_width: int = 128) -> int:
    """Channel width at scale `scale` (0 = coarsest): doubles every 4 scales, capped."""
    return min(base_width * 2 ** (scale // 4), max_width)


NORMS = {
    # name -> normalisation layer per number of spatial dims (2: images, 3: videos)
    "batch": {2: nn.BatchNorm2d, 3: nn.BatchNorm3d},
    # Structural analogy's official code keeps BatchNorm in training mode at batch size 1,
    # which normalises each image by its own statistics: that is instance normalisation
    # with an affine. Spelled as such, a batch of samples equals the same samples drawn
    # one at a time, and no running statistics drift.
    "instance": {
        2: lambda channels: nn.InstanceNorm2d(channels, affine=True),
        3: lambda channels: nn.InstanceNorm3d(channels, affine=True),
    },
    # no normalisation (HP-VAE-GAN's spectrally normalised encoder and critic blocks)
    "none": {2: lambda channels: nn.Identity(), 3: lambda channels: nn.Identity()},
}
CONVS = {2: nn.Conv2d, 3: nn.Conv3d}


def conv(
    in_channels: int, out_channels: int, padding: int = 0, dims: int = 2, spectral: bool = False, num_models: int = 1
) -> nn.Module:
    """A 3x3 (dims=2) or 3x3x3 (dims=3) convolution, optionally spectrally normalised; with
    `num_models` K, K independent ones as one grouped convolution, K*in -> K*out channels."""
    if spectral and num_models > 1:
        raise ValueError(f"spectral normalisation divides a weight by one norm, which would couple the {num_models} "
                         "models of a grouped convolution")  # fmt: skip
    layer = CONVS[dims](
        num_models * in_channels, num_models * out_channels, kernel_size=3, padding=padding, groups=num_models
    )
    return nn.utils.parametrizations.spectral_norm(layer) if spectral else layer


class ConvBlock(nn.Sequential):
    """Convolution (3x3, or 3x3x3 with `dims=3`) -> normalisation -> LeakyReLU(0.2).

    `padding` 0 is a valid convolution, 1 a "same" one; `spectral` applies spectral
    normalisation to the convolution's weight (use it with `norm="none"`); `num_models` K
    runs K independent blocks on K*in_channels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        padding: int = 0,
        norm: str = "batch",
        dims: int = 2,
        spectral: bool = False,
        num_models: int = 1,
    ) -> None:
        super().__init__(
            conv(in_channels, out_channels, padding, dims, spectral, num_models),
            NORMS[norm][dims](num_models * out_channels),
            nn.LeakyReLU(0.2),
        )


def conv_stack(
    channels: int,
    width: int,
    out_channels: int,
    padding: int = 0,
    norm: str = "batch",
    dims: int = 2,
    num_blocks: int = NUM_LAYERS - 1,
    spectral: bool = False,
    num_models: int = 1,
) -> nn.Sequential:
    """`num_blocks` ConvBlocks (channels -> width -> ... -> width), then a plain tail convolution to `out_channels`.

    The pyramid networks of SinGAN and structural analogy are 4 blocks + tail (2D); HP-VAE-GAN's
    3D decoder, refinement stages and critic are 6 blocks + tail (receptive field 15^3).
    `num_models` K stacks K independent such networks.
    """
    blocks = [ConvBlock(channels, width, padding, norm, dims, spectral, num_models)]
    blocks += [ConvBlock(width, width, padding, norm, dims, spectral, num_models) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks, conv(width, out_channels, padding, dims, num_models=num_models))


def init_weights(module: nn.Module) -> None:
    """Conv weights ~ N(0, 0.02); norm weights ~ N(1, 0.02), norm biases 0 (as the official code)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm2d, nn.InstanceNorm3d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class ScaleGenerator(nn.Module):
    """G_s: refines the upsampled coarser image `prev` given noise.

    output = tanh(f(noise + prev)) + prev, where the noise is already scaled by the
    scale's amplitude sigma_s; `noise=None` maps `prev` alone (structural analogy's
    reconstructions and translations, G(x, x) in its code). A non-residual generator
    returns tanh(f(noise + prev)) only. With `content`, the convolutions see
    noise + content while the residual still adds `prev`: structural analogy's injection,
    G(sigma z + injected image, generated coarser output) in its official `eval.py`.

    Args:
        width: hidden channels.
        channels: image channels.
        residual: add `prev` to the output.
        same_padding: zero-pad every convolution (structural analogy); otherwise the input
            is zero-padded by 5 px once and the convolutions are valid (SinGAN).
        norm: "batch" or "instance" (see NORMS).
        num_models: K independent generators in one network, on [B, K*channels, H, W].
    """

    def __init__(
        self,
        width: int,
        channels: int = 3,
        residual: bool = True,
        same_padding: bool = False,
        norm: str = "batch",
        num_models: int = 1,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.input_padding = 0 if same_padding else PADDING
        self.body = conv_stack(channels, width, channels, int(same_padding), norm, num_models=num_models)
        init_weights(self)

    def forward(
        self, noise: torch.Tensor | None, prev: torch.Tensor, content: torch.Tensor | None = None
    ) -> torch.Tensor:
        # noise, prev, content: [B, K*C, H, W] -> [B, K*C, H, W]
        inputs = prev if content is None else content
        inputs = inputs if noise is None else noise + inputs
        if self.input_padding:
            inputs = F.pad(inputs, [self.input_padding] * 4)
        output = torch.tanh(self.body(inputs))
        return output + prev if self.residual else output


class PatchCritic(nn.Module):
    """D_s: a Markovian WGAN critic; returns a score map [B, 1, H - 10, W - 10], or with
    `num_models` K scores [B, K*channels, H, W] as [B, K, H - 10, W - 10]."""

    def __init__(self, width: int, channels: int = 3, norm: str = "batch", num_models: int = 1) -> None:
        super().__init__()
        self.body = conv_stack(channels, width, 1, norm=norm, num_models=num_models)
        init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


def coarsest_noise(batch: int, shape: Shape, generator: torch.Generator | None) -> torch.Tensor:
    """Noise of the coarsest scale [B, 3, H, W]: single-channel Gaussian replicated to RGB."""
    device = generator.device if generator is not None else None
    return torch.randn(batch, 1, *shape, generator=generator, device=device).expand(-1, 3, -1, -1).contiguous()


def rgb_noise(batch: int, shape: Shape, generator: torch.Generator) -> torch.Tensor:
    """3-channel unit Gaussian noise [B, 3, H, W] on the generator's device."""
    return torch.randn(batch, 3, *shape, generator=generator, device=generator.device)


def scale_noise(scale: int, batch: int, shape: Shape, generator: torch.Generator) -> torch.Tensor:
    """SinGAN's unit Gaussian noise [B, 3, H, W] for `scale`: grayscale at the coarsest scale, RGB above."""
    return coarsest_noise(batch, shape, generator) if scale == 0 else rgb_noise(batch, shape, generator)


def run_pyramid(
    generators: Sequence[nn.Module],
    inputs: list[torch.Tensor | None],
    shapes: list[Shape],
    ratio: float,
    first_scale: int = 0,
    prev: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run G_first .. G_{first+len(inputs)-1}; `inputs[i]` is the already-scaled noise of that scale.

    `prev` is the image entering the first scale (zeros at scale 0, or an injected image);
    between scales each output goes to the next scale's shape as the official code takes it
    there (`rescale`: clamped to [-1, 1], upsampled by 1/`ratio`, cropped).
    A None input adds no noise. Returns the last scale's output, unclamped.
    """
    x = prev if prev is not None else torch.zeros_like(inputs[0])
    for offset, noise in enumerate(inputs):
        scale = first_scale + offset
        if offset > 0:
            x = rescale(x, 1 / ratio, shapes[scale])
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
