"""Single-image FID (SIFID, Shaham et al. 2019) for single-image and single-video methods.

Each spatial position of an Inception activation map is one sample: one Gaussian is
fitted to the real image's positions and one to each generated image's, and SIFID is
the Fréchet distance between them, reported as mean and std over the generated images.

The LightningModule provides `dfgen.contract.SingleImageFidelity`,

    sifid_images(num_samples) -> {name: (real [1, 3, H, W], generated [num_samples, 3, H, W])}, in [-1, 1]

each generated set with the image whose appearance it should carry: SinGAN's one set is named
"" (logged as "<stage>/sifid_mean"), structural analogy's samples and translations have names
(logged as "<stage>/sifid_<name>_mean"). Names "<group>/<member>" form a group, whose members'
means are also summarised as "<stage>/sifid_<group>_mean" and "_std" (SinGAN's images, when one
run trains several).
"""

from __future__ import annotations

from collections import defaultdict

import torch
from lightning.pytorch import LightningModule, Trainer
from torch import nn

from callbacks.evaluation import SampleMetric
from callbacks.fid_kid import to_uint8
from callbacks.inception import InceptionSpatial
from dfgen.contract import CONTRACT_FILE, ContractError, SingleImageFidelity


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


class InceptionMaps:
    """Callback mixin: the activation maps that SIFID compares, from `feature_extractor` or, when
    that is None, from the Inception layers given by `channels` (loaded at setup)."""

    channels: int
    feature_extractor: nn.Module | None
    weights_path: str | None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self.feature_extractor is None:
            self.feature_extractor = InceptionSpatial(self.channels, self.weights_path)
        self.feature_extractor.eval().requires_grad_(False)


class SIFID(InceptionMaps, SampleMetric):
    """SIFID mean and std over `num_samples` generated images, at the end of training and test.

    Args:
        num_samples: generated images per evaluation.
        channels: 64 (before Inception's first max-pool, as the released SinGAN code and
            published numbers) or 192 (before the second, as the paper describes).
        feature_extractor: maps uint8 images [N, 3, H, W] to activation maps [N, C, h, w];
            None loads the Inception layers given by `channels`.
        weights_path: Inception weights file; None looks in the torch hub cache.
    """

    module_needs = (SingleImageFidelity,)

    def __init__(
        self,
        num_samples: int = 50,
        channels: int = 64,
        feature_extractor: nn.Module | None = None,
        weights_path: str | None = None,
    ) -> None:
        super().__init__(num_samples)
        self.channels = channels
        self.feature_extractor = feature_extractor
        self.weights_path = weights_path

    def measure(self, pl_module: LightningModule) -> dict[str, float]:
        """The mean and std over samples of every named set: "sifid_mean", or "sifid_<name>_mean", and "_std"."""
        self.feature_extractor.to(pl_module.device)
        groups = pl_module.sifid_images(self.num_samples)
        if not isinstance(groups, dict):
            raise ContractError(
                f"SIFID needs {type(pl_module).__name__}.sifid_images to return {{name: (real, generated)}} "
                f"({CONTRACT_FILE}); it returned {type(groups).__name__}"
            )
        values, members = {}, defaultdict(list)
        for name, (real, generated) in groups.items():
            scores = sifid(self.feature_extractor, real.to(pl_module.device), generated.to(pl_module.device))
            key = f"sifid_{name}_" if name else "sifid_"
            values |= {key + "mean": scores.mean().item(), key + "std": scores.std().item()}
            if "/" in name:
                members[name.split("/")[0]].append(scores.mean())
        for group, means in members.items():  # over the members' means: SinGAN's images, as the paper's tables
            means = torch.stack(means)
            values |= {f"sifid_{group}_mean": means.mean().item(), f"sifid_{group}_std": means.std().item()}
        return values
