"""Send image grids and short clips to whichever loggers a run has: TensorBoard, W&B, or files."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from PIL import Image
from torchvision.utils import make_grid, save_image


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return (images.detach().float().cpu() * 0.5 + 0.5).clamp(0, 1)


def media_dir(trainer: Trainer, logger: Logger | None) -> Path:
    """`<log_dir>/media` of a file-based logger, else `<default_root_dir>/media`."""
    log_dir = getattr(logger, "log_dir", None) if logger is not None else None
    return Path(log_dir or trainer.default_root_dir) / "media"


def media_name(key: str, step: int, suffix: str) -> str:
    return f"{key.replace('/', '_')}_{step:07d}.{suffix}"


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
            logger.log_image(key=key, images=[grid], caption=[f"step {step}"])
        else:
            path = media_dir(trainer, logger) / media_name(key, step, "png")
            path.parent.mkdir(parents=True, exist_ok=True)
            save_image(grid, path)


def frame_strips(videos: torch.Tensor) -> torch.Tensor:
    """[B, T, 3, H, W] -> one image [3, B*H', T*W']: a row of frames per clip."""
    frames = to_unit_range(videos).flatten(0, 1)  # [B*T, 3, H, W]
    return make_grid(frames, nrow=videos.shape[1], padding=2, pad_value=1.0)


def write_gif(videos: torch.Tensor, path: Path, fps: int) -> Path:
    """Write clips [B, T, 3, H, W] in [-1, 1] side by side as one looping GIF."""
    frames = to_unit_range(videos).permute(1, 0, 2, 3, 4)  # [T, B, 3, H, W]
    images = []
    for frame in frames:
        grid = make_grid(frame, nrow=len(frame), padding=2, pad_value=1.0)
        images.append(Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).round().astype("uint8")))
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return path


def log_video(trainer: Trainer, key: str, videos: torch.Tensor, step: int, fps: int = 8) -> None:
    """Log clips [B, T, 3, H, W] in [-1, 1] as a GIF and as frame strips (a row per clip).

    Every logger gets the strips as an image; W&B also gets the GIF as a video; file-based
    loggers (CSV included) get both files under media/.
    """
    strips = frame_strips(videos)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(f"{key}_frames", strips, global_step=step)
        elif isinstance(logger, WandbLogger):
            import wandb

            gif = write_gif(videos, media_dir(trainer, None) / media_name(key, step, "gif"), fps)
            logger.experiment.log({key: wandb.Video(str(gif), format="gif"), f"{key}_frames": wandb.Image(strips)})
        else:
            directory = media_dir(trainer, logger)
            write_gif(videos, directory / media_name(key, step, "gif"), fps)
            save_image(strips, directory / media_name(f"{key}_frames", step, "png"))
