"""Checkpointing for resumable runs."""

from __future__ import annotations

import warnings

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

# Our modules save between whole training iterations (after every optimizer of the
# iteration has stepped), which is exactly the state to resume from; Lightning's warning
# about post-optimization state does not apply.
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")


class ResumableCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that always leaves the final state in `last.ckpt`.

    Lightning's ModelCheckpoint skips the end-of-training save when an earlier
    `last.ckpt` exists, so a run whose length is not a multiple of
    `every_n_train_steps` would resume from a stale state. Defaults: keep `last.ckpt`
    and save on exceptions (Ctrl-C included).
    """

    def __init__(self, *args, save_last: bool = True, save_on_exception: bool = True, **kwargs) -> None:
        super().__init__(*args, save_last=save_last, save_on_exception=save_on_exception, **kwargs)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
