"""One training video clip and its spatio-temporal pyramid (HP-VAE-GAN; as shirgur/hp-vae-gan builds it).

The clip is read from a video file (MP4, AVI, WebM, MOV, MKV or GIF, decoded by PyAV) or a
folder of frames (PNG, JPEG, BMP, WebP, sorted by name). Every error (missing file,
undecodable file, too few frames, frames of different sizes) names the path and what was
expected, and is raised when the DataModule is built, before a run writes anything.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from datamodules.images import IMAGE_SUFFIXES, load_image
from datamodules.loaders import StreamedTrainingData
from datamodules.single_image import SampleRequests, pyramid_shapes
from lightning_modules.networks.video import VideoShape
from lightning_modules.settings import (
    AT_LEAST_1,
    NON_NEGATIVE,
    POSITIVE,
    SCALE_FACTOR,
    Each,
    Range,
    check_pair_order,
    check_settings,
)

VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mov", ".mkv", ".gif")


def _clip_indices(start: int, num_frames: int, stride: int) -> range:
    return range(start, start + (num_frames - 1) * stride + 1, stride)


def _too_few_frames(
    path: Path, total: int, start: int, num_frames: int, stride: int, start_time: float | None, fps: float
) -> ValueError:  # fmt: skip
    needed = (num_frames - 1) * stride + 1
    where = f"frame {start}" if start_time is None else f"start_time={start_time:g} s (frame {start} at {fps:g} fps)"
    return ValueError(
        f"{path}: {total} frames ({total / fps:.2f} s) in all, {max(total - start, 0)} of them from {where} on, "
        f"but num_frames={num_frames} at stride={stride} needs {needed}; choose an earlier start, a smaller stride "
        "or fewer frames"
    )


def read_video_file(
    path: Path, start_frame: int, num_frames: int, stride: int, start_time: float | None = None
) -> tuple[np.ndarray, float]:  # fmt: skip
    """Decode frames s, s + stride, ... of a video file, s = `start_frame` or the frame at `start_time`
    seconds; returns uint8 [N, H, W, 3] and the file's fps."""
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"{path}: unsupported video type {path.suffix!r}; expected one of {', '.join(VIDEO_SUFFIXES)}")
    frames, decoded = [], 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: the file has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            start = round(start_time * fps) if start_time is not None else start_frame
            wanted = set(_clip_indices(start, num_frames, stride))
            for frame in container.decode(stream):
                if decoded in wanted:
                    frames.append(frame.to_ndarray(format="rgb24"))
                decoded += 1
                if len(frames) == num_frames:
                    break
    except av.FFmpegError as error:
        raise ValueError(
            f"{path}: cannot decode the video ({error}); expected a complete {'/'.join(VIDEO_SUFFIXES)} file "
            "with a codec that FFmpeg reads (H.264, VP8/9, MPEG-4, GIF...)"
        ) from error
    if len(frames) < num_frames:
        raise _too_few_frames(path, decoded, start, num_frames, stride, start_time, fps)
    return np.stack(frames), fps


def read_frame_folder(
    path: Path, start_frame: int, num_frames: int, stride: int, start_time: float | None = None, fps: float = 25.0
) -> torch.Tensor:  # fmt: skip
    """Frames s, s + stride, ... of a folder of images sorted by name (s = `start_frame`, or
    round(start_time * fps)), read by datamodules.images.load_image: float [3, N, H, W] in [-1, 1]."""
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{path}: no frames in the folder (expected image files: {', '.join(IMAGE_SUFFIXES)})")
    start = round(start_time * fps) if start_time is not None else start_frame
    indices = _clip_indices(start, num_frames, stride)
    if indices[-1] >= len(files):
        raise _too_few_frames(path, len(files), start, num_frames, stride, start_time, fps)
    frames = []
    for index in indices:
        frames.append(load_image(files[index]))
        if frames[-1].shape != frames[0].shape:
            h0, w0 = frames[0].shape[-2:]
            h, w = frames[-1].shape[-2:]
            raise ValueError(f"{files[index]}: frame is {h}x{w}, but {files[indices[0]]} is {h0}x{w0}; "
                             "all frames of a folder must have the same size")  # fmt: skip
    return torch.stack(frames, dim=1)


def load_clip(
    path: str | Path, start_frame: int = 0, num_frames: int = 13, stride: int = 1, start_time: float | None = None,
    folder_fps: float = 25.0,
) -> tuple[torch.Tensor, float]:  # fmt: skip
    """Read a clip of `num_frames` frames as a float tensor [3, N, H, W] in [-1, 1], and its frame rate.

    Args:
        path: a video file or a folder of frames.
        start_frame: index of the first frame.
        num_frames: frames in the clip.
        stride: take every `stride`-th frame (the clip's frame rate is the source's / stride).
        start_time: start in seconds instead of `start_frame` (frame round(start_time * fps)).
        folder_fps: frame rate of a folder of frames.
    """
    path = Path(path)
    if num_frames < 2 or stride < 1 or start_frame < 0 or (start_time is not None and start_time < 0):
        raise ValueError(
            f"num_frames={num_frames}, stride={stride}, start_frame={start_frame}, start_time={start_time}: "
            "expected num_frames >= 2, stride >= 1 and a start of at least 0"
        )
    if path.is_dir():
        fps = folder_fps
        clip = read_frame_folder(path, start_frame, num_frames, stride, start_time, fps)
    elif path.is_file():
        frames, fps = read_video_file(path, start_frame, num_frames, stride, start_time)
        clip = torch.from_numpy(frames.astype(np.float32) / 127.5 - 1.0).permute(3, 0, 1, 2).contiguous()
    else:
        raise FileNotFoundError(
            f"{path}: no such video file or frame folder (expected a {'/'.join(VIDEO_SUFFIXES)} file "
            "or a folder of image files)"
        )
    return clip, fps / stride


def write_video_file(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """Write uint8 frames [N, H, W, 3] as a GIF (Pillow) or, for any other suffix, H.264 (or MPEG-4) video.

    Video codecs need even sizes: odd heights/widths are padded by repeating the last row/column.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        images = [Image.fromarray(frame) for frame in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        return path
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return path


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
    window k of a run is a function of (sample_seed + rank, k), so a resumed run sees the same
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
        sample_seed: seed of the first predicted clip (clip i uses sample_seed + i) and of the
            training windows.
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
        sample_seed: int = 0,
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
        return DataLoader(SampleRequests(hp.num_samples, hp.sample_seed, request), batch_size=hp.batch_size)
