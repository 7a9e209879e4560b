"""Video files: a clip read from a video file (PyAV) or a folder of frames, and frames written as
GIF or H.264 video. Every error names the path and what was expected."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from dfgen.images import IMAGE_SUFFIXES, load_image

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
    round(start_time * fps)), read by dfgen.images.load_image: float [3, N, H, W] in [-1, 1]."""
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
