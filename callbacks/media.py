"""Send image grids to whichever loggers a run has: TensorBoard, W&B, or files."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from torchvision.utils import make_grid, save_image


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return (images.detach().float().cpu() * 0.5 + 0.5).clamp(0, 1)


def log_image_grid(trainer: Trainer, key: str, images: torch.Tensor, step: int, nrow: int = 4) -> None:
    """Log `images` [B, 3, H, W] in [-1, 1] as one grid under `key`.

    TensorBoard and W&B receive the grid through their own APIs; every other logger
    (CSV included) gets a PNG file in its log directory under media/.
    """
    grid = make_grid(to_unit_range(images), nrow=nrow, padding=2, pad_value=1.0)  # [3, H', W']
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, grid, global_step=step)
        elif isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[grid], step=None, caption=[f"step {step}"])
        elif logger.log_dir is not None:
            path = Path(logger.log_dir) / "media" / f"{key.replace('/', '_')}_{step:07d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_image(grid, path)
