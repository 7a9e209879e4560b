"""DataLoader helpers shared by the DataModules."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.distributed as dist
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info


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


class ClassificationDataModule(LightningDataModule):
    """Loaders shared by the classification DataModules.

    A subclass's `setup` sets `train_set` (for fit) and `test_sets` (the clean evaluation
    set first, then any corrupted ones), and its hyper-parameters hold `batch_size` and
    `num_workers`. Validation uses the clean set; `test` evaluates every set in order.
    """

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        return DataLoader(
            self.train_set, batch_size=hp.batch_size, shuffle=True, drop_last=True, num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
        )  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        return evaluation_loader(self.test_sets[0], self.hparams.batch_size, self.hparams.num_workers)

    def test_dataloader(self) -> list[DataLoader]:
        return [evaluation_loader(data, self.hparams.batch_size, self.hparams.num_workers) for data in self.test_sets]


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
            yield self.make_batch(torch.Generator().manual_seed(self.seed * 1_000_003 + iteration))
            iteration += stride


class StreamedTrainingData(LightningDataModule):
    """A DataModule whose training data is an endless, resumable stream of `training_batch(rng)`.

    The stream starts at the LightningModule's `iteration` (restored from a checkpoint before
    the loader is built), and rank r of a multi-process run uses seed `sample_seed + r`.
    A `num_workers` hyper-parameter, when the subclass has one, makes batches in that many
    worker processes (same batches, same order).
    """

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        start = getattr(trainer.lightning_module, "iteration", 0) if trainer else 0
        seed = self.hparams.sample_seed + (trainer.global_rank if trainer else 0)
        workers = self.hparams.get("num_workers", 0)
        stream = BatchStream(self.training_batch, seed, start)
        return DataLoader(stream, batch_size=None, num_workers=workers, persistent_workers=workers > 0)
