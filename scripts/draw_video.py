"""Draw the example clip of the HP-VAE-GAN demo (run once; the MP4 is committed).

    python scripts/draw_video.py

`assets/coffee_pan.mp4`: a slow camera pan with a gentle zoom over `assets/coffee.png` (a real
photograph, CC0, from scikit-image), with a red ball rolling across the table and bouncing
off the frame's edges: 48 frames of 128x96 at 12 fps, H.264.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dfgen.video_files import write_video_file

ROOT = Path(__file__).resolve().parents[1]
SIZE = (128, 96)  # width, height


def pan_frame(photo: Image.Image, t: float) -> Image.Image:
    """The crop of the photograph at time t in [0, 1]: panning right and zooming in slightly."""
    width, height = photo.size
    crop_w = width * (0.72 - 0.08 * t)
    crop_h = crop_w * SIZE[1] / SIZE[0]
    left = (width - crop_w) * (0.15 + 0.7 * t)
    top = (height - crop_h) * (0.6 - 0.2 * t)
    return photo.resize(SIZE, Image.BICUBIC, box=(left, top, left + crop_w, top + crop_h))


def ball_position(frame: int, speed: tuple[float, float] = (3.2, 1.7), radius: int = 7) -> tuple[float, float]:
    """Centre of the ball bouncing inside the frame after `frame` steps."""
    position = []
    for start, step, extent in zip((20.0, 30.0), speed, SIZE):
        span = extent - 2 * radius
        travelled = (start - radius + step * frame) % (2 * span)
        position.append(radius + (travelled if travelled <= span else 2 * span - travelled))
    return position[0], position[1]


def draw_clip(num_frames: int = 48, radius: int = 7) -> np.ndarray:
    photo = Image.open(ROOT / "assets" / "coffee.png").convert("RGB")
    frames = []
    for frame in range(num_frames):
        image = pan_frame(photo, frame / (num_frames - 1))
        draw = ImageDraw.Draw(image)
        x, y = ball_position(frame, radius=radius)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(200, 30, 30), outline=(90, 10, 10))
        draw.ellipse((x - radius / 2.5, y - radius / 1.6, x, y - radius / 4), fill=(250, 170, 160))  # highlight
        frames.append(np.asarray(image))
    return np.stack(frames)


if __name__ == "__main__":
    path = write_video_file(ROOT / "assets" / "coffee_pan.mp4", draw_clip(), fps=12)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
