"""Losses: the single-image pyramid GANs' (spec section 1.4) and AugMix's consistency loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pixelwise_gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, epsilon: torch.Tensor
) -> torch.Tensor:
    """mean over pixels of (||grad_x D(x_hat)||_2 - 1)^2, the norm taken over channels.

    SinGAN's penalty is a per-location Lipschitz constraint: one interpolation weight
    `epsilon` (a scalar) for the whole batch, x_hat = eps * real + (1 - eps) * fake, and
    the gradient's L2 norm over the channel axis at every pixel, averaged over pixels.
    """
    # real, fake: [B, C, H, W]; epsilon: [] or [1]
    mixed = (epsilon * real + (1 - epsilon) * fake).requires_grad_(True)
    scores = critic(mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grad.norm(2, dim=1) - 1) ** 2).mean()


class SinGANLoss:
    """WGAN-GP with a patch critic plus the fixed-noise reconstruction term.

    L_D = -mean D(real) + mean D(fake) + lambda * GP                   (critic)
    L_G = -mean D(fake) + alpha * || G(sigma * z*, rec_prev) - real ||^2 (generator)
    """

    def __init__(self, gp_weight: float = 0.1, rec_weight: float = 10.0) -> None:
        self.gp_weight = gp_weight
        self.rec_weight = rec_weight

    def critic(
        self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, epsilon: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Critic loss on a detached fake; returns the total under "loss" and its terms."""
        fake = fake.detach()
        real_score = critic(real).mean()
        fake_score = critic(fake).mean()
        penalty = pixelwise_gradient_penalty(critic, real, fake, epsilon)
        loss = -real_score + fake_score + self.gp_weight * penalty
        return {"loss": loss, "critic_real": real_score, "critic_fake": fake_score, "gradient_penalty": penalty}

    def generator(
        self, critic: nn.Module, fake: torch.Tensor, reconstruction: torch.Tensor, real: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Generator loss: adversarial term on `fake`, reconstruction term on the z* output."""
        adversarial = -critic(fake).mean()
        rec = F.mse_loss(reconstruction, real)
        loss = adversarial + self.rec_weight * rec
        return {"loss": loss, "adversarial": adversarial, "reconstruction": rec}


def jensen_shannon_consistency(logits: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """AugMix's consistency loss: mean over views of KL(p_view || M), M the mean prediction.

    logits: one [N, classes] tensor per view (clean, augmix_1, augmix_2). M is clamped to
    [1e-7, 1] before the log, as in AugMix.
    """
    probabilities = [F.softmax(view, dim=1) for view in logits]
    log_mixture = torch.clamp(torch.stack(probabilities).mean(dim=0), 1e-7, 1).log()
    return sum(F.kl_div(log_mixture, p, reduction="batchmean") for p in probabilities) / len(probabilities)
