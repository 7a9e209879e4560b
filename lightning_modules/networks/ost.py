"""Networks of one-shot translation (OST, after sagiebenaim/OneShotTranslation): autoencoders split into
domain-specific ("unshared") outer layers and shared inner layers, and their critics.

    E_d = E^S o E_d^U      G_d = G_d^U o G^S      translation x -> B: G_B^U(G^S(E^S(E_A^U(x))))
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

DOMAINS = ("a", "b")


class SplitAutoencoder(nn.Module):
    """Per-domain outer layers around a shared core; the latent is the shared encoder's output."""

    def __init__(
        self, encoders: dict[str, nn.Module], encoder_shared: nn.Module, decoder_shared: nn.Module,
        decoders: dict[str, nn.Module],
    ) -> None:  # fmt: skip
        super().__init__()
        self.encoders_unshared = nn.ModuleDict(encoders)
        self.encoder_shared = encoder_shared
        self.decoder_shared = decoder_shared
        self.decoders_unshared = nn.ModuleDict(decoders)

    def encode(self, images: torch.Tensor, domain: str) -> torch.Tensor:
        return self.encoder_shared(self.encoders_unshared[domain](images))

    def decode(self, latent: torch.Tensor, domain: str) -> torch.Tensor:
        return self.decoders_unshared[domain](self.decoder_shared(latent))

    def unshared_parameters(self, domains: tuple[str, ...]) -> list[nn.Parameter]:
        """The outer layers of `domains` (what selective backpropagation lets the A losses move)."""
        modules = [self.encoders_unshared[d] for d in domains] + [self.decoders_unshared[d] for d in domains]
        return [p for module in modules for p in module.parameters()]


def init_normal(module: nn.Module) -> None:
    """Conv weights ~ N(0, 0.02), biases 0; affine norms ~ N(1, 0.02) (the CycleGAN code's init)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


@contextmanager
def per_image_batch_norm(module: nn.Module) -> Iterator[None]:
    """BatchNorm layers normalise by the batch's own statistics, leaving running statistics untouched."""
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [(m.training, m.momentum) for m in norms]
    for m in norms:
        m.train()
        m.momentum = 0.0  # running = (1 - momentum) * running + momentum * batch: unchanged
    try:
        yield
    finally:
        for m, (training, momentum) in zip(norms, saved):
            m.train(training)
            m.momentum = momentum


# -------------------------------------------------------------------- digits (mnist_to_svhn)
def _digit_block(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.LeakyReLU(0.05))


def digits_autoencoder(channels_a: int = 1, channels_b: int = 3, width: int = 64) -> SplitAutoencoder:
    """32x32 -> 16 -> 8 latent [2 width, 8, 8] -> 16 -> 32; bias-free convolutions, BatchNorm,
    LeakyReLU(0.05). `width` is the official `--g_conv_dim` (64)."""
    channels, core = {"a": channels_a, "b": channels_b}, 2 * width
    return SplitAutoencoder(
        encoders={d: _digit_block(nn.Conv2d(c, width, 4, 2, 1, bias=False), width) for d, c in channels.items()},
        encoder_shared=nn.Sequential(
            _digit_block(nn.Conv2d(width, core, 4, 2, 1, bias=False), core),
            _digit_block(nn.Conv2d(core, core, 3, 1, 1, bias=False), core),
        ),
        decoder_shared=nn.Sequential(
            _digit_block(nn.Conv2d(core, core, 3, 1, 1, bias=False), core),
            _digit_block(nn.ConvTranspose2d(core, width, 4, 2, 1, bias=False), width),
        ),
        decoders={
            d: nn.Sequential(nn.ConvTranspose2d(width, c, 4, 2, 1, bias=False), nn.Tanh()) for d, c in channels.items()
        },
    )


class DigitCritic(nn.Sequential):
    """One LSGAN score per 32x32 image: three stride-2 convolutions, then a 4x4 one.
    `width` is the official `--d_conv_dim` (64)."""

    def __init__(self, channels: int, width: int = 64) -> None:
        super().__init__(
            nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.05),
            _digit_block(nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False), 2 * width),
            _digit_block(nn.Conv2d(2 * width, 4 * width, 4, 2, 1, bias=False), 4 * width),
            nn.Conv2d(4 * width, 1, 4, 1, 0, bias=False), nn.Flatten(0),
        )  # fmt: skip


