"""3D networks of HP-VAE-GAN (the official `modules/networks_3d.py` of shirgur/hp-vae-gan), built
from the blocks of networks/pyramid.py.

Every convolution is 3x3x3 with "same" padding, so each network keeps the [T, H, W] size of
its input. Two block kinds: Conv3d -> BatchNorm3d -> LeakyReLU(0.2) (decoder, refinement
stages) and spectrally normalised Conv3d -> LeakyReLU(0.2) without normalisation (encoder
features, critic). None of them applies the custom N(0, 0.02) initialisation of the 2D pyramid:
the official HP-VAE-GAN code keeps PyTorch's default initialisation for its 3D modules (its
baseline script's generators use N(0, 0.02): `HPVAEGAN(normal_init=True)`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dfgen.resize import VideoShape
from lightning_modules.networks.pyramid import ConvBlock, conv, conv_stack


class PatchEncoder(nn.Module):
    """q(z | x_0): one Gaussian latent per spatio-temporal location of the coarsest clip.

    Args:
        width: hidden channels (64).
        latent_dim: channels of the latent map (128).
        num_blocks: spectrally normalised feature blocks (enc_blocks + 1 = 3, receptive field 7^3).
        channels: clip channels.
    """

    def __init__(self, width: int = 64, latent_dim: int = 128, num_blocks: int = 3, channels: int = 3) -> None:
        super().__init__()
        blocks = [ConvBlock(channels, width, padding=1, norm="none", dims=3, spectral=True)]
        blocks += [
            ConvBlock(width, width, padding=1, norm="none", dims=3, spectral=True) for _ in range(num_blocks - 1)
        ]
        self.features = nn.Sequential(*blocks)
        self.mu = conv(width, latent_dim, padding=1, dims=3)
        self.logvar = conv(width, latent_dim, padding=1, dims=3)

    def forward(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # clip [B, 3, T0, H0, W0] -> mu, log sigma^2: [B, latent_dim, T0, H0, W0] each
        features = self.features(clip)
        return self.mu(features), self.logvar(features)


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps with eps = `noise` ~ N(0, I) and sigma = exp(log sigma^2 / 2)."""
    return mu + torch.exp(0.5 * logvar) * noise


class PatchDecoder(nn.Module):
    """p(x_0 | z): latent map [B, latent_dim, T0, H0, W0] -> coarsest clip [B, 3, T0, H0, W0] in [-1, 1].

    ConvBlock(latent -> width), `num_blocks - 1` ConvBlocks, Conv3d(width -> 3), tanh.
    """

    def __init__(
        self, width: int = 64, latent_dim: int = 128, num_blocks: int = 6, channels: int = 3, norm: str = "batch"
    ) -> None:
        super().__init__()
        self.body = conv_stack(latent_dim, width, channels, padding=1, norm=norm, dims=3, num_blocks=num_blocks)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.body(latent))


class RefinementStage(nn.Module):
    """One level's residual refinement: x_s = tanh(f(x_up + noise) + x_up), tanh after the sum.

    `noise` is already scaled by the level's amplitude sigma_s, or None (no noise).
    """

    def __init__(self, width: int = 64, num_blocks: int = 6, channels: int = 3, norm: str = "batch") -> None:
        super().__init__()
        self.body = conv_stack(channels, width, channels, padding=1, norm=norm, dims=3, num_blocks=num_blocks)

    def forward(self, noise: torch.Tensor | None, upsampled: torch.Tensor) -> torch.Tensor:
        # noise, upsampled: [B, 3, T, H, W] -> [B, 3, T, H, W]
        inputs = upsampled if noise is None else upsampled + noise
        return torch.tanh(self.body(inputs) + upsampled)


class VideoCritic(nn.Module):
    """Patch WGAN critic: spectrally normalised blocks, then Conv3d(width -> 1); score map [B, 1, T, H, W]."""

    def __init__(self, width: int = 64, num_blocks: int = 6, channels: int = 3) -> None:
        super().__init__()
        self.body = conv_stack(channels, width, 1, padding=1, norm="none", dims=3, num_blocks=num_blocks, spectral=True)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.body(clip)


def upsample_clip(clip: torch.Tensor, shape: VideoShape) -> torch.Tensor:
    """Trilinear resize of [B, C, T, H, W] to `shape` (T', H', W'), align_corners=True as the official code."""
    if tuple(clip.shape[-3:]) == tuple(shape):
        return clip
    return F.interpolate(clip, size=tuple(shape), mode="trilinear", align_corners=True)
