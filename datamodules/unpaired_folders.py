"""Unpaired image folders in the CycleGAN layout, read by two DataModules:

    <root>/trainA/*.png|jpg   domain A (one-shot translation: the single sample is one of these,
                              sorted by name)
    <root>/trainB/*           domain B
    <root>/testA/*            A images translated by validation, test and predict
    <root>/testB/*            B images (one-shot translation: the references of the style distance)

UnpairedFoldersDataModule serves one-shot translation's drawing and style tasks
(`drawing_and_style_transfer/` of the official code); FolderDomains serves the two-domain
methods (domain intersection, content transfer) as CelebAAttributeDomains does.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF

from datamodules.loaders import StreamedTrainingData, evaluation_loader
from datamodules.two_domains import DOMAIN_KEYS, TwoDomainDataModule, load_face
from dfgen.images import list_images, load_image
from dfgen.settings import AT_LEAST_1, NON_NEGATIVE, OneOf, check_pair_order, check_settings

CYCLEGAN_FOLDERS = ("trainA", "trainB", "testA", "testB")


def cyclegan_files(root: str | Path) -> dict[str, list[Path]]:
    """The image files of each folder of CYCLEGAN_FOLDERS under `root`, sorted by name, keyed by the
    folder's name; FileNotFoundError names a missing folder, ValueError an empty one."""
    layout = f"the CycleGAN layout {' '.join(f'{folder}/' for folder in CYCLEGAN_FOLDERS)}"
    return {folder: list_images(Path(root) / folder, layout) for folder in CYCLEGAN_FOLDERS}


def flip_and_rotate(images: torch.Tensor, degrees: float, rng: torch.Generator) -> torch.Tensor:
    """One-shot translation's augmentation in both official code bases, torchvision's
    RandomHorizontalFlip then RandomRotation(degrees) on PIL images: each image flipped with
    probability 1/2, then rotated about its centre by U(-degrees, degrees) with
    nearest-neighbour sampling and black corners (PIL's `rotate` defaults; the same pixels as
    torchvision's `rotate` with NEAREST and fill -1). images [N, C, H, W] in [-1, 1]."""
    count, _, height, width = images.shape
    flips = torch.rand(count, generator=rng) < 0.5
    radians = (torch.rand(count, generator=rng) * 2 - 1) * degrees * math.pi / 180
    images = torch.where(flips[:, None, None, None], images.flip(-1), images)
    cos, sin = torch.cos(radians), torch.sin(radians)
    # output -> input sampling positions in grid_sample's [-1, 1] coordinates, square pixels kept
    theta = torch.stack([torch.stack([cos, -sin * height / width, 0 * cos], 1),
                         torch.stack([sin * width / height, cos, 0 * cos], 1)], 1)  # fmt: skip
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    # sampled on images + 1, whose zero padding is black (-1) once shifted back
    return F.grid_sample(images + 1, grid, mode="nearest", padding_mode="zeros", align_corners=False) - 1


class ResizedImages(Dataset):
    """(index, image [3, size, size] in [-1, 1], -1): images resized for evaluation (no labels)."""

    def __init__(self, files: list[Path], size: int) -> None:
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor, int]:
        return index, load_face(self.files[index], None, self.size), -1