# --------------------------------------------------- drawing and style (drawing_and_style_transfer)
class ResidualBlock(nn.Module):
    """x + [pad, conv3x3, IN, ReLU, pad, conv3x3, IN](x), reflection padding."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _down(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, 2 * channels, 3, 2, 1), nn.InstanceNorm2d(2 * channels), nn.ReLU(True))


def _up(channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(channels, channels // 2, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(channels // 2),
        nn.ReLU(True),
    )  # fmt: skip


def resnet_autoencoder(
    channels: int = 3, ngf: int = 64, n_downsampling: int = 2, num_unshared: int = 2, num_res_blocks_shared: int = 6
) -> SplitAutoencoder:
    """The CycleGAN ResNet generator cut into pieces: 7x7 input and output layers and the first
    `num_unshared` down- and last up-samplings per domain; 2 x `num_res_blocks_shared` residual
    blocks (the shared encoder's half ends at the latent) and the other resamplings shared."""
    if not 0 <= num_unshared <= n_downsampling:
        raise ValueError(f"num_unshared={num_unshared} must be in [0, n_downsampling={n_downsampling}]")
    widths = [ngf * 2**i for i in range(n_downsampling + 1)]  # 64, 128, 256 (, 512)
    core = widths[-1]

    def outer_encoder() -> nn.Sequential:
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        return nn.Sequential(*layers, *[_down(widths[i]) for i in range(num_unshared)])

    def outer_decoder() -> nn.Sequential:
        ups = [_up(widths[i + 1]) for i in reversed(range(num_unshared))]
        return nn.Sequential(*ups, nn.ReflectionPad2d(3), nn.Conv2d(ngf, channels, 7), nn.Tanh())

    shared_down = [_down(widths[i]) for i in range(num_unshared, n_downsampling)]
    shared_up = [_up(widths[i + 1]) for i in reversed(range(num_unshared, n_downsampling))]
    autoencoder = SplitAutoencoder(
        encoders={d: outer_encoder() for d in DOMAINS},
        encoder_shared=nn.Sequential(*shared_down, *[ResidualBlock(core) for _ in range(num_res_blocks_shared)]),
        decoder_shared=nn.Sequential(*[ResidualBlock(core) for _ in range(num_res_blocks_shared)], *shared_up),
        decoders={d: outer_decoder() for d in DOMAINS},
    )
    init_normal(autoencoder)
    return autoencoder


class PatchGANCritic(nn.Sequential):
    """The 70x70 PatchGAN: a score map [B, 1, h, w] (h = H / 8 - 2 for H divisible by 8)."""

    def __init__(self, channels: int = 3, width: int = 64) -> None:
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for i, stride in ((1, 2), (2, 2), (3, 1)):
            in_width, out_width = width * 2 ** (i - 1), width * 2**i
            layers += [
                nn.Conv2d(in_width, out_width, 4, stride, 1),
                nn.InstanceNorm2d(out_width),
                nn.LeakyReLU(0.2, True),
            ]
        super().__init__(*layers, nn.Conv2d(width * 8, 1, 4, 1, 1))
        init_normal(self)


class ImagePool:
    """CycleGAN's history of generated images: the critic sees an older fake half of the time.

    Until `size` images are stored each new one is kept and returned; then each new image is,
    with probability 1/2, swapped with a random stored one (which is returned instead).
    """

    def __init__(self, size: int = 50) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """Detached images [B, ...] for the critic: the new ones or stored ones."""
        if self.size == 0:
            return images.detach()
        returned = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                returned.append(image)
            elif torch.rand((), generator=rng) < 0.5:
                index = int(torch.randint(len(self.images), (), generator=rng))
                returned.append(self.images[index].to(image.device, copy=True))  # stored on CPU after a resume
                self.images[index] = image.clone()
            else:
                returned.append(image)
        return torch.stack(returned)
