"""Log sample grids (and clips) during training, with fixed seeds so steps are comparable."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only

from callbacks.media import log_image_grid, log_video


class SampleGrid(Callback):
    """Every `every_n_steps` iterations and at the end of each stage, log the module's previews.

    The module provides `preview_images(num_samples, seed) -> dict[name, images]` (images
    [B, 3, H, W] in [-1, 1]; videos [B, T, 3, H, W]); each entry becomes one grid named
    "samples/<name>", videos a GIF and a strip of frames. The step
    is the module's own `iteration` counter when it has one, else the trainer's batch count.
    A progressive module signals the end of a stage with `stage_finished`.

    Args:
        every_n_steps: logging period in training iterations (0 = only at stage ends).
        num_samples: images per grid.
        seed: seed of the first preview sample, fixed across steps.
        fps: frame rate of logged clips.
    """

    def __init__(self, every_n_steps: int = 500, num_samples: int = 8, seed: int = 0, fps: int = 8) -> None:
        self.every_n_steps = every_n_steps
        self.num_samples = num_samples
        self.seed = seed
        self.fps = fps

    @rank_zero_only
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = getattr(pl_module, "iteration", trainer.fit_loop.epoch_loop.total_batch_idx + 1)
        periodic = self.every_n_steps > 0 and step % self.every_n_steps == 0
        if periodic or getattr(pl_module, "stage_finished", False):
            self.log_previews(trainer, pl_module, step)

    def log_previews(self, trainer: Trainer, pl_module: LightningModule, step: int) -> None:
        for name, images in pl_module.preview_images(self.num_samples, self.seed).items():
            if images.dim() == 5:
                log_video(trainer, f"samples/{name}", images, step, self.fps)
            else:
                log_image_grid(trainer, f"samples/{name}", images, step)
