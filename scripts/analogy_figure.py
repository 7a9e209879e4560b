"""Compose the README figure of the structural-analogy applications from finished runs.

    python scripts/analogy_figure.py runs/structural_analogy/demo assets/readme/analogy_demo.png

Each `<runs>/<application>/` holds a fit and a predict of configs/structural_analogy/
<application>.yaml; the figure has one row per application: the real A and B (at the
training size), then the real image whose layout is kept translated ("ab_real", or
"ba_real" for paint to image, where B is the sketch), then two translated samples.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torchvision.transforms.functional import pil_to_tensor, to_pil_image
from torchvision.utils import make_grid

from datamodules.image_pair import ImagePairDataModule
from lightning_modules.cli import config_settings

APPLICATIONS = {  # application: the translation direction that is its result
    "analogy": "ab",
    "texture_transfer": "ab",
    "style_transfer": "ab",
    "text_transfer": "ab",
    "paint_to_image": "ba",
}
CELL = 96


def reals(application: str, image_size: int) -> list[torch.Tensor]:
    """The pair as trained: each image resized by the DataModule, in [0, 1]."""
    config = config_settings(f"configs/structural_analogy/{application}.yaml")["data"]["init_args"]
    data = ImagePairDataModule(config["path_a"], config["path_b"], image_size=image_size, min_size=config["min_size"])
    return [data.images[domain] * 0.5 + 0.5 for domain in "ab"]


def row(run: Path, application: str, image_size: int) -> list[torch.Tensor]:
    direction = APPLICATIONS[application]
    predictions = run / application / "predictions"
    files = [predictions / f"{direction}_real.png"] + [predictions / f"{direction}_{i:05d}.png" for i in range(2)]
    outputs = [pil_to_tensor(Image.open(path).convert("RGB")).float() / 255 for path in files]
    return reals(application, image_size) + outputs


def main(runs: str, output: str, image_size: int = 64) -> None:
    cells = []
    for application in APPLICATIONS:
        for image in row(Path(runs), application, image_size):
            cells.append(torch.nn.functional.interpolate(image[None], size=(CELL, CELL), mode="nearest")[0])
    grid = to_pil_image(make_grid(cells, nrow=5, padding=2, pad_value=1.0))
    header = Image.new("RGB", (grid.width, 16), "white")
    draw = ImageDraw.Draw(header)
    for column, title in enumerate(("A", "B", "real translated", "sample translated", "sample translated")):
        draw.text((2 + column * (CELL + 2) + 4, 2), title, fill="black")
    figure = Image.new("RGB", (grid.width, grid.height + 16), "white")
    figure.paste(header, (0, 0))
    figure.paste(grid, (0, 16))
    figure.save(output)
    print(f"wrote {output}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
