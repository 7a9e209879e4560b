import math

import numpy as np
import pytest
import torch
from torch import nn

from dfgen.resize import rescale, resize
from lightning_modules.networks.losses import SinGANLoss, pixelwise_gradient_penalty
from lightning_modules.networks.pyramid import PatchCritic, ScaleGenerator, run_pyramid, scale_width


def reference_imresize(images: torch.Tensor, factor: float, shape: tuple[int, int]) -> torch.Tensor:
    """An independent, loop-by-loop rendering of the official `imresize` (`SinGAN/imresize.py` of
    tamarott/SinGAN) without its uint8 quantisation, followed by the crop the official code applies:
    images [B, C, h, w] -> [B, C, *shape], clamped to [-1, 1] before and after."""

    def cubic(x: float) -> float:
        x = abs(x)
        if x <= 1:
            return 1.5 * x**3 - 2.5 * x**2 + 1
        return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2 if x <= 2 else 0.0

    def axis_weights(length: int, out_length: int) -> np.ndarray:
        antialias = factor < 1
        width = 4.0 / factor if antialias else 4.0
        mirror = list(range(length)) + list(range(length - 1, -1, -1))
        matrix = np.zeros((out_length, length))
        for out in range(1, out_length + 1):  # 1-based pixel numbers, as in the official code
            position = out / factor + 0.5 * (1 - 1 / factor)
            left = math.floor(position - width / 2)
            taps = [left + k - 1 for k in range(math.ceil(width) + 2)]  # 0-based input pixels
            weights = [
                factor * cubic(factor * (position - t - 1)) if antialias else cubic(position - t - 1) for t in taps
            ]
            for tap, weight in zip(taps, weights):
                matrix[out - 1, mirror[tap % len(mirror)]] += weight / sum(weights)
        return matrix

    array = images.clamp(-1, 1).double().numpy()
    rows, columns = axis_weights(array.shape[-2], shape[0]), axis_weights(array.shape[-1], shape[1])
    resized = np.einsum("oh,bchw,pw->bcop", rows, array, columns)
    return torch.from_numpy(resized).float().clamp(-1, 1)


def linear_critic(weights: list[float]) -> nn.Conv2d:
    """D(x)[b, 0, i, j] = sum_c w_c x[b, c, i, j]: its input gradient is w at every pixel."""
    critic = nn.Conv2d(len(weights), 1, kernel_size=1, bias=False)
    critic.weight.data = torch.tensor(weights).view(1, -1, 1, 1)
    return critic


def test_width_rule():
    assert [scale_width(s) for s in range(12)] == [32] * 4 + [64] * 4 + [128] * 4
    assert scale_width(9, base_width=8, max_width=16) == 16


def test_generator_keeps_size_and_is_residual():
    generator = ScaleGenerator(width=16)
    prev = torch.randn(2, 3, 21, 30)
    out = generator(torch.zeros_like(prev), prev)
    assert out.shape == prev.shape
    # output - prev is a tanh, so it is bounded by 1
    assert (out - prev).abs().max() <= 1


def test_critic_is_a_valid_convolution_patch_map():
    assert PatchCritic(width=16)(torch.randn(1, 3, 21, 30)).shape == (1, 1, 11, 20)


def test_gradients_reach_every_parameter():
    generator, critic = ScaleGenerator(8), PatchCritic(8)
    fake = generator(torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16))
    critic(fake).mean().backward()
    for module in (generator, critic):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_initialisation_follows_the_official_code():
    torch.manual_seed(0)
    generator = ScaleGenerator(128)
    conv_weights = torch.cat([m.weight.flatten() for m in generator.modules() if isinstance(m, nn.Conv2d)])
    bn = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    assert abs(conv_weights.std().item() - 0.02) < 0.002
    assert all(torch.all(m.bias == 0) for m in bn)
    assert abs(torch.cat([m.weight for m in bn]).mean().item() - 1) < 0.01


@pytest.mark.parametrize("weights", [[0.3, -0.4, 1.2], [0.1, 0.1, 0.1]])
def test_gradient_penalty_is_per_pixel_channel_norm(weights):
    critic = linear_critic(weights)
    real, fake = torch.randn(1, 3, 5, 7), torch.randn(1, 3, 5, 7)
    penalty = pixelwise_gradient_penalty(critic, real, fake, torch.tensor(0.3))
    expected = (torch.tensor(weights).norm() - 1) ** 2  # a per-sample norm would be sqrt(35) times larger
    assert torch.allclose(penalty, expected)


def test_gradient_penalty_interpolates_with_one_epsilon():
    # D(x) = sum x^2 / 2 per pixel: the gradient is x_hat itself, so the penalty reveals x_hat
    class Square(nn.Module):
        def forward(self, x):
            return 0.5 * (x**2).sum(dim=1, keepdim=True)

    real, fake = torch.full((1, 3, 2, 2), 2.0), torch.zeros(1, 3, 2, 2)
    penalty = pixelwise_gradient_penalty(Square(), real, fake, torch.tensor(0.25))
    x_hat_norm = torch.tensor(0.25 * 2.0 * 3**0.5)
    assert torch.allclose(penalty, (x_hat_norm - 1) ** 2)


