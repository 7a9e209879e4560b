"""DataLoader helpers shared by the DataModules."""

from __future__ import annotations

import torch.distributed as dist
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
