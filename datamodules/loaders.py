"""DataLoader helpers shared by the DataModules."""

from __future__ import annotations

import torch.distributed as dist
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset


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
