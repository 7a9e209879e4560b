"""Digit domains, as 32x32 images in [-1, 1]: MNIST and SVHN from their on-disk files, and two
domains that ship with packages (scikit-learn's handwritten digits, and a textured version of
them in the manner of MNIST-M).

Layouts read (nothing is downloaded):

    <root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]   torchvision's MNIST (or directly in <root>)
    <root>/{train,test}_32x32.mat                                        torchvision's SVHN: X [32, 32, 3, N], y [N, 1]
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from datamodules.loaders import ClassificationDataModule, StreamedTrainingData, evaluation_loader
from datamodules.unpaired_folders import flip_and_rotate
from dfgen.settings import AT_LEAST_1, NON_NEGATIVE, OneOf, check_settings

SOURCES = ("mnist", "svhn", "handwritten", "textured")
PACKAGED = ("handwritten", "textured")  # both drawn from the same scikit-learn scans
CHANNELS = {"mnist": 1, "svhn": 3, "handwritten": 1, "textured": 3}
IDX_MAGIC = {3: 2051, 1: 2049}  # images, labels


def read_idx(path: Path, dims: int) -> np.ndarray:
    """An idx file (MNIST's format: big-endian magic, sizes, then uint8 data), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    magic = int.from_bytes(data[:4], "big")
    if magic != IDX_MAGIC[dims]:
        raise ValueError(f"{path}: magic number {magic}, expected {IDX_MAGIC[dims]} for an idx file of {dims} dims")
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if array.size != np.prod(shape):
        raise ValueError(f"{path}: {array.size} bytes of data for a shape {shape}; the file is truncated")
    return array.reshape(shape)


def read_mnist(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 28, 28] uint8 and labels [N] of MNIST's "train" or "test" split."""
    prefix = "train" if split == "train" else "t10k"
    arrays = []
    for kind, dims in (("images-idx3", 3), ("labels-idx1", 1)):
        name = f"{prefix}-{kind}-ubyte"
        candidates = [Path(root) / "MNIST" / "raw" / name, Path(root) / name]
        candidates += [path.with_name(name + ".gz") for path in candidates]
        path = next((path for path in candidates if path.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"{candidates[0]} is missing (or {name}.gz, or either directly in {root})")
        arrays.append(read_idx(path, dims))
    images, labels = arrays
    if len(images) != len(labels):
        raise ValueError(f"MNIST {split} under {root}: {len(images)} images but {len(labels)} labels")
    return images, labels.astype(np.int64)


def read_svhn(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, 32, 32, 3] uint8 and labels [N] (digit 0 is stored as 10) of SVHN's split."""
    from scipy.io import loadmat

    path = Path(root) / f"{split}_32x32.mat"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; expected torchvision's SVHN layout ({split}_32x32.mat)")
    try:
        mat = loadmat(path)
        images, labels = mat["X"], mat["y"].reshape(-1).astype(np.int64)
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not an SVHN .mat file with X [32, 32, 3, N] and y [N, 1] ({error!r})") from error
    if images.shape[:3] != (32, 32, 3) or images.shape[3] != len(labels):
        raise ValueError(f"{path}: X has shape {images.shape}, expected [32, 32, 3, {len(labels)}]")
    return images.transpose(3, 0, 1, 2), labels % 10


def handwritten_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 handwritten digits (8x8 scans of 0..16), upscaled to [N, 32, 32] uint8.

    The split is a fixed stratified 80/20 one, the same for `textured_digits`.
    """
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    train, test = train_test_split(np.arange(len(digits.target)), test_size=0.2, stratify=digits.target, random_state=0)
    index = train if split == "train" else test
    scans = (digits.images[index] / 16 * 255).astype(np.uint8)
    images = np.stack([np.asarray(Image.fromarray(scan).resize((32, 32), Image.BICUBIC)) for scan in scans])
    return images, digits.target[index].astype(np.int64)


def textured_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The handwritten digits blended onto crops of real colour photographs: |photo - digit|.

    Photos are the colour images scikit-image ships; every digit gets its own random crop
    (fixed seed per split), so colour and texture vary while the digit stays readable.
    """
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    strokes, labels = handwritten_digits(split)
    rng = np.random.default_rng(0 if split == "train" else 1)
    images = np.empty((len(strokes), 32, 32, 3), dtype=np.uint8)
    for index, stroke in enumerate(strokes):
        photo = photos[rng.integers(len(photos))]
        top, left = rng.integers(0, photo.shape[0] - 32), rng.integers(0, photo.shape[1] - 32)
        crop = photo[top : top + 32, left : left + 32].astype(np.int16)
        images[index] = np.abs(crop - stroke[..., None].astype(np.int16)).astype(np.uint8)
    return images, labels


def disjoint_halves(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two fixed stratified halves of the packaged training scans (indices [N // 2], [N - N // 2]).

    The handwritten and the textured training splits hold the same scans in the same order;
    one-shot translation takes A from one half and B from the other, so that B never holds
    a textured copy of the single sample (or of any other A training digit).
    """
    from sklearn.model_selection import train_test_split

    first, second = train_test_split(np.arange(len(labels)), test_size=0.5, stratify=labels.numpy(), random_state=0)
    return torch.from_numpy(np.sort(first)), torch.from_numpy(np.sort(second))


def load_domain(source: str, root: str | Path | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [N, C, 32, 32] float in [-1, 1] (C = 1 for MNIST and handwritten, 3 otherwise) and labels [N]."""
    if source not in SOURCES:
        raise ValueError(f"unknown digit domain {source!r}; expected one of {', '.join(SOURCES)}")
    if source in ("mnist", "svhn") and root is None:
        raise ValueError(f"the {source} domain needs its root directory")
    reader = {"mnist": read_mnist, "svhn": read_svhn}.get(source)
    images, labels = (
        reader(root, split)
        if reader
        else {"handwritten": handwritten_digits, "textured": textured_digits}[source](split)
    )
    tensor = torch.from_numpy(np.ascontiguousarray(images)).float() / 127.5 - 1
    tensor = tensor.unsqueeze(1) if tensor.dim() == 3 else tensor.permute(0, 3, 1, 2)
    if tensor.shape[-1] != 32:
        tensor = F.interpolate(tensor, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    return tensor.contiguous(), torch.from_numpy(labels)


class DigitsDataModule(ClassificationDataModule):
    """One digit domain for classification (the target-domain classifier of translation accuracy).

    Args:
        source: "mnist", "svhn", "handwritten" or "textured".
        root: directory of the MNIST or SVHN files.
        batch_size: images per batch.
        num_workers: loader processes.
    """

    setting_rules = {"source": OneOf(SOURCES), "batch_size": AT_LEAST_1, "num_workers": NON_NEGATIVE}

    def __init__(self, source: str, root: str | None = None, batch_size: int = 128, num_workers: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        load_domain(source, root, "test")  # fail on bad input before any output

    def setup(self, stage: str) -> None:
        hp = self.hparams
        self.train_set = TensorDataset(*load_domain(hp.source, hp.root, "train"))
        self.test_sets = [TensorDataset(*load_domain(hp.source, hp.root, "test"))]


class OneShotDigitsDataModule(StreamedTrainingData):
    """Digit domains A (one sample) and B (all of it) for one-shot translation (the official mnist_to_svhn code).

    The augmentation is the official `--use_augmentation=True` of `mnist_to_svhn/data_loader.py`
    (sagiebenaim/OneShotTranslation): a horizontal flip with probability 1/2 and a rotation by
    U(-0.1, 0.1) degrees, nearest-neighbour with black corners, of every B image in both
    phases; the A sample is the first draw of the same transform, reused verbatim. When A and
    B are the packaged domains, which share their training scans, A takes its sample from one
    stratified half of them and B is the textured other half (`disjoint_halves`).

    Args:
        source: domain A, the one-shot side: "mnist", "svhn", "handwritten" or "textured".
        target: domain B, the many-sample side.
        source_root: MNIST/SVHN directory of A.
        target_root: MNIST/SVHN directory of B.
        phase: 1 (B's autoencoder: batches of B) or 2 (the single A sample and one B image).
        batch_size: B images per phase-1 batch (64).
        sample_index: index of the single A sample in A's training images; None draws one at
            random with `one_shot_seed`.
        one_shot_seed: seed of that draw and of the sample's single augmentation.
        batch_seed: seed of the training batches (rank r adds r).
        augment: the official augmentation (flip and rotation) of every B image and, once,
            of the A sample; false: none (an ablation row of the paper).
        augment_sample_each_step: a variant: a fresh flip and rotation of the A sample at every
            step instead of the official single draw (only with `augment`).
        rotation_degrees: rotation range of the augmentation (the official code: 0.1).
        eval_batch_size: batch size of the evaluation loaders.
        num_eval: A test images translated by validation/test (None: all).
    """

    setting_rules = {
        "source": OneOf(SOURCES), "target": OneOf(SOURCES), "phase": OneOf((1, 2)), "batch_size": AT_LEAST_1,
        "sample_index": NON_NEGATIVE, "rotation_degrees": NON_NEGATIVE, "eval_batch_size": AT_LEAST_1,
        "num_eval": AT_LEAST_1,
    }  # fmt: skip

    def __init__(
        self,
        source: str = "mnist",
        target: str = "svhn",
        source_root: str | None = None,
        target_root: str | None = None,
        phase: int = 2,
        batch_size: int = 64,
        sample_index: int | None = 0,
        one_shot_seed: int = 0,
        batch_seed: int = 0,
        augment: bool = True,
        augment_sample_each_step: bool = False,
        rotation_degrees: float = 0.1,
        eval_batch_size: int = 256,
        num_eval: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        self.source_train = load_domain(source, source_root, "train")
        self.target_train = load_domain(target, target_root, "train")
        self.source_test = load_domain(source, source_root, "test")
        if source in PACKAGED and target in PACKAGED:
            half_a, half_b = disjoint_halves(self.source_train[1])
            self.source_train = tuple(tensor[half_a] for tensor in self.source_train)
            self.target_train = tuple(tensor[half_b] for tensor in self.target_train)
        count = len(self.source_train[0])
        draws = torch.Generator().manual_seed(one_shot_seed)
        if sample_index is None:
            sample_index = int(torch.randint(count, (), generator=draws))
        if not 0 <= sample_index < count:
            raise ValueError(f"sample_index={sample_index} is outside A's {count} training images")
        self.sample_index = sample_index
        self.sample = self.source_train[0][sample_index : sample_index + 1]  # [1, C_a, 32, 32]
        if augment and not augment_sample_each_step:  # the official code's first augmented draw
            self.sample = flip_and_rotate(self.sample, rotation_degrees, draws)
        self.sample_label = int(self.source_train[1][sample_index])
        self.channels = (CHANNELS[source], CHANNELS[target])

    def training_batch(self, rng: torch.Generator) -> dict[str, torch.Tensor]:
        """Phase 1: {"b": [batch_size, C_b, 32, 32]}; phase 2: {"a": [1, C_a, 32, 32], "b": [1, C_b, 32, 32]}."""
        hp = self.hparams
        target = self.target_train[0]
        count = hp.batch_size if hp.phase == 1 else 1
        b = target[torch.randint(len(target), (count,), generator=rng)]
        if hp.augment:  # a draw per image, as a dataset transform
            b = flip_and_rotate(b, hp.rotation_degrees, rng)
        if hp.phase == 1:
            return {"b": b}
        each_step = hp.augment and hp.augment_sample_each_step
        return {"a": flip_and_rotate(self.sample, hp.rotation_degrees, rng) if each_step else self.sample, "b": b}

    def _evaluation_set(self) -> TensorDataset:
        images, labels = self.source_test
        count = len(images) if self.hparams.num_eval is None else self.hparams.num_eval
        return TensorDataset(images[:count], labels[:count])

    def val_dataloader(self) -> DataLoader:
        return evaluation_loader(self._evaluation_set(), self.hparams.eval_batch_size)

    test_dataloader = val_dataloader

    def predict_dataloader(self) -> DataLoader:
        """(index, image, label): index 0 is the single A sample, then the evaluation images; in
        phase 1 (nothing of A trained yet) the first `num_eval` B test images."""
        hp = self.hparams
        if hp.phase == 1:
            images, labels = load_domain(hp.target, hp.target_root, "test")
            images, labels = images[: hp.num_eval], labels[: hp.num_eval]
        else:
            images, labels = self._evaluation_set().tensors
            images = torch.cat([self.sample, images])
            labels = torch.cat([torch.tensor([self.sample_label]), labels])
        return DataLoader(TensorDataset(torch.arange(len(images)), images, labels), batch_size=64)


class DigitDomains(StreamedTrainingData):
    """Two unlabelled digit domains for domain intersection/difference (Benaim et al., ICCV 2019; the
    paper's MNIST -> SVHN domain adaptation), every image as 3 channels.

    Training batches are {"a": [B, 3, 32, 32], "b": [B, 3, 32, 32]}, drawn without
    replacement within a batch; labels are never used in training. Evaluation pairs the
    i-th A test image with the i-th B test image (its guide) and carries A's label, which a
    classifier of B must find in the translation: {"a", "b", "a_labels", "index"}.

    Args:
        domain_a: the source domain: "mnist", "svhn", "handwritten" or "textured".
        domain_b: the target domain.
        root_a: MNIST/SVHN directory of A.
        root_b: MNIST/SVHN directory of B.
        batch_size: images per domain per step (32).
        batch_seed: seed of the training batches (rank r adds r).
        eval_batch_size: batch size of the evaluation loaders.
        num_eval: A test images evaluated (None: all); B guides repeat when B has fewer.
    """

    setting_rules = {
        "domain_a": OneOf(SOURCES), "domain_b": OneOf(SOURCES), "batch_size": AT_LEAST_1,
        "eval_batch_size": AT_LEAST_1, "num_eval": AT_LEAST_1,
    }  # fmt: skip

    def __init__(
        self,
        domain_a: str = "mnist",
        domain_b: str = "svhn",
        root_a: str | None = None,
        root_b: str | None = None,
        batch_size: int = 32,
        batch_seed: int = 0,
        eval_batch_size: int = 256,
        num_eval: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        self.train = {d: _rgb(load_domain(source, root, "train")[0])
                      for d, source, root in (("a", domain_a, root_a), ("b", domain_b, root_b))}  # fmt: skip
        for domain, images in self.train.items():
            if len(images) < batch_size:
                raise ValueError(
                    f"domain {domain} has {len(images)} training images, fewer than batch_size={batch_size}"
                )

    def training_batch(self, rng: torch.Generator) -> dict[str, torch.Tensor]:
        size = self.hparams.batch_size
        return {d: images[torch.randperm(len(images), generator=rng)[:size]] for d, images in self.train.items()}

    def _evaluation_set(self) -> TensorDataset:
        hp = self.hparams
        images_a, labels_a = load_domain(hp.domain_a, hp.root_a, "test")
        images_b = _rgb(load_domain(hp.domain_b, hp.root_b, "test")[0])
        count = len(images_a) if hp.num_eval is None else min(hp.num_eval, len(images_a))
        guides = images_b[torch.arange(count) % len(images_b)]
        return TensorDataset(_rgb(images_a[:count]), guides, labels_a[:count], torch.arange(count))

    def val_dataloader(self) -> DataLoader:
        return evaluation_loader(self._evaluation_set(), self.hparams.eval_batch_size, collate_fn=_pair_batch)

    test_dataloader = val_dataloader
    predict_dataloader = val_dataloader


def _rgb(images: torch.Tensor) -> torch.Tensor:
    """[N, 1 or 3, H, W] -> [N, 3, H, W] (grayscale replicated)."""
    return images.expand(-1, 3, -1, -1).contiguous() if images.shape[1] == 1 else images


def _pair_batch(items: list[tuple[torch.Tensor, ...]]) -> dict[str, torch.Tensor]:
    a, b, labels, index = (torch.stack(column) for column in zip(*items))
    return {"a": a, "b": b, "a_labels": labels, "index": index}
