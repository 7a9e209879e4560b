"""CelebA's domains A and B as a two-class dataset, for training an A-vs-B membership classifier."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from datamodules.celeba_domains import SPLITS, celeba_domain_files
from datamodules.loaders import ClassificationDataModule
from datamodules.two_domains import FaceImages
from dfgen.images import check_images_complete
from dfgen.settings import AT_LEAST_1, NON_NEGATIVE, OneOf, check_settings


class LabelledFaces(Dataset):
    """(image [3, size, size] in [-1, 1], label int), flipped horizontally with probability 1/2 when `flip`."""

    def __init__(self, images: FaceImages, labels: list[int], flip: bool) -> None:
        self.images, self.labels, self.flip = images, labels, flip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        # the loader seeds torch's generator in every worker, so this draw differs across workers
        if self.flip and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image, self.labels[index]


class CelebADomainLabels(ClassificationDataModule):
    """CelebA domains A and B (as in CelebAAttributeDomains) as a two-class dataset: label 0 for A,
    1 for B, for training an A-vs-B membership classifier.

    Args:
        data_dir, domain_a, domain_b, split, num_test: the domains, as in CelebAAttributeDomains.
        size: images are size x size in [-1, 1].
        crop_size: centre crop before resizing (None: squash the whole image).
        batch_size: images per step (training drops the last incomplete batch).
        num_workers: loader processes.
        verify_images: check every image file at construction (fails early, naming a file that
            is not an image or is truncated).
    """

    num_classes = 2
    setting_rules = {
        "split": OneOf(SPLITS), "num_test": AT_LEAST_1, "size": AT_LEAST_1, "crop_size": AT_LEAST_1,
        "batch_size": AT_LEAST_1, "num_workers": NON_NEGATIVE,
    }  # fmt: skip

    def __init__(
        self,
        data_dir: str,
        domain_a: str = "Smiling & ~Eyeglasses",
        domain_b: str = "~Smiling & Eyeglasses",
        split: str = "first_n",
        num_test: int = 64,
        size: int = 128,
        crop_size: int | None = 178,
        batch_size: int = 64,
        num_workers: int = 0,
        verify_images: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        self.files = celeba_domain_files(data_dir, domain_a, domain_b, split, num_test)
        if verify_images:
            check_images_complete([path for paths in self.files.values() for path in paths])
        self.test_names: list[str] = ["clean"]

    def _labelled(self, part: str, flip: bool) -> LabelledFaces:
        hp = self.hparams
        files_a, files_b = self.files[f"{part}_a"], self.files[f"{part}_b"]
        images = FaceImages(files_a + files_b, hp.crop_size, hp.size)
        return LabelledFaces(images, [0] * len(files_a) + [1] * len(files_b), flip)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.train_set = self._labelled("train", flip=True)
        self.test_sets: list[Dataset] = [self._labelled("test", flip=False)]
