"""ImageNet-style class folders, and ImageNet-C-style corruption folders.

Layouts read (nothing is downloaded):

    <data_dir>/train/<class>/<image>            training images, one folder per class
    <data_dir>/val/<class>/<image>              validation images, the same class folders
    <corruptions_dir>/<corruption>/<severity>/<class>/<image>    severities 1..5
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from datamodules.cifar import CORRUPTIONS, SEVERITIES
from datamodules.loaders import ClassificationDataModule
from datamodules.paired_transforms import IMAGENET_MEAN, IMAGENET_STD
from dfgen.images import load_rgb8
from dfgen.settings import AT_LEAST_1, NON_NEGATIVE, Each, OneOf, check_pair_order, check_settings


def class_folders(root: Path, classes: list[str] | None, transform: v2.Transform) -> ImageFolder:
    """An ImageFolder whose class folders must be `classes` (when given), with clear errors; its images
    are read as torchvision reads them (dfgen.images.load_rgb8), with errors that name the file."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is missing; expected <class>/<image> folders there")
    try:
        folder = ImageFolder(str(root), transform=transform, loader=load_rgb8)
    except (FileNotFoundError, RuntimeError) as error:
        raise ValueError(f"{root}: no class folders with images ({error})") from error
    if classes is not None and folder.classes != classes:
        raise ValueError(
            f"{root}: class folders {folder.classes[:5]}... differ from the training classes {classes[:5]}..."
        )
    return folder


class ImageFolderDataModule(ClassificationDataModule):
    """Images in class folders (ImageNet layout), optionally tested on ImageNet-C-style folders.

    Args:
        data_dir: folder with `train/` and `val/`, each holding one folder per class.
        image_size: side of the training crop and of the evaluation centre crop (224).
        resize: evaluation images are resized to this short side before the centre crop (256).
        batch_size: images per process and step.
        num_workers: loader processes.
        corruptions_dir: ImageNet-C-style folder; `test` then evaluates the clean `val/` set
            followed by every corruption at every severity, and the module reports mCE
            (errors normalised by AlexNet's).
        corruptions: which corruptions to test (default: all 15).
        predict_dir: a folder of images that `predict` classifies (evaluation resize and crop).
    """

    setting_rules = {
        "image_size": AT_LEAST_1, "resize": AT_LEAST_1, "batch_size": AT_LEAST_1, "num_workers": NON_NEGATIVE,
        "corruptions": Each(OneOf(CORRUPTIONS)),
    }  # fmt: skip
    normalize_corruption_errors = True  # mCE is defined against AlexNet's ImageNet-C errors

    def __init__(
        self,
        data_dir: str,
        image_size: int = 224,
        resize: int = 256,
        batch_size: int = 64,
        num_workers: int = 8,
        corruptions_dir: str | None = None,
        corruptions: list[str] | None = None,
        predict_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        check_pair_order(self, "image_size", "resize", strict=False)
        to_float = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        self.train_transform = v2.Compose([v2.RandomResizedCrop(image_size), v2.RandomHorizontalFlip(), *to_float])
        self.test_transform = v2.Compose([v2.Resize(resize), v2.CenterCrop(image_size), *to_float])
        self.predict_transform = self.test_transform
        self.classes = self.class_names = class_folders(Path(data_dir) / "train", None, None).classes
        self.num_classes = len(self.classes)
        self.test_names: list[str] = ["clean"]

    def setup(self, stage: str) -> None:
        root = Path(self.hparams.data_dir)
        if stage == "fit":
            self.train_set = class_folders(root / "train", self.classes, self.train_transform)
        self.test_sets: list[Dataset] = [class_folders(root / "val", self.classes, self.test_transform)]
        self.test_names = ["clean"]
        if stage == "test" and self.hparams.corruptions_dir:
            for corruption in self.hparams.corruptions or CORRUPTIONS:
                for severity in SEVERITIES:
                    folder = Path(self.hparams.corruptions_dir) / corruption / str(severity)
                    self.test_sets.append(class_folders(folder, self.classes, self.test_transform))
                    self.test_names.append(f"{corruption}/{severity}")
