"""Draw the synthetic inputs of the structural-analogy examples (run once; the PNGs are committed).

    python assets/draw.py

- `paint.png`: a crude paint of a deep field (black sky, a few coloured blobs), the
  sketch of the paint-to-image example;
- `text_plain.png`: a word in plain black letters on white (the structure);
- `text_styled.png`: another word in a decorated style, gradient letters with an outline
  and a shadow on a warm background (the appearance).

Letters use Pillow's built-in scalable font, so the result needs no font files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

HERE = Path(__file__).resolve().parent


def paint(size: tuple[int, int] = (250, 218), seed: int = 3) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, (4, 4, 10))
    draw = ImageDraw.Draw(image)
    colours = [(230, 200, 120), (120, 160, 255), (255, 120, 80), (240, 240, 240)]
    for _ in range(14):
        x, y = rng.uniform(0, size[0]), rng.uniform(0, size[1])
        rx, ry = rng.uniform(4, 22), rng.uniform(3, 14)
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=colours[rng.integers(len(colours))])
    return image


def word(text: str, size: tuple[int, int], font_size: int, styled: bool) -> Image.Image:
    font = ImageFont.load_default(size=font_size)
    if not styled:
        image = Image.new("RGB", size, "white")
        ImageDraw.Draw(image).text((size[0] // 2, size[1] // 2), text, font=font, fill="black", anchor="mm")
        return image
    y = np.linspace(0, 1, size[1])[:, None, None]
    background = (np.array([250, 225, 170]) * (1 - 0.3 * y)).astype(np.uint8).repeat(size[0], axis=1)
    image = Image.fromarray(background)
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).text((size[0] // 2, size[1] // 2), text, font=font, fill=255, anchor="mm")
    shadow = Image.new("RGB", size, (90, 50, 30))
    image.paste(shadow, (5, 5), mask.filter(ImageFilter.GaussianBlur(3)))
    outline = mask.filter(ImageFilter.MaxFilter(7))
    image.paste(Image.new("RGB", size, (40, 20, 90)), (0, 0), outline)
    gradient = (np.array([220, 30, 60]) * (1 - y) + np.array([255, 170, 0]) * y).astype(np.uint8)
    image.paste(Image.fromarray(gradient.repeat(size[0], axis=1)), (0, 0), mask)
    return image


def main() -> None:
    paint().save(HERE / "paint.png", optimize=True)
    word("shape", (220, 220), 70, styled=False).save(HERE / "text_plain.png", optimize=True)
    word("style", (220, 220), 70, styled=True).save(HERE / "text_styled.png", optimize=True)


if __name__ == "__main__":
    main()
