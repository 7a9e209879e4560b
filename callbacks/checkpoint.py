"""Checkpointing for runs that can be stopped at any moment and resumed exactly."""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from dfgen.contract import CountsIterations, provides

# Our checkpoints are written between whole training iterations (after every optimizer of the
# iteration has stepped), which is exactly the state to resume from; Lightning's warning about
# post-optimization state does not apply.
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")


def iterations_done(trainer: Trainer, pl_module: LightningModule) -> int:
    """Training iterations done: the module's own `iteration` when it `CountsIterations`, else the optimizer steps."""
    return pl_module.iteration if provides(pl_module, CountsIterations) else trainer.global_step


class ResumableCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose every file is a state that a run resumes from exactly.

    - Files are written only between training iterations (at the end of a batch, of a
      validation or of an epoch), never on an exception, which can come in the middle of an
      iteration's optimizer steps. A file is written under a temporary name and renamed, so a
      kill during the write leaves the previous complete file.
    - `every_n_iterations` counts the module's own training iterations (optimizer steps for
      modules that do not provide `dfgen.contract.CountsIterations`; decided at setup), so the
      period keeps its phase after a resume.
    - When training is about to end early — `trainer.max_steps`, `trainer.max_time`, the
      module's own end, EarlyStopping, or a stop request (`request_stop`; the CLI makes one on
      SIGINT, SIGTERM and SIGUSR1) — `last.ckpt` is written at that iteration boundary while the
      epoch is still open, so `--ckpt_path last` continues the same epoch. (Saved after the epoch
      loop has ended, a run that streams one endless epoch would count it as finished.)
    - `last.ckpt` is refreshed at every validation and epoch end too, and always holds the final
      state (Lightning skips the end-of-training save when an earlier `last.ckpt` exists).

    Args:
        every_n_iterations: write a checkpoint (and `last.ckpt`) every this many training
            iterations; 0 disables. Use instead of `every_n_train_steps`, which counts optimizer
            steps (several per iteration for the adversarial methods); given both, either saves.
        save_last: keep `last.ckpt` (where `--ckpt_path last` looks); on by default.
        **kwargs: ModelCheckpoint's other arguments (dirpath, filename, monitor, save_top_k, ...).
    """

    def __init__(self, *args: Any, every_n_iterations: int = 0, save_last: bool = True, **kwargs: Any) -> None:
        if every_n_iterations < 0:
            raise ValueError(f"every_n_iterations={every_n_iterations} must be >= 0")
        super().__init__(*args, save_last=save_last, **kwargs)
        self.every_n_iterations = every_n_iterations
        self.stop_signal: int | None = None
        self._training = False  # between on_train_start and the end of training
        self._own_counter = False  # whether the module CountsIterations, set at setup

    def request_stop(self, signum: int) -> bool:
        """Ask training to stop at the end of the current iteration, saving `last.ckpt` there.

        Returns False (and records nothing) when training is not running. Safe to call from a
        signal handler: it only records the request.
        """
        if self._training:
            self.stop_signal = signum
        return self._training

    def _stop_requested(self, trainer: Trainer) -> bool:
        """Whether any process was asked to stop (every process must save at the same iteration)."""
        requested = self.stop_signal is not None or trainer.received_sigterm
        if trainer.world_size > 1:
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        return requested

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._own_counter = provides(pl_module, CountsIterations)

    def _iterations_done(self, trainer: Trainer) -> int:
        return trainer.lightning_module.iteration if self._own_counter else trainer.global_step

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.stop_signal, self._training = None, True

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._stop_requested(trainer):
            trainer.should_stop = True
        stopping = trainer.should_stop or 0 <= trainer.max_steps <= trainer.global_step
        periodic = self.every_n_iterations > 0 and self._iterations_done(trainer) % self.every_n_iterations == 0
        if not (periodic or stopping) or self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        if periodic and (self.monitor is None or self.monitor in candidates):
            self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._refresh_last(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._training = False
        self._refresh_last(trainer)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """Lightning raises SIGTERMException only between iterations: a boundary, so `last.ckpt` is saved."""
        self._training = False
        if isinstance(exception, SIGTERMException):
            self._refresh_last(trainer)

    def _refresh_last(self, trainer: Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _monitor_candidates(self, trainer: Trainer) -> dict[str, torch.Tensor]:
        """Lightning's candidates plus `iteration`, which a `filename` may use ("{iteration}")."""
        candidates = super()._monitor_candidates(trainer)
        candidates.setdefault("iteration", torch.tensor(self._iterations_done(trainer)))
        return candidates

    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        """Write to `<filepath>.partial`, then rename: the file at `filepath` is always complete."""
        partial = f"{filepath}.partial"
        trainer.save_checkpoint(partial, self.save_weights_only)  # every process takes part; rank 0 writes
        if trainer.is_global_zero:
            os.replace(partial, filepath)
        trainer.strategy.barrier("ResumableCheckpoint._save_checkpoint")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(self)
