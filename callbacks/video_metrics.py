"""Metrics of single-video generation: diversity and a SIFID-style score per clip, after the
measures of the HP-VAE-GAN paper's evaluation.

The LightningModule provides `dfgen.contract.VideoClips`,

    video_metric_clips(num_samples) -> (real [1, 3, T, H, W], generated [N, 3, T, H, W]), in [-1, 1]

Diversity (HP-VAE-GAN's measure, as the later single-image/video papers cite it): the
per-pixel standard deviation across the generated clips, averaged over channels, frames and
pixels, divided by the standard deviation of the real clip's pixel values. 0 means every
sample is the same clip; copies of the training clip score 0 too.

Video SIFID: no official SVFID code exists (the paper's uses a 3D action-recognition
network whose weights cannot be fetched offline). What is measured here instead: every
frame goes through the same feature network as SIFID (Inception-v3 up to the first
max-pool, 64 channels, or any given extractor), all (frame, y, x) positions of a clip are
the samples of one Gaussian, and the score of a generated clip is the Fréchet distance
between its Gaussian and the real clip's. It compares per-frame patch appearance, not
motion; the numbers are not comparable with the paper's SVFID.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from lightning.pytorch import LightningModule
from torch import nn

from callbacks.evaluation import SampleMetric
from callbacks.fid_kid import to_uint8
from callbacks.sifid import InceptionMaps, frechet_distance, gaussian_of_positions
from dfgen.contract import VideoClips


def diversity(real: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """mean over (C, T, H, W) of the std across the N generated clips, divided by the std of `real`'s values."""
    # real: [1, 3, T, H, W]; generated: [N, 3, T, H, W]
    return generated.std(dim=0).mean() / real.std()


def clip_features(feature_extractor: nn.Module, clip: torch.Tensor) -> torch.Tensor:
    """Per-frame activation maps of a clip [3, T, H, W] in [-1, 1], as one map [C, T * h, w]."""
    maps = feature_extractor(to_uint8(clip.transpose(0, 1)))  # [T, C, h, w]
    return maps.permute(1, 0, 2, 3).flatten(1, 2)


def video_sifid(feature_extractor: nn.Module, real: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """Score [N] of every generated clip against the real clip [1, 3, T, H, W] (see the module docstring)."""
    mu_real, sigma_real = gaussian_of_positions(clip_features(feature_extractor, real[0]))
    scores = []
    for clip in generated:
        mu, sigma = gaussian_of_positions(clip_features(feature_extractor, clip))
        scores.append(frechet_distance(mu_real, sigma_real, mu, sigma))
    return torch.stack(scores)


class _VideoMetric(SampleMetric):
    """A metric of the module's real clip and `num_samples` generated clips."""

    module_needs = (VideoClips,)

    @abstractmethod
    def measure_clips(self, real: torch.Tensor, generated: torch.Tensor) -> dict[str, float]:
        """The metric's values by name, from the real clip [1, 3, T, H, W] and generated clips [N, 3, T, H, W]."""

    def measure(self, pl_module: LightningModule) -> dict[str, float]:
        real, generated = pl_module.video_metric_clips(self.num_samples)
        return self.measure_clips(real.to(pl_module.device), generated.to(pl_module.device))


class VideoDiversity(_VideoMetric):
    """Diversity of `num_samples` generated clips (see the module docstring), logged as ".../diversity".

    Args:
        num_samples: generated clips per evaluation (at least 2).
    """

    def __init__(self, num_samples: int = 16) -> None:
        if num_samples < 2:
            raise ValueError(f"diversity needs at least 2 samples, got num_samples={num_samples}")
        super().__init__(num_samples)

    def measure_clips(self, real: torch.Tensor, generated: torch.Tensor) -> dict[str, float]:
        return {"diversity": diversity(real, generated).item()}


class VideoSIFID(InceptionMaps, _VideoMetric):
    """Per-clip video SIFID (see the module docstring): mean and std over `num_samples` clips.

    Args:
        num_samples: generated clips per evaluation.
        channels: Inception channels, 64 (before the first max-pool) or 192 (before the second).
        feature_extractor: maps uint8 frames [N, 3, H, W] to activation maps [N, C, h, w];
            None loads the Inception layers given by `channels`.
        weights_path: Inception weights file; None looks in the torch hub cache.
    """

    def __init__(
        self,
        num_samples: int = 16,
        channels: int = 64,
        feature_extractor: nn.Module | None = None,
        weights_path: str | None = None,
    ) -> None:
        super().__init__(num_samples)
        self.channels = channels
        self.feature_extractor = feature_extractor
        self.weights_path = weights_path

    def measure_clips(self, real: torch.Tensor, generated: torch.Tensor) -> dict[str, float]:
        scores = video_sifid(self.feature_extractor.to(real.device), real, generated)
        std = scores.std().item() if len(scores) > 1 else 0.0
        return {"video_sifid_mean": scores.mean().item(), "video_sifid_std": std}
