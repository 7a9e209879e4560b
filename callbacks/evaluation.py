"""The hook plumbing of metrics: those that accumulate a step's outputs over a whole validation
or test set, and those that measure samples the module draws at the end of training and test."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from callbacks.contract import ChecksContract
from dfgen.contract import CountsIterations, provides, step_outputs


class SetMetric(ChecksContract, Callback):
    """Resets at the start of validation and test, updates with every step's outputs, and
    reports at the end (not after the sanity check).

    A subclass names the TypedDict of `dfgen.contract` it reads in `reads` (with
    `reads_every_batch` when a batch without those keys is an error rather than a batch with
    nothing to measure) and defines `_start(trainer, pl_module)`, `_update(outputs)` (the
    outputs restricted to those keys) and `_finish(trainer, pl_module, stage)`, stage being
    "val" or "test".
    """

    reads: ClassVar[type]
    reads_every_batch: ClassVar[bool] = False

    def _receive(self, pl_module: LightningModule, outputs: Any, step: str) -> None:
        name = type(self).__name__
        measured = step_outputs(outputs, self.reads, name, pl_module, step, required=self.reads_every_batch)
        if measured is not None:
            self._update(measured)

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(trainer, pl_module)

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._receive(pl_module, outputs, "validation_step")

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._finish(trainer, pl_module, "val")

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(trainer, pl_module)

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._receive(pl_module, outputs, "test_step")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._finish(trainer, pl_module, "test")


class SampleMetric(ChecksContract, Callback, ABC):
    """Measures samples that the module draws (through the protocol in `module_needs`) at the
    end of training (on rank 0) and of `test`, and logs "<train|test>/<name>" with the module's
    own iteration as the step when it `CountsIterations` (else the optimizer steps).

    Args:
        num_samples: generated samples per evaluation.
    """

    def __init__(self, num_samples: int) -> None:
        self.num_samples = num_samples
        self.last: dict[str, float] = {}
        self._own_counter = False

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._own_counter = provides(pl_module, CountsIterations)

    @abstractmethod
    def measure(self, pl_module: LightningModule) -> dict[str, float]:
        """The metric's values by name, from `num_samples` samples of `pl_module`."""

    @torch.no_grad()
    def evaluate(self, trainer: Trainer, pl_module: LightningModule, prefix: str) -> None:
        self.last = {f"{prefix}/{name}": value for name, value in self.measure(pl_module).items()}
        step = pl_module.iteration if self._own_counter else trainer.global_step
        for logger in trainer.loggers:
            logger.log_metrics(self.last, step=step)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            self.evaluate(trainer, pl_module, "train")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.evaluate(trainer, pl_module, "test")
