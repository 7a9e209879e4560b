"""DataModules, one file per data family."""

from datamodules.cifar import CIFARDataModule
from datamodules.image_folders import ImageFolderDataModule
from datamodules.image_pair import ImagePairDataModule
from datamodules.single_image import SingleImageDataModule

__all__ = ["CIFARDataModule", "ImageFolderDataModule", "ImagePairDataModule", "SingleImageDataModule"]
