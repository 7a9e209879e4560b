"""DataModules, one file per data family."""

from datamodules.celeba_domains import CelebAAttributeDomains
from datamodules.cifar import CIFARDataModule
from datamodules.digits import DigitsDataModule, OneShotDigitsDataModule
from datamodules.domain_labels import CelebADomainLabels
from datamodules.image_folders import ImageFolderDataModule
from datamodules.image_pair import ImagePairDataModule
from datamodules.segmentation import GTAVCityscapesDataModule
from datamodules.single_image import SingleImageDataModule
from datamodules.single_video import SingleVideoDataModule
from datamodules.two_domains import TwoDomainDataModule
from datamodules.unpaired_folders import FolderDomains, UnpairedFoldersDataModule

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
