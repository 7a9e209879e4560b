"""Helpers for multi-process training."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


@torch.no_grad()
def broadcast_buffers(module: nn.Module) -> None:
    """Give every process rank 0's buffers (noise amplitudes, BatchNorm statistics, fixed noise).

    Gradients are averaged across processes, but buffers follow each process's own data
    and noise; without this the processes would end with different models.
    """
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)  # in place, on the buffer's own device
