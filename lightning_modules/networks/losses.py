"""Losses: the pyramid GANs' (SinGAN, structural analogy, HP-VAE-GAN) and AugMix's consistency loss.

A loss class takes every weight without a default: the defaults, the official values, are the
method's settings (`--model.rec_weight`), declared once in its LightningModule.

The pyramid GANs' critic loss and SinGAN's generator loss also train K models stacked along the
channel axis as one network (networks/grouped.py): the critic returns one score channel per
model, every term is one value per model [K] (0-dim for a single model), and the "loss" to
backpropagate is the sum of the models' losses, which gives each model its own loss's gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.networks.grouped import model_view, per_model, per_model_mean, split_models, stack_models, total


def pixelwise_gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, epsilon: torch.Tensor
) -> torch.Tensor:
    """mean over pixels (or voxels) of (||grad_x D(x_hat)||_2 - 1)^2, the norm taken over channels.

    SinGAN's penalty is a per-location Lipschitz constraint: one interpolation weight
    `epsilon` (a scalar) for the whole batch, x_hat = eps * real + (1 - eps) * fake, and
    the gradient's L2 norm over the channel axis at every pixel, averaged over pixels.

    K stacked models: one weight per model (`epsilon` [K]) and one penalty per model [K]. The
    gradient of the sum of all scores is per model, since model k's scores depend on model k's
    channels of x_hat only; its norm is taken over each model's own channels.
    """
    # real, fake: [B, K*C, H, W] (images) or [B, K*C, T, H, W] (videos); epsilon: [], [1] or [K]
    factor = per_model(epsilon, real.shape[1] // epsilon.numel(), real.dim() - 2)
    mixed = (factor * real + (1 - factor) * fake).requires_grad_(True)
    scores = critic(mixed)  # [B, K, ...]
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    norms = model_view(grad, scores.shape[1]).norm(2, dim=2)  # [B, K, ...]
    return per_model_mean((norms - 1) ** 2)


def wgan_gp_critic_loss(
    critic: nn.Module,
    real: torch.Tensor,
    fakes: dict[str, torch.Tensor],
    epsilons: dict[str, torch.Tensor],
    gp_weight: float,
) -> dict[str, torch.Tensor]:
    """sum over fakes f of [ -mean D(real) + mean D(f) + lambda * GP(real, f) ], on detached fakes.

    The real score is computed once and counted once per fake (structural analogy's
    `-2 mean D_A(a)` for its two fakes). Returns the total under "loss", the real score
    under "critic_real", each fake's score under "critic_<name>", and the summed penalty;
    for K stacked models the terms are per model [K] and "loss" the sum of the models' losses.
    """
    real_score = per_model_mean(critic(real))
    terms = {"critic_real": real_score}
    loss, penalty = -len(fakes) * real_score, torch.zeros_like(real_score)
    for name, fake in fakes.items():
        fake = fake.detach()
        terms[f"critic_{name}"] = per_model_mean(critic(fake))
        penalty = penalty + pixelwise_gradient_penalty(critic, real, fake, epsilons[name])
        loss = loss + terms[f"critic_{name}"]
    return {"loss": total(loss + gp_weight * penalty), **terms, "gradient_penalty": penalty}


class SinGANLoss:
    """WGAN-GP with a patch critic plus the fixed-noise reconstruction term.

    L_D = -mean D(real) + mean D(fake) + lambda * GP                          (critic)
    L_G = -gamma mean D(fake) + alpha * || G(sigma * z*, rec_prev) - real ||^2 (generator)

    with gamma = `adversarial_weight` (1 in SinGAN).
    """

    def __init__(self, gp_weight: float, rec_weight: float, adversarial_weight: float) -> None:
        self.gp_weight = gp_weight
        self.rec_weight = rec_weight
        self.adversarial_weight = adversarial_weight

    def critic(
        self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, epsilon: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Critic loss on a detached fake; returns the total under "loss" and its terms."""
        return wgan_gp_critic_loss(critic, real, {"fake": fake}, {"fake": epsilon}, self.gp_weight)

    def generator(
        self, critic: nn.Module, fake: torch.Tensor, reconstruction: torch.Tensor, real: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Generator loss: adversarial term on `fake`, reconstruction term on the z* output."""
        scores = critic(fake)  # [B, K, h, w]
        adversarial = -per_model_mean(scores)
        # one mse_loss per model, as a single model's loss computes it
        pairs = zip(split_models(reconstruction, scores.shape[1]), split_models(real, scores.shape[1]))
        rec = stack_models([F.mse_loss(model_rec, model_real) for model_rec, model_real in pairs])
        loss = total(self.adversarial_weight * adversarial + self.rec_weight * rec)
        return {"loss": loss, "adversarial": adversarial, "reconstruction": rec}


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) averaged over every latent element (a mean, not a sum, as the
    official `kl_criterion` in `modules/losses.py` of shirgur/hp-vae-gan).

    KL = mean( -1/2 (1 + log sigma^2 - mu^2 - sigma^2) )
    """
    return (-0.5 * (1 + logvar - mu.square() - logvar.exp())).mean()


class HPVAEGANLoss(SinGANLoss):
    """HP-VAE-GAN's losses (paper section 3, the VAE objective and the WGAN-GP levels;
    the official `train_video.py`).

    VAE level s:  L = alpha [ MSE(x^_s, x_s) + MSE(x^_0_vae, x_0) ] + beta KL(q(z|x_0) || N(0, I))
    GAN level s:  SinGAN's `critic` and `generator` losses,
                  L_D = -mean D(x_s) + mean D(x~_s) + lambda GP(x_s, x~_s)
                  L_G = alpha MSE(x^_s, x_s) - gamma mean D(x~_s)
    with x^ the reconstruction from the encoded real clip, x~ a random sample; alpha = 10,
    beta = 1, lambda = 0.1, gamma = 1 in the official code.
    """

    def __init__(self, rec_weight: float, kl_weight: float, gp_weight: float, adversarial_weight: float) -> None:
        super().__init__(gp_weight, rec_weight, adversarial_weight)
        self.kl_weight = kl_weight

    def vae(
        self,
        reconstruction: torch.Tensor,
        real: torch.Tensor,
        vae_output: torch.Tensor,
        real_zero: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Loss of a VAE level: both reconstructions and the KL; at level 0 both terms are the same MSE."""
        # reconstruction, real: [B, 3, T_s, H_s, W_s]; vae_output, real_zero: [B, 3, T_0, H_0, W_0]
        rec = F.mse_loss(reconstruction, real)
        vae_rec = F.mse_loss(vae_output, real_zero)
        kl = gaussian_kl(mu, logvar)
        loss = self.rec_weight * (rec + vae_rec) + self.kl_weight * kl
        return {"loss": loss, "reconstruction": rec, "vae_reconstruction": vae_rec, "kl": kl}


class StructuralAnalogyLoss:
    """The two pyramids' losses at one scale (`train.py` of rmokady/structural-analogy), domains "a" and "b".

    Per domain d with real image x_d, unconditional sample x~_d, reconstruction x^_d,
    translation t_d = G_d(x~_other) into d and cycle c_d = G_d(G_other(x~_d)):

    L_D_d = -2 mean D_d(x_d) + mean D_d(t_d) + mean D_d(x~_d) + lambda [GP(x_d, t_d) + GP(x_d, x~_d)]
    L_G   = sum_d w_d [-mean D_d(t_d) - mean D_d(x~_d)]                 (w_a = gamma, w_b = gamma lambda_g)
            + alpha sum_d ||x^_d - x_d||^2 + beta sum_d ||c_d - x~_d||^2

    with gamma = `adversarial_weight` (1 in the official code).

    The cycle target is the unconditional sample, not the real image, as in the official code.
    """

    def __init__(
        self,
        gp_weight: float,
        rec_weight: float,
        cycle_weight: float,
        b_adversarial_weight: float,
        adversarial_weight: float,
    ) -> None:
        self.gp_weight = gp_weight
        self.rec_weight = rec_weight
        self.cycle_weight = cycle_weight
        self.adversarial_weights = {"a": adversarial_weight, "b": adversarial_weight * b_adversarial_weight}

    def critic(
        self, critic: nn.Module, real: torch.Tensor, outputs: dict[str, torch.Tensor], epsilons: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """L_D of one domain; `outputs` holds that domain's "fake" and "translation"."""
        fakes = {name: outputs[name] for name in ("fake", "translation")}
        return wgan_gp_critic_loss(critic, real, fakes, epsilons, self.gp_weight)

    def generator(
        self, critics: dict[str, nn.Module], reals: dict[str, torch.Tensor], outputs: dict[str, dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """L_G of both generators; returns the total under "loss" and each domain's terms."""
        terms, loss = {}, 0.0
        for domain, out in outputs.items():
            critic = critics[domain]
            adversarial = -critic(out["translation"]).mean() - critic(out["fake"]).mean()
            reconstruction = F.mse_loss(out["reconstruction"], reals[domain])
            cycle = F.mse_loss(out["cycle"], out["fake"])
            loss = loss + self.adversarial_weights[domain] * adversarial
            loss = loss + self.rec_weight * reconstruction + self.cycle_weight * cycle
            terms |= {f"{domain}_adversarial": adversarial, f"{domain}_reconstruction": reconstruction}
            terms[f"{domain}_cycle"] = cycle
        return {"loss": loss, **terms}


def lsgan(scores: torch.Tensor, target: float) -> torch.Tensor:
    """Least-squares GAN term mean((D(x) - target)^2): critics want 1 on real and 0 on fake, generators 1."""
    return ((scores - target) ** 2).mean()


def latent_kl(latent: torch.Tensor) -> torch.Tensor:
    """OST's "VAE" term: KL to N(0, I) of a unit-variance Gaussian at `latent`, up to constants: mean(h^2).

    No noise is sampled, as in the official code (no reparameterisation): the autoencoder is
    deterministic and the term only pulls the code towards zero.
    """
    return latent.square().mean()


def jensen_shannon_consistency(logits: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """AugMix's consistency loss: mean over views of KL(p_view || M), M the mean prediction.

    logits: one [N, classes] tensor per view (clean, augmix_1, augmix_2). M is clamped to
    [1e-7, 1] before the log, as in AugMix.
    """
    probabilities = [F.softmax(view, dim=1) for view in logits]
    log_mixture = torch.clamp(torch.stack(probabilities).mean(dim=0), 1e-7, 1).log()
    return sum(F.kl_div(log_mixture, p, reduction="batchmean") for p in probabilities) / len(probabilities)
