import pytest
import torch
from torch import nn

from lightning_modules.networks.losses import SinGANLoss, pixelwise_gradient_penalty
from lightning_modules.networks.pyramid import PatchCritic, ScaleGenerator, scale_width
from lightning_modules.networks.resize import resize


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
    loss = SinGANLoss(gp_weight=0.1, rec_weight=10.0)
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
    SinGANLoss().critic(critic, torch.randn(1, 3, 16, 16), fake, torch.tensor(0.5))["loss"].backward()
    assert all(p.grad is None for p in generator.parameters())


def test_resize_is_identity_at_same_size_and_antialiased_when_shrinking():
    x = torch.randn(1, 3, 20, 20)
    assert resize(x, (20, 20)) is x
    checker = (torch.arange(40).view(1, 1, 1, 40) + torch.arange(40).view(1, 1, 40, 1)) % 2 * 2.0 - 1
    assert resize(checker, (10, 10)).abs().max() < 0.1  # aliasing would keep +-1 values
