"""DataModules, one file per data family."""

from datamodules.single_image import SingleImageDataModule

__all__ = ["SingleImageDataModule"]
