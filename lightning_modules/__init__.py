"""LightningModules, one file per method."""

from lightning_modules.classifier import ImageClassifier
from lightning_modules.singan import SinGAN

__all__ = ["ImageClassifier", "SinGAN"]
