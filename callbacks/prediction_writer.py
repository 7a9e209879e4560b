"""Write what `predict` generates as image and video files."""

from __future__ import annotations

import csv
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image
from torchvision.utils import save_image

from callbacks.media import frame_strips, to_unit_range, write_gif
from dfgen.cityscapes import colourise
from dfgen.contract import (
    ClassNames,
    ClassPrediction,
    ImagePrediction,
    SegmentationPrediction,
    VideoPrediction,
    provides,
    step_outputs,
)
from dfgen.video_files import write_video_file


def holds_files(directory: Path) -> bool:
    return directory.is_dir() and any(directory.iterdir())


class FilePredictionWriter(BasePredictionWriter, ABC):
    """Base of the writers: each predicted batch goes to `write(directory, prediction)`, with
    the keys of the writer's `reads`, the TypedDict of `dfgen.contract` that `predict_step`
    returns for it (a missing key is an error that names it).

    A predict never writes beside an earlier one's files, which could not be told apart from its
    own: the directory is `output_dir`, which must be empty or absent, or by default
    `<trainer.default_root_dir>/predictions`, or the first of `predictions_2`, `predictions_3`, ...
    that is empty when it holds files already (the run says which).
    """

    reads: ClassVar[type]

    def __init__(self, output_dir: str | None = None) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self._directory: Path | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "predict":
            self._directory = self.fresh_dir(trainer)

    def fresh_dir(self, trainer: Trainer) -> Path:
        """The folder this predict writes into (see the class docstring); nothing is written yet."""
        if self.output_dir is not None:
            directory = Path(self.output_dir)
            if holds_files(directory):
                raise ValueError(
                    f"{directory}: output_dir holds an earlier predict's files, which new ones would mix with; "
                    "empty it or give another output_dir"
                )
            return directory
        default = directory = Path(trainer.default_root_dir) / "predictions"
        number = 1
        while holds_files(directory):
            number += 1
            directory = default.with_name(f"predictions_{number}")
        if directory != default and trainer.is_global_zero:
            print(f"{default} holds an earlier predict's files; writing to {directory}")
        return directory

    def resolve_dir(self, trainer: Trainer) -> Path:
        if self._directory is None:
            self._directory = self.fresh_dir(trainer)
        return self._directory

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
        files = step_outputs(prediction, self.reads, type(self).__name__, pl_module, "predict_step", required=True)
        directory = self.resolve_dir(trainer)
        directory.mkdir(parents=True, exist_ok=True)
        self.write(directory, files)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            print(f"predictions written to {self.resolve_dir(trainer).resolve()}")
        self._directory = None  # the next predict chooses its own folder


class ImagePredictionWriter(FilePredictionWriter):
    """Saves each predicted image as `<output_dir>/<name>.png`, plus `grid.png` of the first ones.

    `predict_step` returns `dfgen.contract.ImagePrediction`, {"images": [B, 3, H, W] in
    [-1, 1], "names": list of B names} and optionally "extras": {name: [3, H, W]}, single
    images written beside them but left out of the grid (SinGAN's reconstruction, for example).
    A name "<folder>/<file>" is written into that subfolder.

    Args:
        output_dir: where to write; None means `<trainer.default_root_dir>/predictions`.
        grid_size: how many of the first images `grid.png` shows (0 disables the grid).
        grid_nrow: images per row of the grid.
    """

    reads = ImagePrediction

    def __init__(self, output_dir: str | None = None, grid_size: int = 16, grid_nrow: int = 4) -> None:
        super().__init__(output_dir)
        self.grid_size = grid_size
        self.grid_nrow = grid_nrow
        self._grid_images: list[torch.Tensor] = []

    def write(self, directory: Path, prediction: dict[str, Any]) -> None:
        images = to_unit_range(prediction["images"])
        named = list(zip(images, prediction["names"]))
        named += [(to_unit_range(image), name) for name, image in prediction.get("extras", {}).items()]
        for image, name in named:  # a name "<folder>/<file>" writes into a subfolder (SinGAN's images)
            path = directory / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_image(image, path)
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

    `predict_step` returns `dfgen.contract.VideoPrediction`, {"videos": [B, 3, T, H, W] in
    [-1, 1], "names": list of B names, "fps": frame rate}. MP4 is H.264 (MPEG-4 Part 2 when
    FFmpeg has no H.264 encoder); odd sizes are padded by one repeated row/column, as the
    codecs need even sizes.

    Args:
        output_dir: where to write; None means `<trainer.default_root_dir>/predictions`.
        formats: any of "mp4", "gif", "frames".
    """

    reads = VideoPrediction

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

    `predict_step` returns `dfgen.contract.SegmentationPrediction`, {"train_ids": list of
    [h, w] integer maps, "names": list of names}.

    Args:
        output_dir: where to write; None means `<trainer.default_root_dir>/predictions`.
    """

    reads = SegmentationPrediction

    def write(self, directory: Path, prediction: dict[str, Any]) -> None:
        for kind in ("train_ids", "color"):
            (directory / kind).mkdir(parents=True, exist_ok=True)
        for train_ids, name in zip(prediction["train_ids"], prediction["names"]):
            labels = train_ids.to(torch.uint8).cpu().numpy()
            Image.fromarray(labels).save(directory / "train_ids" / f"{name}.png")
            Image.fromarray(colourise(labels)).save(directory / "color" / f"{name}.png")


class ClassPredictionWriter(FilePredictionWriter):
    """Writes `<output_dir>/predictions.csv`: per image its file, then its `top_k` most probable
    classes, each as index, name and probability (one file per process under DDP:
    `predictions_rank<r>.csv`). Class names come from the DataModule when it provides
    `dfgen.contract.ClassNames`; otherwise the name column is empty.

    `predict_step` returns `dfgen.contract.ClassPrediction`, {"names": list of B file names,
    "probabilities": [B, num_classes]}.

    Args:
        output_dir: where to write; None means `<trainer.default_root_dir>/predictions`.
        top_k: how many classes per image, most probable first.
    """

    reads = ClassPrediction

    def __init__(self, output_dir: str | None = None, top_k: int = 5) -> None:
        super().__init__(output_dir)
        if top_k < 1:
            raise ValueError(f"top_k={top_k} must be >= 1")
        self.top_k = top_k
        self._file_name = "predictions.csv"
        self._class_names: list[str] | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        single = trainer.world_size == 1
        self._file_name = "predictions.csv" if single else f"predictions_rank{trainer.global_rank}.csv"
        datamodule = trainer.datamodule
        self._class_names = list(datamodule.class_names) if provides(datamodule, ClassNames) else None

    def write(self, directory: Path, prediction: dict[str, Any]) -> None:
        probabilities = prediction["probabilities"].float().cpu()  # [B, num_classes]
        scores, classes = probabilities.topk(min(self.top_k, probabilities.shape[1]), dim=1)
        rows = [self._row(*row) for row in zip(prediction["names"], scores.tolist(), classes.tolist())]
        path = directory / self._file_name
        if not path.exists():
            columns = [f"{column}_{k}" for k in range(1, scores.shape[1] + 1) for column in ("class", "name", "score")]
            rows.insert(0, ["file", *columns])
        with path.open("a", newline="") as handle:
            csv.writer(handle).writerows(rows)

    def _row(self, file: str, scores: list[float], classes: list[int]) -> list:
        cells: list = [file]
        for score, index in zip(scores, classes):
            cells += [index, self._class_names[index] if self._class_names else "", f"{score:.6f}"]
        return cells
