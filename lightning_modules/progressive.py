"""Bookkeeping shared by the pyramid methods that train scale by scale (SinGAN, structural analogy).

One `fit` trains the whole pyramid: every batch is one training iteration and an
iteration counter decides which scale trains. The counter and the state of the noise
generator are saved in the checkpoint, so an interrupted run resumes at the same scale
and step and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import nn

from dfgen.resize import Shape, rescale
from lightning_modules.distributed import broadcast_buffers


class ProgressiveModule(LightningModule):
    """Base of the scale-by-scale modules.

    Subclasses save `iters_per_scale`, `seed` and `pyramid_shapes` as hyper-parameters,
    define `_build(shapes)` to create their per-scale networks (storing `self.shapes`), and
    call `_finish_iteration` at the end of each `training_step`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.shapes: list[Shape] = []  # (height, width) of every scale, coarse to fine
        self.iteration = 0  # training iterations done over the whole pyramid
        self.stage_finished = False  # True on the iteration that completes a scale
        self._noise_rng: torch.Generator | None = None
        self._restored_rng: dict[str, Any] | None = None  # generator state from a checkpoint

    def configure_model(self) -> None:
        """Build the networks for the DataModule's `pyramid_shapes`, or check that they match them.

        Without a Trainer (`load_from_checkpoint` in a notebook) the checkpoint's `pyramid_shapes`
        have already built the networks and there is nothing to check.
        """
        trainer = self._trainer
        datamodule = trainer.datamodule if trainer is not None else None
        shapes = [tuple(shape) for shape in datamodule.pyramid_shapes] if datamodule is not None else None
        if not self.shapes:
            if shapes is None:
                raise ValueError(f"{type(self).__name__} needs pyramid_shapes, or a DataModule with pyramid_shapes")
            self.hparams.pyramid_shapes = shapes
            self._build(shapes)
        elif shapes is not None and trainer.state.fn == "fit" and shapes != self.shapes:
            raise ValueError(f"the model's pyramid {self.shapes} does not match the data's pyramid {shapes}")

    # ------------------------------------------------------------------ progress
    @property
    def num_scales(self) -> int:
        return len(self.shapes)

    @property
    def total_iterations(self) -> int:
        return self.num_scales * self.hparams.iters_per_scale

    @property
    def current_scale(self) -> int:
        return min(self.iteration // self.hparams.iters_per_scale, self.num_scales - 1)

    @property
    def latest_scale(self) -> int:
        """The scale that the most recent iteration trained (0 before training)."""
        return min(max(self.iteration - 1, 0) // self.hparams.iters_per_scale, self.num_scales - 1)

    @property
    def progress_description(self) -> str:
        step = self.iteration - self.current_scale * self.hparams.iters_per_scale
        return f"scale {self.current_scale + 1}/{self.num_scales} step {step}/{self.hparams.iters_per_scale}"

    def on_train_start(self) -> None:
        if self.iteration >= self.total_iterations:
            self.trainer.should_stop = True

    def _finish_iteration(self, trained: Sequence[nn.Module]) -> None:
        """Count the iteration; at the end of a scale freeze `trained` and share rank 0's buffers."""
        self.iteration += 1
        self.stage_finished = self.iteration % self.hparams.iters_per_scale == 0
        if self.stage_finished:
            for module in trained:
                module.eval().requires_grad_(False)
            broadcast_buffers(self)  # e.g. BatchNorm statistics, before the scale is frozen
        if self.iteration >= self.total_iterations:
            self.trainer.should_stop = True

    @staticmethod
    def _set_trainable(scale: int, stacks: Sequence[nn.ModuleList]) -> None:
        """In every per-scale stack, only scale `scale` trains; the others are frozen and in eval mode."""
        wanted = [s == scale for stack in stacks for s in range(len(stack))]
        if [module.training for stack in stacks for module in stack] == wanted:
            return  # already set (Lightning's own `train()` calls switch every scale back on)
        for stack in stacks:
            for s, module in enumerate(stack):
                module.train(s == scale)
                module.requires_grad_(s == scale)

    # ------------------------------------------------------------------ noise
    def noise_rng(self) -> torch.Generator:
        """The training-noise generator, on the module's device, restored from a checkpoint if any.

        Rank r of a multi-process run is seeded with `seed + r`.
        """
        if self._noise_rng is None or self._noise_rng.device != self.device:
            self._noise_rng = torch.Generator(device=self.device)
            self._noise_rng.manual_seed(self.hparams.seed + self.global_rank)
            restored, self._restored_rng = self._restored_rng, None
            if restored and restored["device_type"] == self.device.type:
                self._noise_rng.set_state(restored["state"])
        return self._noise_rng

    # ------------------------------------------------------------------ logging
    def _should_log(self) -> bool:
        """Every `log_every_n_steps` iterations and at each scale's end."""
        return self.iteration % self.trainer.log_every_n_steps == 0 or self.stage_finished

    def _log_scalars(self, metrics: dict[str, torch.Tensor], scale: int) -> None:
        """Send `metrics` to the loggers, with the pyramid iteration as the step.

        The loggers are called directly: `self.log` costs about a millisecond per key per
        call, which is more than a whole iteration of the coarse scales.
        """
        values = torch.stack([v.detach().float() for v in metrics.values()]).tolist()  # one device sync
        for logger in self.loggers:
            logger.log_metrics(dict(zip(metrics, values)) | {"scale": scale}, step=self.iteration)

    # ------------------------------------------------------------------ checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        rng = self.noise_rng()
        checkpoint["pyramid_progress"] = {
            "iteration": self.iteration,
            "noise_rng": {"state": rng.get_state(), "device_type": rng.device.type},
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        progress = checkpoint.get("pyramid_progress", {})
        self.iteration = progress.get("iteration", 0)
        self._noise_rng, self._restored_rng = None, progress.get("noise_rng")


class ImagePyramidModule(ProgressiveModule):
    """Base of the image pyramids (SinGAN, structural analogy): generated images go from one scale
    to the next as the official code takes them there, upsampled by exactly 1/r and cropped.

    Subclasses save a `scale_ratio` hyper-parameter, r; when it is None it is taken from the
    DataModule's `pyramid_ratio`, like the shapes.
    """

    def configure_model(self) -> None:
        super().configure_model()
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        if self.hparams.scale_ratio is None and datamodule is not None:
            self.hparams.scale_ratio = float(datamodule.pyramid_ratio)

    @property
    def ratio(self) -> float:
        """r, the ratio between the sizes of consecutive scales (< 1)."""
        if self.hparams.scale_ratio is None:
            raise ValueError(f"{type(self).__name__} needs scale_ratio, or a DataModule with pyramid_ratio")
        return self.hparams.scale_ratio

    def to_next_scale(self, images: torch.Tensor, shape: Shape) -> torch.Tensor:
        """A generated image [B, C, h, w] of one scale at the next scale's `shape`, in [-1, 1]."""
        return rescale(images, 1 / self.ratio, shape)
