"""A progress bar for runs that count their own iterations (scale-by-scale training and others)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar

from dfgen.contract import ShowsProgress, provides


class IterationProgressBar(TQDMProgressBar):
    """Shows a whole run counted in the module's own iterations as one bar, described as
    "scale k/S step i/N" for the pyramids (or the module's own `progress_description`).

    Works with any module that provides `dfgen.contract.ShowsProgress` (`iteration`,
    `total_iterations`, `progress_description`: SinGAN and the methods built on it, one-shot
    translation's phases, domain intersection, content transfer); other modules get
    Lightning's usual bar, decided once at setup.
    """

    _own_progress = False  # whether the module ShowsProgress, set at setup

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._own_progress = provides(pl_module, ShowsProgress)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if self._own_progress:
            self.train_progress_bar.reset(total=pl_module.total_iterations)
            self.train_progress_bar.n = pl_module.iteration
            self.train_progress_bar.set_description(pl_module.progress_description)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._own_progress:
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        n, total = pl_module.iteration, pl_module.total_iterations
        if self._should_update(n, total):
            self.train_progress_bar.total = total  # a resumed run starts its bar without one
            self.train_progress_bar.n = n
            self.train_progress_bar.set_description(pl_module.progress_description, refresh=False)
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))