class UnpairedFoldersDataModule(StreamedTrainingData):
    """One A image and all of B, with the CycleGAN augmentation at every step.

    Args:
        root: the dataset folder (trainA/, trainB/, testA/, testB/).
        phase: 1 (batches of B) or 2 (the single A sample and one B image per step).
        sample_index: which image of the sorted trainA/ is the single sample (official: 0).
        load_size: images are resized to load_size x load_size (bicubic) ...
        crop_size: ... then randomly cropped to crop_size x crop_size.
        flip_and_rotate: random horizontal flip and rotation by U(-rotation_degrees, rotation_degrees),
            nearest-neighbour with black corners as the official code (`flip_and_rotate`).
        rotation_degrees: 7 in the official code.
        batch_size: B images per phase-1 batch (official: 1).
        batch_seed: seed of the training batches (rank r adds r).
        num_eval: testA images translated by validation/test (None: all).
        num_references: testB images whose Gram matrices are the style references.
        predict_dir: a folder of further A images that `predict` translates after the sample
            (default: testA/); in phase 1, of B images that `predict` reconstructs (default: testB/).
        eval_batch_size: batch size of the evaluation loaders.
    """

    setting_rules = {
        "phase": OneOf((1, 2)), "sample_index": NON_NEGATIVE, "load_size": AT_LEAST_1, "crop_size": AT_LEAST_1,
        "rotation_degrees": NON_NEGATIVE, "batch_size": AT_LEAST_1, "num_eval": AT_LEAST_1,
        "num_references": AT_LEAST_1, "eval_batch_size": AT_LEAST_1,
    }  # fmt: skip

    def __init__(
        self,
        root: str,
        phase: int = 2,
        sample_index: int = 0,
        load_size: int = 286,
        crop_size: int = 256,
        flip_and_rotate: bool = True,
        rotation_degrees: float = 7.0,
        batch_size: int = 1,
        batch_seed: int = 0,
        num_eval: int | None = None,
        num_references: int = 50,
        predict_dir: str | None = None,
        eval_batch_size: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        check_pair_order(self, "crop_size", "load_size", strict=False)
        self.files = cyclegan_files(root)
        if not 0 <= sample_index < len(self.files["trainA"]):
            raise ValueError(f"sample_index={sample_index} is outside trainA's {len(self.files['trainA'])} images")
        self.sample_path = self.files["trainA"][sample_index]
        self.sample = load_image(self.sample_path)
        self.predict_files = list_images(Path(predict_dir)) if predict_dir else self.files["testA"]

    def augment(self, image: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """Resize to load_size, random crop to crop_size, then random flip and rotation: [3, crop, crop]."""
        hp = self.hparams
        image = TF.resize(image, [hp.load_size, hp.load_size], interpolation=TF.InterpolationMode.BICUBIC)
        top, left = (int(torch.randint(hp.load_size - hp.crop_size + 1, (), generator=rng)) for _ in range(2))
        image = image[:, top : top + hp.crop_size, left : left + hp.crop_size]
        image = image.clamp(-1, 1)  # bicubic overshoots; the official code resizes uint8 images
        return flip_and_rotate(image[None], hp.rotation_degrees, rng)[0] if hp.flip_and_rotate else image

    def training_batch(self, rng: torch.Generator) -> dict[str, torch.Tensor]:
        hp, b_files = self.hparams, self.files["trainB"]
        count = hp.batch_size if hp.phase == 1 else 1
        picks = torch.randint(len(b_files), (count,), generator=rng).tolist()
        batch = {"b": torch.stack([self.augment(load_image(b_files[i]), rng) for i in picks])}
        if hp.phase == 2:
            batch["a"] = self.augment(self.sample, rng)[None]
        return batch

    def _evaluation_loader(self, files: list[Path]) -> DataLoader:
        dataset = ResizedImages(files, self.hparams.crop_size)
        return evaluation_loader(dataset, self.hparams.eval_batch_size, collate_fn=_collate_unindexed)

    def val_dataloader(self) -> DataLoader:
        files = self.files["testA"]
        return self._evaluation_loader(files if self.hparams.num_eval is None else files[: self.hparams.num_eval])

    test_dataloader = val_dataloader

    def style_references(self) -> torch.Tensor:
        """The first `num_references` testB images [N, 3, crop, crop], the style distance's reference."""
        dataset = ResizedImages(self.files["testB"][: self.hparams.num_references], self.hparams.crop_size)
        return torch.stack([dataset[i][1] for i in range(len(dataset))])

    def predict_dataloader(self) -> DataLoader:
        """(index, image, label): index 0 is the single A sample, then `predict_dir` (or testA); in
        phase 1 (nothing of A trained yet) the B images of `predict_dir` (or testB), from index 0."""
        if self.hparams.phase == 1:
            files = list_images(Path(self.hparams.predict_dir)) if self.hparams.predict_dir else self.files["testB"]
        else:
            files = [self.sample_path, *self.predict_files]
        dataset = ResizedImages(files, self.hparams.crop_size)
        return DataLoader(dataset, batch_size=self.hparams.eval_batch_size, collate_fn=_collate)


def _collate(items: list[tuple[int, torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    indices, images, labels = zip(*items)
    return torch.tensor(indices), torch.stack(images), torch.tensor(labels)


def _collate_unindexed(items: list[tuple[int, torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    return _collate(items)[1:]


class FolderDomains(TwoDomainDataModule):
    """Two domains as image folders in the CycleGAN layout: data_dir/trainA/, trainB/, testA/, testB/.

    Args:
        data_dir: the folder holding trainA/, trainB/, testA/ and testB/ (files sorted by name).
        size: images are size x size.
        crop_size: side of a centre crop taken before resizing; None (the default, as images
            may have any shape) resizes the whole image to a square.
        flip: flip each training image horizontally with probability 1/2.
        batch_size: images per domain per training step, drawn without replacement.
        batch_seed: seed of the training batches (rank r adds r).
        num_workers: loader processes (the same batches in the same order for any number).
        in_memory: decode every image once and keep it, resized, as uint8 (small data, CPU runs).
        eval_batch_size: batch size of the validation, test and predict loaders.
        num_eval: test pairs used by validation and test (None: all).
        predict_dir_a: a folder of images that predict uses as domain A (default: test A).
        predict_dir_b: the same for domain B (default: test B).
        verify_images: check every image file at construction (fails early, naming a file that
            is not an image or is truncated).
        mask_dir: a folder of object masks named <image stem>.png (0 background, 255 object, the
            image's size); evaluation items then carry "mask_a" and "mask_b" [1, size, size] in
            {0, 1}. Every evaluation image must have its mask (checked at construction), and
            testA/ and testB/ images need different stems.
    """

    def __init__(
        self,
        data_dir: str,
        size: int = 128,
        crop_size: int | None = None,
        flip: bool = True,
        batch_size: int = 32,
        batch_seed: int = 0,
        num_workers: int = 0,
        in_memory: bool = False,
        eval_batch_size: int = 64,
        num_eval: int | None = None,
        predict_dir_a: str | None = None,
        predict_dir_b: str | None = None,
        verify_images: bool = True,
        mask_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        files = cyclegan_files(data_dir)
        folders = dict(zip(DOMAIN_KEYS, CYCLEGAN_FOLDERS))
        self._set_domains({key: files[folder] for key, folder in folders.items()},
                          {key: f"folder {folder}/" for key, folder in folders.items()})  # fmt: skip
