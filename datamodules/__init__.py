"""DataModules, one file per data family."""

from datamodules.cifar import CIFARDataModule
from datamodules.digits import DigitsDataModule, OneShotDigitsDataModule
from datamodules.image_folders import ImageFolderDataModule
from datamodules.image_pair import ImagePairDataModule
from datamodules.single_image import SingleImageDataModule
from datamodules.unpaired_folders import UnpairedFoldersDataModule

__all__ = [
    "CIFARDataModule",
    "DigitsDataModule",
    "OneShotDigitsDataModule",
    "ImageFolderDataModule",
    "ImagePairDataModule",
    "SingleImageDataModule",
    "UnpairedFoldersDataModule",
]
