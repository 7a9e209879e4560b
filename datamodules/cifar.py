"""CIFAR-10/100 from torchvision's on-disk layout, and CIFAR-10-C/100-C from their .npy files.

Layouts read (nothing is downloaded):

    <data_dir>/cifar-10-batches-py/{data_batch_1..5, test_batch}      pickles: b"data" [N, 3072] uint8, b"labels"
    <data_dir>/cifar-100-python/{train, test}                          pickles: b"data", b"fine_labels"
    <corruptions_dir>/<corruption>.npy  [5 * 10000, 32, 32, 3] uint8   severities 1..5, in blocks of 10000
    <corruptions_dir>/labels.npy        [5 * 10000]
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from datamodules.augmix import AugMixViews
from datamodules.loaders import ClassificationDataModule
from dfgen.settings import AT_LEAST_1, NON_NEGATIVE, Each, OneOf, Range, check_settings

CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip
SEVERITIES = (1, 2, 3, 4, 5)

LAYOUTS = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", 100),
}
CLASS_NAMES = {  # the label names of the datasets' meta files, in label order
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    "cifar100": (
        "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
        "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
        "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
        "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
        "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
        "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
        "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
        "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
        "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
        "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
    ),
}  # fmt: skip
STATISTICS = {  # per-channel mean and std of the training images
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def _integer_dtype(*args: object) -> np.dtype:
    """numpy.dtype for the unpickler: only integer types (uint8 images, integer labels)."""
    dtype = np.dtype(*args)
    if dtype.kind not in "iu":
        raise pickle.UnpicklingError(f"an array of dtype {dtype}, where a CIFAR batch holds only integers")
    return dtype


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """_codecs.encode, as Python 3's protocol-2 pickles store bytes: text encoded as latin-1 only."""
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"bytes encoded as {encoding!r}, where pickles use 'latin1'")
    return text.encode("latin1")


class CIFARUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR's python batches hold: dicts, lists, bytes, str, numbers and integer
    numpy arrays. Any other global (a function, a class) stops the load before anything calls it.

    Arrays refer to numpy.core.multiarray._reconstruct, numpy.ndarray and numpy.dtype (the
    original files, pickled by Python 2, and any protocol 2-4 pickle; numpy 2 names the module
    numpy._core), or numpy.core.numeric._frombuffer (protocol 5); bytes pickled by Python 3 at
    protocol 2 refer to _codecs.encode.
    """

    ARRAY_GLOBALS = frozenset(
        (f"numpy.{core}.{module}", name)
        for core in ("core", "_core")
        for module, name in (("multiarray", "_reconstruct"), ("numeric", "_frombuffer"))
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("numpy", "dtype"):
            return _integer_dtype
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) == ("numpy", "ndarray") or (module, name) in self.ARRAY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR batch never holds")


def read_cifar(data_dir: str | Path, dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 32, 32, 3] uint8 and labels [N] int64 of a CIFAR split ("train" or "test")."""
    folder, train_files, test_files, label_key, num_classes = LAYOUTS[dataset]
    directory = Path(data_dir) / folder
    expected = f"{directory}/{{{', '.join(train_files + test_files)}}} (torchvision's python-pickle layout)"
    images, labels = [], []
    for name in train_files if split == "train" else test_files:
        path = directory / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; expected {expected}")
        try:
            with open(path, "rb") as handle:
                batch = CIFARUnpickler(handle, encoding="bytes").load()
            data, batch_labels = np.asarray(batch[b"data"], dtype=np.uint8), np.asarray(batch[label_key])
            data = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AttributeError) as error:
            raise ValueError(f"{path}: not a CIFAR batch ({error!r}); expected {expected}") from error
        if len(data) != len(batch_labels) or batch_labels.min() < 0 or batch_labels.max() >= num_classes:
            raise ValueError(f"{path}: {len(data)} images but labels outside 0..{num_classes - 1} or of another count")
        images.append(data)
        labels.append(batch_labels.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)


