"""Sample grids and clips reach TensorBoard and the CSV logger's files."""

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from PIL import Image
from torch.utils.data import DataLoader

from callbacks.samples import SampleGrid


class MovingSquare(LightningModule):
    """Previews a fixed image batch and a clip of a square moving one pixel per frame."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.weight - 1).pow(2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(range(2), batch_size=1)

    def preview_images(self, num_samples, seed):
        video = -torch.ones(num_samples, 5, 3, 12, 16)  # [B, T, 3, H, W]
        for t in range(5):
            video[:, t, :, 4:8, t : t + 4] = 1.0
        return {"image": video[:, 0], "clip": video}


def test_images_and_clips_are_logged(tmp_path):
    loggers = [TensorBoardLogger(tmp_path, name="tb"), CSVLogger(tmp_path, name="csv")]
    trainer = Trainer(
        accelerator="cpu", max_epochs=1, logger=loggers, callbacks=[SampleGrid(every_n_steps=1, num_samples=3)],
        enable_progress_bar=False, enable_checkpointing=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(MovingSquare())
    media = tmp_path / "csv" / "version_0" / "media"
    gif = Image.open(media / "samples_clip_0000002.gif")
    assert gif.n_frames == 5
    first = np.asarray(gif.convert("RGB"))
    gif.seek(4)
    assert np.abs(np.asarray(gif.convert("RGB")).astype(int) - first).sum() > 0  # the square moved
    strips = Image.open(media / "samples_clip_frames_0000002.png")
    assert strips.size == (5 * 16 + 6 * 2, 3 * 12 + 4 * 2)  # a row of 5 frames per clip, 3 clips
    assert Image.open(media / "samples_image_0000001.png").size == (3 * 16 + 4 * 2, 12 + 2 * 2)
    assert list((tmp_path / "tb" / "version_0").glob("events.*"))
