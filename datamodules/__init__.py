"""DataModules, one file per data family."""

from datamodules.celeba import CelebAAttributeDomains, CelebADomainLabels, FolderDomains, TwoDomainDataModule
from datamodules.cifar import CIFARDataModule
from datamodules.digits import DigitsDataModule, OneShotDigitsDataModule
from datamodules.image_folders import ImageFolderDataModule
from datamodules.image_pair import ImagePairDataModule
from datamodules.segmentation import GTAVCityscapesDataModule
from datamodules.single_image import SingleImageDataModule
from datamodules.single_video import SingleVideoDataModule
from datamodules.unpaired_folders import UnpairedFoldersDataModule

__all__ = [
    "CelebAAttributeDomains",
    "CelebADomainLabels",
    "FolderDomains",
    "TwoDomainDataModule",
    "CIFARDataModule",
    "DigitsDataModule",
    "OneShotDigitsDataModule",
    "ImageFolderDataModule",
    "ImagePairDataModule",
    "GTAVCityscapesDataModule",
    "SingleImageDataModule",
    "SingleVideoDataModule",
    "UnpairedFoldersDataModule",
]