def read_corruption(corruptions_dir: str | Path, corruption: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """All five severities of one corruption: images [5 * n, 32, 32, 3] uint8 and labels [5 * n]."""
    directory = Path(corruptions_dir)
    images_path, labels_path = directory / f"{corruption}.npy", directory / "labels.npy"
    for path in (images_path, labels_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; expected <corruption>.npy and labels.npy in {directory}")
    try:
        images, labels = np.load(images_path, mmap_mode="r"), np.load(labels_path)
    except ValueError as error:
        raise ValueError(f"{images_path} or {labels_path}: not a readable .npy file ({error})") from error
    shape_ok = images.ndim == 4 and images.shape[1:] == (32, 32, 3) and images.dtype == np.uint8
    if not shape_ok or len(images) != len(labels) or len(images) % len(SEVERITIES):
        raise ValueError(
            f"{images_path}: got {images.shape} {images.dtype} with {len(labels)} labels; expected uint8 "
            f"[5 * n, 32, 32, 3] (severities 1-5 in blocks of n) and as many labels"
        )
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"{labels_path}: labels outside 0..{num_classes - 1}")
    return images, labels.astype(np.int64)


class ImageArray(Dataset):
    """(image tensor, label) pairs from uint8 HWC arrays, through a torchvision transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: v2.Transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(np.ascontiguousarray(self.images[index])).permute(2, 0, 1)
        return self.transform(image), int(self.labels[index])


class CIFARDataModule(ClassificationDataModule):
    """CIFAR-10 or CIFAR-100, validated on the test split, optionally tested on CIFAR-C.

    Args:
        data_dir: folder holding `cifar-10-batches-py/` or `cifar-100-python/`.
        dataset: "cifar10" or "cifar100".
        batch_size: images per process and step.
        num_workers: loader processes.
        rotation: degrees of random rotation in training augmentation (the pAdaIN CIFAR-100
            recipe uses 15; 0 turns it off). Crop 32 with padding 4 and horizontal flips always.
        corruptions_dir: folder of CIFAR-10-C/100-C .npy files; `test` then evaluates the clean
            test set followed by every corruption at every severity.
        corruptions: which corruptions to test (default: all 15).
        normalize: subtract the dataset mean and divide by its std (else map to [-1, 1], as the
            AugMix recipe does).
        augmix: training items become ((clean, augmix_1, augmix_2), label) for the Jensen-Shannon
            consistency loss (the pAdaIN CIFAR-100-C recipe); crop and flip come first.
        predict_dir: a folder of images (any size, resized to 32x32) that `predict` classifies.
    """

    setting_rules = {
        "dataset": OneOf(tuple(LAYOUTS)), "batch_size": AT_LEAST_1, "num_workers": NON_NEGATIVE,
        "rotation": Range(0, 180), "corruptions": Each(OneOf(CORRUPTIONS)),
    }  # fmt: skip

    def __init__(
        self,
        data_dir: str,
        dataset: str = "cifar100",
        batch_size: int = 128,
        num_workers: int = 4,
        rotation: float = 15.0,
        corruptions_dir: str | None = None,
        corruptions: list[str] | None = None,
        normalize: bool = True,
        augmix: bool = False,
        predict_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        self.num_classes = LAYOUTS[dataset][-1]
        mean, std = STATISTICS[dataset] if normalize else ((0.5,) * 3, (0.5,) * 3)
        to_float = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
        augment = [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()]
        augment += [v2.RandomRotation(rotation)] if rotation else []
        self.train_transform = v2.Compose(augment + to_float)
        self.test_transform = v2.Compose(to_float)
        self.predict_transform = v2.Compose([v2.Resize((32, 32), antialias=True), *to_float])
        self.class_names = CLASS_NAMES[dataset]
        self.augmix_preprocess = v2.Compose([v2.PILToTensor(), *to_float])
        self.augmix_geometric = v2.Compose(augment)
        self.test_names: list[str] = ["clean"]

    def setup(self, stage: str) -> None:
        hp = self.hparams
        if stage == "fit":
            train = read_cifar(hp.data_dir, hp.dataset, "train")
            if hp.augmix:
                plain = ImageArray(*train, transform=v2.Identity())
                self.train_set = AugMixViews(plain, self.augmix_geometric, self.augmix_preprocess)
            else:
                self.train_set = ImageArray(*train, self.train_transform)
        self.clean_test = ImageArray(*read_cifar(hp.data_dir, hp.dataset, "test"), self.test_transform)
        if stage == "test" and hp.corruptions_dir:
            self.test_sets, self.test_names = [self.clean_test], ["clean"]
            for corruption in hp.corruptions or CORRUPTIONS:
                images, labels = read_corruption(hp.corruptions_dir, corruption, self.num_classes)
                block = len(labels) // len(SEVERITIES)
                for index, severity in enumerate(SEVERITIES):
                    part = slice(index * block, (index + 1) * block)
                    self.test_sets.append(ImageArray(images[part], labels[part], self.test_transform))
                    self.test_names.append(f"{corruption}/{severity}")
        else:
            self.test_sets, self.test_names = [self.clean_test], ["clean"]
