"""LightningModules, one file per method."""

from lightning_modules.singan import SinGAN

__all__ = ["SinGAN"]
