"""One training video clip and its spatio-temporal pyramid (HP-VAE-GAN; as shirgur/hp-vae-gan builds it).

The clip is read from a video file (MP4, AVI, WebM, MOV, MKV or GIF, decoded by PyAV) or a
folder of frames (PNG, JPEG, BMP, WebP, sorted by name). Every error (missing file,
undecodable file, too few frames, frames of different sizes) names the path and what was
expected, and is raised when the DataModule is built, before a run writes anything.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from datamodules.loaders import StreamedTrainingData
from datamodules.single_image import SampleRequests, pyramid_shapes
from dfgen.resize import VideoShape
from dfgen.settings import (
    AT_LEAST_1,
    NON_NEGATIVE,
    POSITIVE,
    SCALE_FACTOR,
    Each,
    Range,
    check_pair_order,
    check_settings,
)
from dfgen.video_files import load_clip


def frame_strides_of(num_levels: int, frame_strides: tuple[int, ...]) -> list[int]:
    """Temporal stride of every level: `frame_strides` spread linearly over the levels (the official schedule).

    Level s uses frame_strides[floor(s / S * (len - 1))], S the finest level: for 10 levels and
    (4, 3, 2, 1) that is 4, 4, 4, 3, 3, 3, 2, 2, 2, 1.
    """
    last = max(num_levels - 1, 1)
    return [frame_strides[math.floor(s / last * (len(frame_strides) - 1))] for s in range(num_levels)]


def video_pyramid_shapes(
    height: int, width: int, num_frames: int, max_width: int = 256, min_width: int = 32, scale_factor: float = 0.75,
    frame_strides: tuple[int, ...] = (4, 3, 2, 1),
) -> list[VideoShape]:  # fmt: skip
    """(frames, height, width) of every level, coarse to fine, as the official code computes them.

    Widths follow SinGAN's rule for a `max_width`-wide square (S = 9, r = (32/256)^(1/9) for the
    defaults, coarsest width 33 through the floating-point ceil), heights keep the clip's aspect
    ratio (int(w * H / W)), and level s holds every frame_strides_of(...)[s]-th frame of the clip.
    """
    widths = [w for _, w in pyramid_shapes(max_width, max_width, min_width, max_width, scale_factor)]
    strides = frame_strides_of(len(widths), frame_strides)
    return [((num_frames - 1) // every + 1, max(int(w * height / width), 1), w) for w, every in zip(widths, strides)]


def build_video_pyramid(clip: torch.Tensor, shapes: list[VideoShape], antialias: bool = True) -> list[torch.Tensor]:
    """Level clips [1, 3, T_s, H_s, W_s] of `clip` [3, N, H, W]: every k-th frame, resized bilinearly.

    k = (N - 1) / (T_s - 1). The official code resizes with OpenCV's linear filter without
    antialiasing; `antialias=True` (the default here) removes the aliasing at the coarse levels.
    """
    num_frames = clip.shape[1]
    levels = []
    for frames, height, width in shapes:
        every = (num_frames - 1) // (frames - 1) if frames > 1 else num_frames
        picked = clip[:, ::every][:, :frames].permute(1, 0, 2, 3)  # [T_s, 3, H, W]
        resized = F.interpolate(picked, size=(height, width), mode="bilinear", antialias=antialias, align_corners=False)
        levels.append(resized.clamp(-1, 1).permute(1, 0, 2, 3).unsqueeze(0).contiguous())
    return levels


class SingleVideoDataModule(StreamedTrainingData):
    """A single training clip as a spatio-temporal pyramid (HP-VAE-GAN).

    Every training batch is the pyramid of a window of `window_frames` consecutive frames: a
    list of level clips [1, 3, T_s, H_s, W_s] (batch size 1, as the official code); level 0 is
    also the encoder's input. When the clip is longer than the window, each iteration takes a
    window from a uniformly drawn start frame, as the official code draws its training items;
    window k of a run is a function of (batch_seed + rank, k), so a resumed run sees the same
    windows. `pyramid` is the first window's, for previews, metrics and `test`.

    Args:
        path: a video file (MP4, AVI, WebM, MOV, MKV, GIF) or a folder of frames.
        num_frames: frames of the clip (paper: 13, giving 4/5/7/13 frames over the levels).
        window_frames: frames of a training window and of the pyramid (paper: 13); None is the
            whole clip. Generated clips have the window's length.
        stride: take every `stride`-th frame of the source.
        start_frame: index of the clip's first frame.
        start_time: start in seconds instead of `start_frame`.
        folder_fps: frame rate of a folder of frames.
        max_width: width of the finest level (paper: 256); the height keeps the aspect ratio.
        min_width: width of the coarsest level (paper: 32).
        scale_factor: nominal ratio between levels, used to count them (0.75).
        frame_strides: temporal strides, coarse to fine, spread over the levels (paper: 4, 3, 2, 1).
        antialias: antialiased spatial downsampling (the official code has none).
        num_samples: how many clips `predict` writes.
        batch_seed: seed of the training windows (rank r adds r).
        predict_seed: seed of the first predicted clip; clip i uses predict_seed + i.
        sample_scale: (frames, height, width) factors of the predicted clips relative to the
            training pyramid (longer or larger clips); every level's shape is scaled.
        batch_size: predicted clips per forward pass.
    """

    setting_rules = {
        "num_frames": Range(2), "window_frames": Range(2), "stride": AT_LEAST_1, "start_frame": NON_NEGATIVE,
        "start_time": NON_NEGATIVE, "folder_fps": POSITIVE, "max_width": AT_LEAST_1, "min_width": AT_LEAST_1,
        "scale_factor": SCALE_FACTOR, "frame_strides": Each(AT_LEAST_1), "num_samples": AT_LEAST_1,
        "sample_scale": Each(POSITIVE, length=3), "batch_size": AT_LEAST_1,
    }  # fmt: skip

    def __init__(
        self,
        path: str,
        num_frames: int = 13,
        window_frames: int | None = None,
        stride: int = 1,
        start_frame: int = 0,
        start_time: float | None = None,
        folder_fps: float = 25.0,
        max_width: int = 256,
        min_width: int = 32,
        scale_factor: float = 0.75,
        frame_strides: tuple[int, ...] = (4, 3, 2, 1),
        antialias: bool = True,
        num_samples: int = 8,
        batch_seed: int = 0,
        predict_seed: int = 0,
        sample_scale: tuple[float, float, float] = (1.0, 1.0, 1.0),
        batch_size: int = 1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        check_pair_order(self, "min_width", "max_width")
        self.window_frames = num_frames if window_frames is None else window_frames
        if not 2 <= self.window_frames <= num_frames:
            raise ValueError(f"window_frames={window_frames}; expected 2 to num_frames={num_frames} (None: the clip)")
        self.clip, self.fps = load_clip(path, start_frame, num_frames, stride, start_time, folder_fps)
        _, _, height, width = self.clip.shape
        self.pyramid_shapes = video_pyramid_shapes(
            height, width, self.window_frames, max_width, min_width, scale_factor, tuple(frame_strides)
        )
        if min(min(shape) for shape in self.pyramid_shapes) < 1 or self.pyramid_shapes[0][1] < 3:
            raise ValueError(f"{path}: a {height}x{width} clip gives too small coarse levels {self.pyramid_shapes}")
        self.pyramid: list[torch.Tensor] = []

    def setup(self, stage: str) -> None:
        if not self.pyramid:
            self.pyramid = self._window_pyramid(0)

    def _window_pyramid(self, start: int) -> list[torch.Tensor]:
        window = self.clip[:, start : start + self.window_frames]  # [3, window_frames, H, W]
        return build_video_pyramid(window, self.pyramid_shapes, self.hparams.antialias)

    def training_batch(self, rng: torch.Generator) -> list[torch.Tensor]:
        """The pyramid of the window starting at a frame drawn uniformly from `rng` (as the official loader)."""
        starts = self.clip.shape[1] - self.window_frames + 1
        if starts == 1:
            return self.pyramid
        return self._window_pyramid(int(torch.randint(starts, (), generator=rng)))

    def sample_shapes(self) -> list[VideoShape]:
        """Level shapes of the predicted clips: the training shapes times `sample_scale`."""
        factors = self.hparams.sample_scale
        return [tuple(max(round(n * f), 1) for n, f in zip(shape, factors)) for shape in self.pyramid_shapes]

    def test_dataloader(self) -> DataLoader:
        return DataLoader([self.pyramid], batch_size=None)

    def predict_dataloader(self) -> DataLoader:
        hp = self.hparams
        request = {"shapes": torch.tensor(self.sample_shapes()), "fps": self.fps}
        return DataLoader(SampleRequests(hp.num_samples, hp.predict_seed, request), batch_size=hp.batch_size)
