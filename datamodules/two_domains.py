"""Two unpaired image domains A and B, for attribute-based domain translation: the image and mask
readers and the DataModule that CelebA's attribute domains and the CycleGAN folders share.

Optional object masks (the DataModules' mask_dir), for evaluating a method's masks as
segmentations: one folder of PNGs named like the images, e.g. <mask_dir>/000001.png for
img_align_celeba/000001.jpg, each of its image's size, 0 on the background and 255 on the object
(synthetic.write_synthetic_celeba writes masks/Eyeglasses/, masks/Mustache/ and
masks/Smiling/ in this form).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF

from datamodules.loaders import StreamedTrainingData, evaluation_loader
from dfgen.images import check_images_complete, displayed_size, list_images, load_image
from dfgen.settings import AT_LEAST_1, NON_NEGATIVE

DOMAIN_KEYS = ("train_a", "train_b", "test_a", "test_b")


def _crop_and_resize(image: torch.Tensor, path: str | Path, crop_size: int | None, size: int) -> torch.Tensor:
    """[C, H, W] -> [C, size, size]: the centre crop (when crop_size), then an antialiased resize."""
    if crop_size is not None:
        if crop_size > min(image.shape[-2:]):
            height, width = image.shape[-2:]
            raise ValueError(f"{path}: {width}x{height} image is smaller than crop_size={crop_size}")
        image = TF.center_crop(image, [crop_size, crop_size])
    return TF.resize(image, [size, size], antialias=True)


def load_face(path: str | Path, crop_size: int | None, size: int) -> torch.Tensor:
    """An image file as a float tensor [3, size, size] in [-1, 1].

    crop_size: the side of a centre crop taken first (178 keeps the face region of CelebA's
    178x218 images, as DID does), then resized to size x size with antialiasing; None resizes
    the whole image to a square directly (aspect ratio not kept, as MBU does).
    """
    return _crop_and_resize(load_image(path), path, crop_size, size).clamp(-1, 1)


def load_mask(path: str | Path, crop_size: int | None, size: int) -> torch.Tensor:
    """A mask file (0 background, 255 object; grey or colour files are averaged over channels) as
    a float tensor [1, size, size] in {0, 1}, cropped and resized as `load_face` does its image.

    The mask is resized as a float with load_face's antialiased (triangle-filter) resize, then
    thresholded: 1 where the object covers at least half of the output pixel's footprint. The
    image's pixel there is the same weighted mix of object and surroundings, so the mask marks
    exactly the pixels that look more object than background in the loaded image: a thin part
    (a 3-pixel frame at 64 px) is kept when the image shows it, and a part the image blurs to
    below half strength is dropped. Nearest-neighbour resizing instead samples one source pixel
    per output pixel, so thin parts come and go with their sub-pixel position.

    Raises FileNotFoundError (missing) or ValueError (not an image, smaller than crop_size, or
    values only 0 and 1, i.e. labels rather than a 0/255 mask), each naming the file.
    """
    mask = (load_image(path) + 1).mean(0, keepdim=True) / 2  # [1, H, W] in [0, 1]
    if mask.max() > 0 and (mask * 255).round().max() <= 1:
        raise ValueError(f"{path}: mask values are 0 and 1; expected 0 (background) and 255 (object)")
    return (_crop_and_resize(mask, path, crop_size, size) >= 0.5).float()


def mask_files(image_files: Sequence[Path], mask_dir: str | Path) -> list[Path]:
    """The mask of each image: <mask_dir>/<image stem>.png."""
    return [Path(mask_dir) / f"{Path(path).stem}.png" for path in image_files]


def check_masks(image_files: Sequence[Path], mask_dir: str | Path) -> None:
    """Check that every image has its own mask (see `mask_files`) of the image's size.

    Reads headers, and checks that every mask is complete (`check_images_complete`). Raises
    FileNotFoundError naming the folder or the expected mask file, or ValueError naming the mask
    and its image when their sizes differ or a file is not an image or is truncated, or naming
    both images when two of them (in different folders) would share one mask.
    """
    mask_dir = Path(mask_dir)
    if not mask_dir.is_dir():
        raise FileNotFoundError(f"mask_dir {mask_dir} is not a folder; expected <image stem>.png masks in it")
    owners: dict[Path, Path] = {}
    for image_path, mask_path in zip(image_files, mask_files(image_files, mask_dir)):
        owner = owners.setdefault(mask_path, image_path)
        if owner != image_path:
            raise ValueError(f"{owner} and {image_path} would share the mask {mask_path}; rename one of them")
        if not mask_path.is_file():
            raise FileNotFoundError(f"{mask_path}: mask file is missing; expected the mask of {image_path}")
        (mask_width, mask_height), (width, height) = displayed_size(mask_path), displayed_size(image_path)
        if (mask_width, mask_height) != (width, height):
            raise ValueError(
                f"{mask_path}: mask is {mask_width}x{mask_height} but its image {image_path} is {width}x{height}; "
                "a mask must have its image's size"
            )
    check_images_complete(list(owners))


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


class FaceImages(Dataset):
    """load_face(files[i], crop_size, size): [3, size, size] in [-1, 1].

    With in_memory, the first access decodes every file once and keeps them as uint8
    [N, 3, size, size]; items are then the same up to uint8 quantisation (<= 0.5 / 127.5).
    """

    def __init__(self, files: list[Path], crop_size: int | None, size: int, in_memory: bool = False) -> None:
        self.files, self.crop_size, self.size, self.in_memory = files, crop_size, size, in_memory
        self.cache: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.files)

    def fill_cache(self) -> None:
        if self.in_memory and self.cache is None:
            self.cache = torch.stack([_to_uint8(load_face(path, self.crop_size, self.size)) for path in self.files])

    def __getitem__(self, index: int) -> torch.Tensor:
        if not self.in_memory:
            return load_face(self.files[index], self.crop_size, self.size)
        self.fill_cache()
        return self.cache[index].float() / 127.5 - 1


class FaceMasks(Dataset):
    """load_mask(files[i], crop_size, size): [1, size, size] in {0, 1}, read when an item is asked for."""

    def __init__(self, files: list[Path], crop_size: int | None, size: int) -> None:
        self.files, self.crop_size, self.size = files, crop_size, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        return load_mask(self.files[index], self.crop_size, self.size)


class ImagePairs(Dataset):
    """Item i: {"a": images_a[i], "b": images_b[i], "index": i} for the first `count` pairs, plus
    "mask_a": masks[0][i] and "mask_b": masks[1][i] ([1, size, size]) when `masks` is given."""

    def __init__(
        self,
        images_a: Dataset,
        images_b: Dataset,
        count: int | None = None,
        masks: tuple[Dataset, Dataset] | None = None,
    ) -> None:
        self.images_a, self.images_b, self.masks = images_a, images_b, masks
        self.count = min(len(images_a), len(images_b), *([count] if count is not None else []))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        item = {"a": self.images_a[index], "b": self.images_b[index], "index": index}
        if self.masks is not None:
            item |= {"mask_a": self.masks[0][index], "mask_b": self.masks[1][index]}
        return item


class TwoDomainDataModule(StreamedTrainingData):
    """Two unpaired image domains A and B: resumable training batches of both, test pairs.

    A subclass's `__init__` calls `save_hyperparameters()`, then `_set_domains(files)` with
    the file lists "train_a", "train_b", "test_a", "test_b". Training batches are
    {"a": [batch_size, 3, size, size], "b": [...]} in [-1, 1]; validation, test and predict
    items are {"a": [3, size, size], "b": [3, size, size], "index": i} (batched by the loader),
    plus {"mask_a": [1, size, size], "mask_b": [...]} in {0, 1} when mask_dir is given.

    Common args:
        size: images are size x size.
        crop_size: side of the centre crop taken before resizing (178: the face square of
            CelebA's 178x218 images, the DID recipe); None resizes the whole image to a square
            (the MBU recipe).
        flip: flip each training image horizontally with probability 1/2.
        batch_size: images per domain per training step (drawn without replacement).
        batch_seed: seed of the training batches (batch k is a function of (seed, k); rank r
            adds r).
        num_workers: loader processes (the same batches in the same order for any number).
        in_memory: decode every image once, resized, and keep them as uint8 tensors (for small
            datasets and CPU runs; size^2 * 3 bytes per image). The caches fill on first use
            (the training loader fills the training ones before starting its workers), so
            construction stays fast.
        eval_batch_size: batch size of the validation, test and predict loaders.
        num_eval: test pairs used by validation and test (None: all, i.e. as many as the
            smaller test domain has).
        predict_dir_a: a folder of images that predict uses as domain A (default: test A).
        predict_dir_b: the same for domain B. Predict pairs the two in sorted order, up to
            the shorter list (num_eval does not apply).
        verify_images: check every image file at construction (dfgen.images.
            check_images_complete), so that a file that is not an image or is truncated fails
            before anything is written, with its name: a header parse and, for a JPEG or PNG, a
            look at its last bytes, so complete files are not decoded (about 30 s of CPU for all of
            CelebA, a fifth of a full decode).
        mask_dir: a folder of object masks named like the images (<image stem>.png, 0 background,
            255 object, each of its image's size; see load_mask). Evaluation items then carry
            "mask_a" and "mask_b", cropped and resized like the images. Construction checks that
            every image of the validation/test pairs (the first num_eval) and of the predict
            pairs has its mask; training images need none, and training batches are unchanged.
    """

    setting_rules = {
        "size": AT_LEAST_1, "crop_size": AT_LEAST_1, "batch_size": AT_LEAST_1, "num_workers": NON_NEGATIVE,
        "eval_batch_size": AT_LEAST_1, "num_eval": AT_LEAST_1,
    }  # fmt: skip

    def _set_domains(self, files: dict[str, list[Path]], definitions: dict[str, str] | None = None) -> None:
        """Check and keep the four file lists; `definitions` describes each key for error messages."""
        hp = self.hparams
        where = f" of {hp.data_dir}" if "data_dir" in hp else ""
        for key in DOMAIN_KEYS:
            if not files.get(key):
                definition = (definitions or {}).get(key, key)
                raise ValueError(f"domain {key} ({definition}){where} has no image")
        for domain in ("a", "b"):
            count = len(files[f"train_{domain}"])
            if count < hp.batch_size:
                definition = (definitions or {}).get(f"train_{domain}", f"train_{domain}")
                raise ValueError(
                    f"domain train_{domain} ({definition}){where} has {count} images, fewer than "
                    f"batch_size={hp.batch_size} (a batch draws distinct images)"
                )
        predict = {domain: hp.get(f"predict_dir_{domain}") for domain in ("a", "b")}
        predict_files = {domain: list_images(Path(folder)) for domain, folder in predict.items() if folder}
        if hp.verify_images:
            check_images_complete([path for key in DOMAIN_KEYS for path in files[key]])
            check_images_complete([path for paths in predict_files.values() for path in paths])
        self.files = {key: list(files[key]) for key in DOMAIN_KEYS}
        self.images = {key: FaceImages(self.files[key], hp.crop_size, hp.size, hp.in_memory) for key in DOMAIN_KEYS}
        self.predict_images = {
            domain: FaceImages(predict_files[domain], hp.crop_size, hp.size) if domain in predict_files
            else self.images[f"test_{domain}"]
            for domain in ("a", "b")
        }  # fmt: skip
        self.masks: dict[str, FaceMasks] | None = None
        self.predict_masks: dict[str, FaceMasks] | None = None
        if hp.get("mask_dir"):
            self._set_masks(Path(hp.mask_dir))

    def _set_masks(self, mask_dir: Path) -> None:
        """Check the masks of the evaluation images that the loaders use and keep their readers."""
        hp = self.hparams
        test_count, predict_count = len(self._pairs("test")), len(self._pairs("predict"))
        used = []  # the images the pairs use (predict defaults to the test images: no repeats)
        for domain in ("a", "b"):
            used += self.images[f"test_{domain}"].files[:test_count]
            used += self.predict_images[domain].files[:predict_count]
        check_masks(list(dict.fromkeys(used)), mask_dir)

        def readers(images: FaceImages) -> FaceMasks:  # every file's mask; only the checked ones are read
            return FaceMasks(mask_files(images.files, mask_dir), hp.crop_size, hp.size)

        self.masks = {key: readers(self.images[key]) for key in ("test_a", "test_b")}
        self.predict_masks = {domain: readers(self.predict_images[domain]) for domain in ("a", "b")}

    def _pairs(self, part: str) -> ImagePairs:
        """The evaluation pairs of `part`, "test" (validation and test) or "predict", with their masks."""
        if part == "test":
            images, count = (self.images["test_a"], self.images["test_b"]), self.hparams.num_eval
            masks = None if self.masks is None else (self.masks["test_a"], self.masks["test_b"])
        else:
            images, count = (self.predict_images["a"], self.predict_images["b"]), None
            masks = None if self.predict_masks is None else (self.predict_masks["a"], self.predict_masks["b"])
        return ImagePairs(*images, count, masks)

    def training_batch(self, rng: torch.Generator) -> dict[str, torch.Tensor]:
        """{"a": [batch_size, 3, size, size], "b": [...]} in [-1, 1]; all randomness from `rng`."""
        hp, batch = self.hparams, {}
        for domain in ("a", "b"):
            images = self.images[f"train_{domain}"]
            picks = torch.randperm(len(images), generator=rng)[: hp.batch_size].tolist()
            stacked = torch.stack([images[index] for index in picks])
            if hp.flip:
                flips = torch.rand(len(picks), generator=rng) < 0.5
                stacked = torch.where(flips[:, None, None, None], stacked.flip(-1), stacked)
            batch[domain] = stacked
        return batch

    def train_dataloader(self) -> DataLoader:
        # fill the caches here, once, rather than in every worker process
        for key in ("train_a", "train_b"):
            self.images[key].fill_cache()
        return super().train_dataloader()

    def val_dataloader(self) -> DataLoader:
        hp = self.hparams
        for key in ("test_a", "test_b"):
            self.images[key].fill_cache()
        return evaluation_loader(self._pairs("test"), hp.eval_batch_size, hp.num_workers)

    test_dataloader = val_dataloader

    def predict_dataloader(self) -> DataLoader:
        for images in self.predict_images.values():
            images.fill_cache()
        hp = self.hparams
        return DataLoader(self._pairs("predict"), batch_size=hp.eval_batch_size, num_workers=hp.num_workers)
