"""Bookkeeping shared by the adversarial methods trained for a fixed number of iterations
(one-shot translation, domain intersection/difference, mask-based content transfer).

Every batch is one training iteration of several manual optimizer steps; an iteration counter,
saved in the checkpoint, ends the run and lets a resumed run continue the same data stream
(datamodules.loaders.StreamedTrainingData starts at the module's `iteration`).
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch.optim import Optimizer

from lightning_modules.distributed import broadcast_buffers


class IterativeModule(LightningModule):
    """Base of modules with an `iterations` hyper-parameter and manual optimization.

    A subclass's `training_step` ends with `_finish_iteration(terms)`; `_clipped_step` is one
    player's update with optional gradient clipping.
    """

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.iteration = 0

    @property
    def total_iterations(self) -> int:
        return self.hparams.iterations

    @property
    def progress_description(self) -> str:
        return f"step {self.iteration}/{self.hparams.iterations}"

    def on_train_start(self) -> None:
        if self.iteration >= self.hparams.iterations:
            self.trainer.should_stop = True

    def _clipped_step(self, optimizer: Optimizer, loss: torch.Tensor, clip_norm: float | None) -> None:
        """zero_grad, backward, clip the optimizer's gradients to a global L2 norm of `clip_norm`
        (None: no clipping), step."""
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if clip_norm is not None:
            self.clip_gradients(optimizer, gradient_clip_val=clip_norm, gradient_clip_algorithm="norm")
        optimizer.step()

    def _finish_iteration(self, terms: dict[str, torch.Tensor]) -> None:
        """Count the iteration, stop at the last, and log `terms` as train/<name> every n iterations.

        At the end every process takes rank 0's buffers (BatchNorm statistics, spectral norm's
        power-iteration vectors), which follow each process's own data.
        """
        self.iteration += 1
        if self.iteration >= self.hparams.iterations:
            self.trainer.should_stop = True
            broadcast_buffers(self)
        if self.iteration % self.trainer.log_every_n_steps == 0:
            values = torch.stack([v.detach().float() for v in terms.values()]).tolist()  # one device sync
            for logger in self.loggers:
                logger.log_metrics({f"train/{k}": v for k, v in zip(terms, values)}, step=self.iteration)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["iteration_progress"] = {"iteration": self.iteration}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.iteration = checkpoint.get("iteration_progress", {}).get("iteration", 0)
