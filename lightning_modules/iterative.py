"""The base of every method that counts its own training iterations (the pyramids, one-shot
translation, domain intersection/difference, mask-based content transfer).

Every batch is one training iteration of several manual optimizer steps. The base keeps what a
run needs to stop anywhere and resume exactly:

- the iteration counter, which ends the run and tells a resumed run where the data stream and
  the schedule continue (`datamodules.loaders.StreamedTrainingData` starts at `iteration`);
- named random streams (`rng(name)`), whose states are saved with the counter under one
  checkpoint key, `iteration_progress`: a per-process stream's as every process's states
  (`lightning_modules.random_streams`), so that every process of a resumed run continues its own;
- stages: a run is one stage, or several (a pyramid's scales); at a stage's end the trained
  modules are frozen and every process takes rank 0's buffers.

It also holds the small pieces every training step repeats: one player's update
(`update`), freezing the other player (`frozen`), and cheap logging under `train/`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torch.optim import Optimizer

from dfgen.settings import restore_renamed_settings
from lightning_modules.distributed import broadcast_buffers
from lightning_modules.random_streams import every_process, own_row

CHECKPOINT_KEY = "iteration_progress"


class IterativeModule(LightningModule):
    """Base of modules with manual optimization and their own iteration counter.

    Subclasses save a `seed` hyper-parameter (the random streams' seed) and either an
    `iterations` hyper-parameter or their own `total_iterations`; a `training_step` ends with
    `_finish_iteration()` and then `_log_terms(terms)`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.iteration = 0  # training iterations done
        self.stage_finished = False  # True on the iteration that completes a stage
        self._streams: dict[str, torch.Generator] = {}
        self._per_process: set[str] = set()  # the streams each process draws for itself
        self._restored_streams: dict[str, dict[str, Any]] = {}  # states from a checkpoint, not yet used

    # ------------------------------------------------------------------ progress
    @property
    def total_iterations(self) -> int:
        return self.hparams.iterations

    @property
    def progress_description(self) -> str:
        return f"step {self.iteration}/{self.total_iterations}"

    def _is_stage_end(self) -> bool:
        """Whether the iteration just counted completes a stage (here: the run is one stage)."""
        return self.iteration >= self.total_iterations

    def on_train_start(self) -> None:
        if self.iteration >= self.total_iterations:
            self.trainer.should_stop = True

    def _finish_iteration(self, trained: Sequence[nn.Module] = ()) -> None:
        """Count the iteration and stop after the last. At a stage's end the `trained` modules are
        frozen (eval mode, no gradients) and every process takes rank 0's buffers (BatchNorm
        statistics, spectral norm's power-iteration vectors), which follow each process's data."""
        self.iteration += 1
        self.stage_finished = self._is_stage_end()
        if self.stage_finished:
            for module in trained:
                module.eval().requires_grad_(False)
            broadcast_buffers(self)
        if self.iteration >= self.total_iterations:
            self.trainer.should_stop = True

    # ------------------------------------------------------------------ one player's update
    def update(self, optimizer: Optimizer, loss: torch.Tensor, clip_norm: float | None = None) -> None:
        """zero_grad, backward, clip the optimizer's gradients to a global L2 norm of `clip_norm`
        (None: no clipping), step."""
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if clip_norm is not None:
            self.clip_gradients(optimizer, gradient_clip_val=clip_norm, gradient_clip_algorithm="norm")
        optimizer.step()

    @staticmethod
    @contextmanager
    def frozen(*players: nn.Module) -> Iterator[None]:
        """No gradients for the players' parameters inside the block (the other player's step);
        every parameter's own setting comes back after it."""
        parameters = [parameter for player in players for parameter in player.parameters()]
        settings = [parameter.requires_grad for parameter in parameters]
        for parameter in parameters:
            parameter.requires_grad_(False)
        try:
            yield
        finally:
            for parameter, setting in zip(parameters, settings):
                parameter.requires_grad_(setting)

    # ------------------------------------------------------------------ random streams
    def rng(
        self, name: str, device: torch.device | str | None = None, per_process: bool = True, seed_offset: int = 0
    ) -> torch.Generator:
        """The random stream `name` on `device` (default: the module's), restored from a checkpoint
        if it holds one. Seeded with the `seed` hyper-parameter plus `seed_offset`, plus the global
        rank when `per_process` (each process draws its own noise)."""
        device = torch.device(device) if device is not None else self.device
        stream = self._streams.get(name)
        if stream is None or stream.device != device:
            stream = torch.Generator(device=device)
            stream.manual_seed(self.hparams.seed + seed_offset + (self.global_rank if per_process else 0))
            restored = self._restored_streams.pop(name, None)
            if restored and restored["device_type"] == device.type:
                state = restored["state"]  # [processes, bytes] for a per-process stream, else [bytes]
                stream.set_state(own_row(state, self.global_rank) if state.dim() == 2 else state)
            self._streams[name] = stream
            if per_process:
                self._per_process.add(name)
        return stream

    # ------------------------------------------------------------------ logging
    def _should_log(self) -> bool:
        """Every `log_every_n_steps` iterations and at each stage's end."""
        return self.iteration % self.trainer.log_every_n_steps == 0 or self.stage_finished

    def _log_terms(self, terms: dict[str, torch.Tensor]) -> None:
        """Send `terms` to the loggers as train/<name>, with the iteration as the step, when
        `_should_log` (the tensors with one device sync). The loggers are called directly:
        `self.log` costs about a millisecond per key per call, more than a whole iteration of a
        pyramid's coarse scales."""
        if not terms or not self._should_log():
            return
        tensors = {name: value for name, value in terms.items() if isinstance(value, torch.Tensor)}
        values = torch.stack([value.detach().float() for value in tensors.values()]).tolist() if tensors else []
        scalars = dict(zip(tensors, values)) | {name: float(v) for name, v in terms.items() if name not in tensors}
        for logger in self.loggers:
            logger.log_metrics({f"train/{name}": value for name, value in scalars.items()}, step=self.iteration)

    # ------------------------------------------------------------------ checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        streams = dict(self._restored_streams)  # restored but not drawn from yet: carried over
        for name, stream in self._streams.items():  # created in the same order in every process
            state = stream.get_state()
            state = every_process(self, state) if name in self._per_process else state
            streams[name] = {"state": state, "device_type": stream.device.type}
        checkpoint[CHECKPOINT_KEY] = {"iteration": self.iteration, "rng": streams}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        restore_renamed_settings(self.hparams, checkpoint.get("hyper_parameters", {}))
        progress = legacy_progress(checkpoint) or checkpoint.get(CHECKPOINT_KEY, {})
        self.iteration = progress.get("iteration", 0)
        self._streams, self._per_process, self._restored_streams = {}, set(), dict(progress.get("rng", {}))


def legacy_progress(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The progress of a checkpoint written before the streams were named: the pyramids'
    `pyramid_progress` (one noise stream) and one-shot translation's pool stream."""
    if "pyramid_progress" in checkpoint:
        progress = checkpoint["pyramid_progress"]
        return {"iteration": progress.get("iteration", 0), "rng": {"noise": progress["noise_rng"]}}
    if "rng" in checkpoint.get("one_shot_progress", {}):
        progress = checkpoint.get(CHECKPOINT_KEY, {})
        pool = {"state": checkpoint["one_shot_progress"]["rng"], "device_type": "cpu"}
        return {"iteration": progress.get("iteration", 0), "rng": {"pool": pool}}
    return None
