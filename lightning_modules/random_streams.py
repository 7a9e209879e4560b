"""Random streams that a resumed run continues exactly, in every process.

Each process of a multi-process run draws its own noise, pAdaIN decisions or windows. The
checkpoint, written by rank 0, therefore holds every process's stream states, gathered into
[processes, state bytes]; each process of the resumed run takes its own row, and a process
beyond the saved ones takes the last row.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch import LightningModule

from lightning_modules.networks.padain import padain_generator_states, padain_layers, restore_padain_generators

PADAIN_KEY = "padain_generators"


def every_process(module: LightningModule, state: torch.Tensor) -> torch.Tensor:
    """[processes, *state.shape] on the CPU: `state` of every process. Every process must call it
    at the same point (checkpoints are dumped by every process; rank 0 writes the file)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return state[None].clone()
    return module.all_gather(state.to(module.device)).cpu()


def own_row(states: torch.Tensor, rank: int) -> torch.Tensor:
    """The row of `states` [processes, ...] that process `rank` saved (the last one beyond them), as a
    tensor of its own (a generator given a view into the checkpoint's table reads the wrong bytes)."""
    return states[min(rank, len(states) - 1)].clone()


class PermutedAdaINCheckpointing:
    """LightningModule mixin: checkpoints carry each process's pAdaIN random states (layers of
    `self.network`), so a resumed run takes the same pAdaIN decisions as an uninterrupted one."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        states = padain_generator_states(self.network)  # [layers, bytes]
        if states is not None:
            checkpoint[PADAIN_KEY] = every_process(self, states)  # [processes, layers, bytes]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        states = checkpoint.get(PADAIN_KEY)
        if states is not None and padain_layers(self.network):
            restore_padain_generators(self.network, own_row(states, self.global_rank))
