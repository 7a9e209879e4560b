"""Log sample grids (and clips) during training, with fixed seeds so steps are comparable."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only

from callbacks.contract import ChecksContract
from callbacks.media import log_image_grid, log_video
from dfgen.contract import CountsIterations, Previews, TrainsInStages, provides


class SampleGrid(ChecksContract, Callback):
    """Every `every_n_steps` iterations and at the end of each stage, log the module's previews.

    The module provides `dfgen.contract.Previews`, `preview_images(num_samples, seed) ->
    dict[name, images]` (images [B, 3, H, W] in [-1, 1]; videos [B, T, 3, H, W]); each entry
    becomes one grid named "samples/<name>", videos a GIF and a strip of frames. The step is
    the module's own `iteration` when it `CountsIterations`, else the trainer's batch count; a
    module that `TrainsInStages` (a pyramid) also gets a grid at the end of every stage.

    Args:
        every_n_steps: logging period in training iterations (0 = only at stage ends).
        num_samples: images per grid.
        seed: seed of the first preview sample, fixed across steps.
        fps: frame rate of logged clips.
    """

    module_needs = (Previews,)

    def __init__(self, every_n_steps: int = 500, num_samples: int = 8, seed: int = 0, fps: int = 8) -> None:
        self.every_n_steps = every_n_steps
        self.num_samples = num_samples
        self.seed = seed
        self.fps = fps
        self._own_counter = False
        self._stages = False

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._own_counter = provides(pl_module, CountsIterations)
        self._stages = provides(pl_module, TrainsInStages)

    @rank_zero_only
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = pl_module.iteration if self._own_counter else trainer.fit_loop.epoch_loop.total_batch_idx + 1
        periodic = self.every_n_steps > 0 and step % self.every_n_steps == 0
        if periodic or (self._stages and pl_module.stage_finished):
            self.log_previews(trainer, pl_module, step)

    def log_previews(self, trainer: Trainer, pl_module: LightningModule, step: int) -> None:
        for name, images in pl_module.preview_images(self.num_samples, self.seed).items():
            if images.dim() == 5:
                log_video(trainer, f"samples/{name}", images, step, self.fps)
            else:
                log_image_grid(trainer, f"samples/{name}", images, step)
