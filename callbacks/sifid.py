"""Single-image FID (SIFID, Shaham et al. 2019) for single-image and single-video methods.

Each spatial position of an Inception activation map is one sample: one Gaussian is
fitted to the real image's positions and one to each generated image's, and SIFID is
the Fréchet distance between them, reported as mean and std over the generated images.

The LightningModule provides one hook,

    sifid_images(num_samples) -> (real [1, 3, H, W], generated [num_samples, 3, H, W]), in [-1, 1]

or a dict {name: (real, generated)} when it has several outputs, each to be compared with
the image whose appearance it should carry (structural analogy's samples and translations).
"""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn

from callbacks.fid_kid import to_uint8
from callbacks.inception import InceptionSpatial


def gaussian_of_positions(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [C] and covariance [C, C] of a [C, h, w] activation map over its h*w positions."""
    samples = features.flatten(1).t().double()  # [h*w, C]
    return samples.mean(dim=0), torch.cov(samples.t())


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)).

    The trace of the matrix square root is the sum of the square roots of the eigenvalues
    of sigma1 @ sigma2 (real and non-negative for covariance matrices, up to round-off).
    """
    root_trace = torch.linalg.eigvals(sigma1 @ sigma2).sqrt().real.sum()
    return (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * root_trace


def sifid(feature_extractor: nn.Module, real: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """SIFID of every generated image [N] against the single real image, images in [-1, 1]."""
    mu_real, sigma_real = gaussian_of_positions(feature_extractor(to_uint8(real))[0])
    scores = []
    for image in generated:
        mu, sigma = gaussian_of_positions(feature_extractor(to_uint8(image[None]))[0])
        scores.append(frechet_distance(mu_real, sigma_real, mu, sigma))
    return torch.stack(scores)


class SIFID(Callback):
    """SIFID mean and std over `num_samples` generated images, at the end of training and test.

    Args:
        num_samples: generated images per evaluation.
        channels: 64 (before Inception's first max-pool, as the released SinGAN code and
            published numbers) or 192 (before the second, as the paper describes).
        feature_extractor: maps uint8 images [N, 3, H, W] to activation maps [N, C, h, w];
            None loads the Inception layers given by `channels`.
        weights_path: Inception weights file; None looks in the torch hub cache.
    """

    def __init__(
        self,
        num_samples: int = 50,
        channels: int = 64,
        feature_extractor: nn.Module | None = None,
        weights_path: str | None = None,
    ) -> None:
        self.num_samples = num_samples
        self.channels = channels
        self.feature_extractor = feature_extractor
        self.weights_path = weights_path
        self.last: dict[str, float] = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not hasattr(pl_module, "sifid_images"):
            raise TypeError(f"{type(pl_module).__name__} has no sifid_images(num_samples) hook for SIFID")
        if self.feature_extractor is None:
            self.feature_extractor = InceptionSpatial(self.channels, self.weights_path)
        self.feature_extractor.eval().requires_grad_(False)

    @torch.no_grad()
    def evaluate(self, trainer: Trainer, pl_module: LightningModule, prefix: str) -> None:
        """Log "<prefix>/sifid_mean" and "_std", or "<prefix>/sifid_<name>_mean" and "_std" per named output."""
        self.feature_extractor.to(pl_module.device)
        groups = pl_module.sifid_images(self.num_samples)
        groups = groups if isinstance(groups, dict) else {"": groups}
        self.last = {}
        for name, (real, generated) in groups.items():
            scores = sifid(self.feature_extractor, real.to(pl_module.device), generated.to(pl_module.device))
            key = f"{prefix}/sifid_{name}_" if name else f"{prefix}/sifid_"
            self.last |= {key + "mean": scores.mean().item(), key + "std": scores.std().item()}
        for logger in trainer.loggers:
            logger.log_metrics(self.last, step=getattr(pl_module, "iteration", trainer.global_step))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            self.evaluate(trainer, pl_module, "train")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.evaluate(trainer, pl_module, "test")
