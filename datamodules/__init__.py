"""DataModules, one file per data family."""

from datamodules.cifar import CIFARDataModule
from datamodules.single_image import SingleImageDataModule

__all__ = ["CIFARDataModule", "SingleImageDataModule"]
