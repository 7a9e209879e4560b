"""The scale-by-scale schedule shared by the pyramid methods (SinGAN, structural analogy,
HP-VAE-GAN).

One `fit` trains the whole pyramid: every batch is one training iteration, and the iteration
counter of `IterativeModule` decides which scale trains; each scale is a stage of
`iters_per_scale` iterations. The counter and the noise stream are saved in the checkpoint, so
an interrupted run resumes at the same scale and step and ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim import Adam

from dfgen.resize import Shape, rescale
from dfgen.settings import OneOf
from lightning_modules.iterative import IterativeModule

# `adam_implementation` -> torch's Adam options. "default" is torch's own choice (one tensor at a
# time on the CPU, foreach on CUDA), the official code's; "foreach" updates every tensor of an
# optimizer in a few multi-tensor kernels and "fused" in one, which saves kernel launches at the
# coarse scales. The three give the same weights up to rounding (tests/test_pyramid_optimizations.py).
ADAM_IMPLEMENTATIONS = {
    "default": {},
    "for-loop": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
}
ADAM_IMPLEMENTATION = OneOf(tuple(ADAM_IMPLEMENTATIONS))


def pyramid_adam(parameters: Iterable[Any], implementation: str, **settings: Any) -> Adam:
    """Adam over `parameters` (tensors or parameter groups) with `settings` (lr, betas), updated by
    the `adam_implementation` named `implementation`."""
    return Adam(parameters, **settings, **ADAM_IMPLEMENTATIONS[implementation])


class ProgressiveModule(IterativeModule):
    """Base of the scale-by-scale modules.

    Subclasses save `iters_per_scale`, `seed` and `pyramid_shapes` as hyper-parameters,
    define `_build(shapes)` to create their per-scale networks (storing `self.shapes`), and
    call `_finish_iteration(trained)` at the end of each `training_step`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[Shape] = []  # (height, width) of every scale, coarse to fine

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

    # ------------------------------------------------------------------ the schedule
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

    def _is_stage_end(self) -> bool:
        return self.iteration % self.hparams.iters_per_scale == 0

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

    def _scale_optimizers(self, scale: int) -> list:
        """The optimizers of `scale`, from `configure_optimizers`' list of the same number per scale,
        coarse to fine (SinGAN and structural analogy: critic, then generator)."""
        optimizers = self.optimizers()
        per_scale = len(optimizers) // self.num_scales
        return optimizers[per_scale * scale : per_scale * (scale + 1)]

    def _scale_schedulers(self, scale: int) -> list:
        """The LR schedulers of `scale`, listed as `_scale_optimizers` lists the optimizers."""
        schedulers = self.lr_schedulers()
        per_scale = len(schedulers) // self.num_scales
        return schedulers[per_scale * scale : per_scale * (scale + 1)]

    def noise_rng(self) -> torch.Generator:
        """The training-noise stream, on the module's device; rank r draws from seed + r."""
        return self.rng("noise")


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
