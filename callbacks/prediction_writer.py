"""Write what `predict` generates as image and video files."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image
from torchvision.utils import save_image

from callbacks.media import frame_strips, to_unit_range, write_gif
from datamodules.segmentation import colourise
from datamodules.single_video import write_video_file


class FilePredictionWriter(BasePredictionWriter, ABC):
    """Base of the writers: each predicted batch goes to `write(directory, prediction)`, where the
    directory is `output_dir`, or `<trainer.default_root_dir>/predictions` when it is None."""

    def __init__(self, output_dir: str | None = None) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = output_dir

    def resolve_dir(self, trainer: Trainer) -> Path:
        return Path(self.output_dir or Path(trainer.default_root_dir) / "predictions")

    @abstractmethod
    def write(self, directory: Path, prediction: dict[str, Any]) -> None:
        """Write the files of one predicted batch into `directory` (it exists)."""

    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: dict[str, Any],
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        directory = self.resolve_dir(trainer)
        directory.mkdir(parents=True, exist_ok=True)
        self.write(directory, prediction)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            print(f"predictions written to {self.resolve_dir(trainer).resolve()}")


class ImagePredictionWriter(FilePredictionWriter):
    """Saves each predicted image as `<output_dir>/<name>.png`, plus `grid.png` of the first ones.

    `predict_step` returns {"images": [B, 3, H, W] in [-1, 1], "names": list of B names}
    and optionally "extras": {name: [3, H, W]}, single images written beside them but left
    out of the grid (SinGAN's reconstruction, for example).

    Args:
        output_dir: where to write; None means `<trainer.default_root_dir>/predictions`.
        grid_size: how many of the first images `grid.png` shows (0 disables the grid).
        grid_nrow: images per row of the grid.
    """

    def __init__(self, output_dir: str | None = None, grid_size: int = 16, grid_nrow: int = 4) -> None:
        super().__init__(output_dir)
        self.grid_size = grid_size
        self.grid_nrow = grid_nrow
        self._grid_images: list[torch.Tensor] = []

    def write(self, directory: Path, prediction: dict[str, Any]) -> None:
        images = to_unit_range(prediction["images"])
        for image, name in zip(images, prediction["names"]):
            save_image(image, directory / f"{name}.png")
        for name, image in prediction.get("extras", {}).items():
            save_image(to_unit_range(image), directory / f"{name}.png")
        missing = self.grid_size - sum(len(chunk) for chunk in self._grid_images)
        if missing > 0:
            self._grid_images.append(images[:missing])

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._grid_images and trainer.is_global_zero:
            grid = torch.cat(self._grid_images)
            save_image(grid, self.resolve_dir(trainer) / "grid.png", nrow=self.grid_nrow, padding=2, pad_value=1.0)
        self._grid_images = []
        super().on_predict_end(trainer, pl_module)


class VideoPredictionWriter(FilePredictionWriter):
    """Saves each predicted clip as `<output_dir>/<name>.mp4`, `<name>.gif` and `<name>_frames.png` (a strip).

    `predict_step` returns {"videos": [B, 3, T, H, W] in [-1, 1], "names": list of B names,
    "fps": frame rate}. MP4 is H.264 (MPEG-4 Part 2 when FFmpeg has no H.264 encoder); odd
    sizes are padded by one repeated row/column, as the codecs need even sizes.

    Args:
        output_dir: where to write; None means `<trainer.default_root_dir>/predictions`.
        formats: any of "mp4", "gif", "frames".
    """

    def __init__(self, output_dir: str | None = None, formats: tuple[str, ...] = ("mp4", "gif", "frames")) -> None:
        super().__init__(output_dir)
        unknown = set(formats) - {"mp4", "gif", "frames"}
        if unknown:
            raise ValueError(f"unknown formats {sorted(unknown)}; expected mp4, gif or frames")
        self.formats = tuple(formats)

    def write(self, directory: Path, prediction: dict[str, Any]) -> None:
        fps = prediction["fps"]
        for video, name in zip(prediction["videos"].transpose(1, 2), prediction["names"]):  # [T, 3, H, W] each
            if "mp4" in self.formats:
                frames = (to_unit_range(video).permute(0, 2, 3, 1).numpy() * 255).round().astype("uint8")
                write_video_file(directory / f"{name}.mp4", frames, fps)
            if "gif" in self.formats:
                write_gif(video[None], directory / f"{name}.gif", max(round(fps), 1))
            if "frames" in self.formats:
                save_image(frame_strips(video[None]), directory / f"{name}_frames.png")


class SegmentationPredictionWriter(FilePredictionWriter):
    """Saves each predicted label map twice: `<output_dir>/train_ids/<name>.png` (the raw train ids,
    one channel: the pseudo-labels of self-distillation, `data.pseudo_label_dir`) and
    `<output_dir>/color/<name>.png` (the Cityscapes palette).

    `predict_step` returns {"train_ids": list of [h, w] integer maps, "names": list of names}.

    Args:
        output_dir: where to write; None means `<trainer.default_root_dir>/predictions`.
    """

    def write(self, directory: Path, prediction: dict[str, Any]) -> None:
        for kind in ("train_ids", "color"):
            (directory / kind).mkdir(parents=True, exist_ok=True)
        for train_ids, name in zip(prediction["train_ids"], prediction["names"]):
            labels = train_ids.to(torch.uint8).cpu().numpy()
            Image.fromarray(labels).save(directory / "train_ids" / f"{name}.png")
            Image.fromarray(colourise(labels)).save(directory / "color" / f"{name}.png")
