"""DataLoader helpers shared by the DataModules."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, get_worker_info
from torchvision.transforms.functional import pil_to_tensor

from dfgen.images import IMAGE_SUFFIXES, load_rgb8

# EpochShuffle resumes mid-epoch from the trainer's own progress counters, which Lightning's
# "dataloader is not resumable" warning does not know about.
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")


def evaluation_loader(dataset: Dataset, batch_size: int, num_workers: int = 0, **kwargs) -> DataLoader:
    """An in-order loader for validation/test that never repeats an item across processes.

    Lightning's default DistributedSampler pads every process's share to equal length with
    duplicates, which biases set-level metrics (mIoU, FID); this sampler gives each process
    a disjoint share instead. Lightning keeps a sampler that is already distributed.
    """
    sampler = None
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, **kwargs)


def combined_seed(*parts: int) -> int:
    """One seed from several integers, distinct for distinct small parts, and within the range a torch
    generator takes (below 2**63): an unseeded run's `torch.initial_seed()` alone may reach 2**64."""
    seed = 0
    for part in parts:
        seed = seed * 1_000_003 + part
    return seed % 2**63


class SeededItems(Dataset):
    """`dataset[index]` made with torch's CPU generator seeded by (seed, epoch, index), so that an
    item's random augmentation depends on nothing else: not on the loader's workers, on batches
    made ahead, nor on where a resumed run started. Keys are (epoch, index) pairs (EpochShuffle's)."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(combined_seed(self.seed, epoch, index))
            return self.dataset[index]


class EpochShuffle(DistributedSampler):
    """The training order of a map-style dataset, resumable in the middle of an epoch.

    Epoch e is a permutation seeded with seed + e, shared out between processes as Lightning's
    DistributedSampler does (being one, it is kept under DDP). Each time iteration starts, the
    sampler asks `progress()` for (epoch, batches of it already trained) and skips those batches:
    a run resumed from a mid-epoch checkpoint continues with exactly the batches an uninterrupted
    run would see; with every batch of the epoch done it moves on to the next epoch. Yields
    (epoch, index) keys for SeededItems.
    """

    def __init__(
        self, dataset: Dataset, batch_size: int, seed: int, progress: Callable[[], tuple[int, int]],
        num_replicas: int = 1, rank: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.batch_size, self.progress = batch_size, progress

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, done = self.progress()
        if done >= len(self) // self.batch_size:  # a checkpoint from the end of an epoch: the next one
            epoch, done = epoch + 1, 0
        self.set_epoch(epoch)
        indices = list(super().__iter__())[done * self.batch_size :]
        return iter([(epoch, index) for index in indices])


def trainer_progress(trainer: Any) -> Callable[[], tuple[int, int]]:
    """(current epoch, batches of it trained) of a Trainer, restored from the checkpoint when
    resuming; (0, 0) without a Trainer."""
    if trainer is None:
        return lambda: (0, 0)
    return lambda: (trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed)


class ImageFiles(Dataset):
    """Every image file under `folder` (subfolders included, sorted) as (transform(uint8 image
    [3, H, W]), its path relative to `folder`)."""

    def __init__(self, folder: str | Path, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.folder, self.transform = Path(folder), transform
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: no such folder of images to predict")
        self.files = sorted(p for p in self.folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise ValueError(f"{self.folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in the folder")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        # read as the class-folder training images are read (torchvision's way), so predictions match
        image = pil_to_tensor(load_rgb8(self.files[index]))  # uint8 [3, H, W]
        return self.transform(image), str(self.files[index].relative_to(self.folder))


class ClassificationDataModule(LightningDataModule):
    """Loaders shared by the classification DataModules.

    A subclass's `setup` sets `train_set` (for fit) and `test_sets` (the clean evaluation
    set first, then any corrupted ones), and its hyper-parameters hold `batch_size` and
    `num_workers`. Validation uses the clean set; `test` evaluates every set in order.
    `predict` classifies the images of a `predict_dir` hyper-parameter through the
    subclass's `predict_transform` (uint8 [3, H, W] -> the network's input).
    """

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches (incomplete last one dropped) that a mid-epoch resume continues exactly;
        order and augmentation follow the run's seed (`seed_everything`)."""
        hp, trainer, seed = self.hparams, self.trainer, torch.initial_seed()
        processes, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = EpochShuffle(self.train_set, hp.batch_size, seed, trainer_progress(trainer), processes, rank)
        return DataLoader(
            SeededItems(self.train_set, seed), batch_size=hp.batch_size, sampler=sampler, drop_last=True,
            num_workers=hp.num_workers, persistent_workers=hp.num_workers > 0,
        )  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        return evaluation_loader(self.test_sets[0], self.hparams.batch_size, self.hparams.num_workers)

    def test_dataloader(self) -> list[DataLoader]:
        return [evaluation_loader(data, self.hparams.batch_size, self.hparams.num_workers) for data in self.test_sets]

    def predict_dataloader(self) -> DataLoader:
        """(images, file names) of `predict_dir`, in order."""
        if not hasattr(self, "predict_transform"):
            raise ValueError(f"{type(self).__name__} has no predict; CIFARDataModule and ImageFolderDataModule have")
        folder = self.hparams.get("predict_dir")
        if folder is None:
            raise ValueError(f"{type(self).__name__}: predict needs --data.predict_dir, a folder of images to classify")
        files = ImageFiles(folder, self.predict_transform)
        return evaluation_loader(files, self.hparams.batch_size, self.hparams.num_workers)


class BatchStream(IterableDataset):
    """Training batches forever, batch k drawn by `make_batch` from a generator seeded with (seed, k).

    Each batch is a function of (seed, iteration), so a run resumed at iteration k sees the
    same batches as an uninterrupted one. With W loader workers, worker w makes batches
    w, w + W, ...; the DataLoader takes them from its workers in turn, so the order (and
    every batch) is the same for any number of workers.
    """

    def __init__(self, make_batch: Callable[[torch.Generator], dict], seed: int, start: int) -> None:
        self.make_batch, self.seed, self.start = make_batch, seed, start

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = get_worker_info()
        offset, stride = (worker.id, worker.num_workers) if worker else (0, 1)
        iteration = self.start + offset
        while True:
            yield self.make_batch(torch.Generator().manual_seed(combined_seed(self.seed, iteration)))
            iteration += stride


class StreamedTrainingData(LightningDataModule):
    """A DataModule whose training data is an endless, resumable stream of `training_batch(rng)`.

    The stream starts at the LightningModule's `iteration` (restored from a checkpoint before
    the loader is built), and rank r of a multi-process run uses seed `batch_seed + r`.
    A `num_workers` hyper-parameter, when the subclass has one, makes batches in that many
    worker processes (same batches, same order).
    """

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        start = getattr(trainer.lightning_module, "iteration", 0) if trainer else 0
        seed = self.hparams.batch_seed + (trainer.global_rank if trainer else 0)
        workers = self.hparams.get("num_workers", 0)
        stream = BatchStream(self.training_batch, seed, start)
        return DataLoader(stream, batch_size=None, num_workers=workers, persistent_workers=workers > 0)