def test_critic_and_generator_losses_by_hand():
    critic = linear_critic([0.5, -1.0, 2.0])
    real, fake = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    loss = SinGANLoss(gp_weight=0.1, rec_weight=10.0, adversarial_weight=1.0)
    terms = loss.critic(critic, real, fake, torch.tensor(0.5))
    d_real, d_fake = critic(real).mean(), critic(fake).mean()
    gp = (torch.tensor([0.5, -1.0, 2.0]).norm() - 1) ** 2
    assert torch.allclose(terms["loss"], -d_real + d_fake + 0.1 * gp, atol=1e-6)

    reconstruction = real + 0.1
    terms = loss.generator(critic, fake, reconstruction, real)
    assert torch.allclose(terms["loss"], -d_fake + 10.0 * 0.01, atol=1e-6)
    assert torch.allclose(terms["reconstruction"], torch.tensor(0.01), atol=1e-7)


def test_critic_loss_does_not_reach_the_generator():
    generator, critic = ScaleGenerator(8), PatchCritic(8)
    fake = generator(torch.randn(1, 3, 16, 16), torch.zeros(1, 3, 16, 16))
    SinGANLoss(0.1, 10.0, 1.0).critic(critic, torch.randn(1, 3, 16, 16), fake, torch.tensor(0.5))["loss"].backward()
    assert all(p.grad is None for p in generator.parameters())


def test_resize_is_identity_at_same_size_and_antialiased_when_shrinking():
    x = torch.randn(1, 3, 20, 20)
    assert resize(x, (20, 20)) is x
    checker = (torch.arange(40).view(1, 1, 1, 40) + torch.arange(40).view(1, 1, 40, 1)) % 2 * 2.0 - 1
    assert resize(checker, (10, 10)).abs().max() < 0.1  # aliasing would keep +-1 values


@pytest.mark.parametrize(
    ("size", "factor", "shape"),
    [((12, 14), 1 / 0.809, (15, 17)), ((19, 24), 1 / 0.7785, (24, 30)), ((28, 32), 0.75**2, (16, 18))],
)
def test_rescale_is_the_official_imresize_and_crop(size, factor, shape):
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0)) * 1.5  # values beyond [-1, 1]
    out = rescale(x, factor, shape)
    assert out.shape == (2, 3, *shape) and out.abs().max() <= 1
    assert torch.allclose(out, reference_imresize(x, factor, shape), atol=1e-5)


def test_rescale_upsamples_by_exactly_the_factor_then_crops():
    ramp = torch.arange(20.0).view(1, 1, 1, 20).expand(1, 1, 4, 20) / 20 - 0.5  # linear in x, inside [-1, 1]
    out = rescale(ramp, 1.25, (4, 22))  # 25 columns at scale 1.25, cropped to 22
    centres = (torch.arange(22.0) + 0.5) / 1.25 - 0.5  # where output column q samples the input
    interior = slice(2, 20)  # a cubic kernel reproduces a ramp away from the mirrored borders
    assert torch.allclose(out[0, 0, 0, interior], centres[interior] / 20 - 0.5, atol=1e-6)


def test_generator_injects_content_into_the_convolutions_and_keeps_the_residual():
    torch.manual_seed(0)
    residual, plain = ScaleGenerator(8, same_padding=True, norm="instance"), ScaleGenerator(8, residual=False)
    noise, prev, content = torch.randn(3, 1, 3, 12, 12).unbind(0)
    # G(sigma z + content, prev): the convolutions see noise + content, the skip adds prev
    assert torch.allclose(residual(noise, prev, content), residual(noise, content) - content + prev, atol=1e-6)
    assert torch.allclose(plain(noise, prev, content), plain(noise, content), atol=1e-6)


def test_run_pyramid_clamps_and_upsamples_between_scales():
    received = []

    def generator(offset: float):
        def forward(noise, prev):
            received.append(prev)
            return prev + noise + offset

        return forward

    shapes, ratio = [(5, 6), (7, 8), (9, 10)], 0.75
    out = run_pyramid(
        [generator(3.0), generator(0.0), generator(0.0)], [torch.zeros(1, 3, *s) for s in shapes], shapes, ratio
    )
    assert torch.equal(received[0], torch.zeros(1, 3, 5, 6))
    # scale 0 returns 3 everywhere: the next scale receives it clamped to 1, then resized by 1/ratio
    assert torch.allclose(received[1], torch.ones(1, 3, 7, 8)) and torch.allclose(out, torch.ones(1, 3, 9, 10))
