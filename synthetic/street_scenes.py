"""Drawn street scenes for semantic segmentation, in the GTAV and Cityscapes on-disk layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dfgen.cityscapes import CITYSCAPES_LABEL_TO_TRAIN_ID, cityscapes_palette
from synthetic.images import write_image

# The Cityscapes label ids that the scenes use: four evaluated classes and the ignored ego vehicle.
SCENE_LABEL_IDS = {"ego vehicle": 1, "road": 7, "building": 11, "sky": 23, "car": 26}
_CAR_RGB = np.array([[200, 35, 35], [35, 70, 200], [225, 200, 50], [235, 235, 235], [40, 150, 60]], dtype=np.float64)
_WINDOW_RGB = np.array([45, 55, 75], dtype=np.float64)


def draw_street_scene(size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random street scene: image [h, w, 3] uint8 and its Cityscapes label ids [h, w] uint8, size (w, h).

    Every class has its own look, learnable at 64x32: sky (23) a smooth blue gradient above the
    horizon; buildings (11) walls of random warm greys standing on the horizon with a regular grid
    of dark windows; road (7) a grainy grey below the horizon; cars (26) 1-3 saturated boxes with a
    dark window band, standing on the road and larger the lower they stand; the ego vehicle
    (label id 1, train id 255) a dark band along the bottom. `rng` draws positions and colour jitter.
    """
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    labels = np.full((height, width), SCENE_LABEL_IDS["sky"], dtype=np.uint8)
    horizon = rng.uniform(0.38, 0.52) * height
    ego_top = height - max(1.0, 0.06 * height)
    sky_top, sky_bottom = [70, 120, 200] + rng.uniform(-15, 15, 3), [170, 200, 235] + rng.uniform(-10, 10, 3)
    mix = np.clip(y / horizon, 0, 1)[..., None]
    image = sky_top * (1 - mix) + sky_bottom * mix + rng.normal(0, 2, (height, width, 3))
    period = max(4, round(height / 10))  # of the window grid
    left = rng.uniform(-0.1, 0.05) * width
    while left < width:
        span = rng.uniform(0.12, 0.3) * width
        if rng.random() < 0.8:
            top = rng.uniform(0.1, 0.75) * horizon
            region = (x >= left) & (x < left + span) & (y >= top) & (y < horizon)
            windows = ((x - left) % period >= period / 2) & ((y - top) % period >= period / 2)
            wall = [150, 125, 105] + rng.uniform(-25, 25, 3)
            walls = np.where(windows[..., None], _WINDOW_RGB, wall) + rng.normal(0, 3, (height, width, 3))
            image[region], labels[region] = walls[region], SCENE_LABEL_IDS["building"]
        left += span
    road = y >= horizon
    grain = np.array([95.0, 95.0, 100.0]) + rng.uniform(-12, 12) + rng.normal(0, 14, (height, width, 1))
    image[road], labels[road] = grain[road], SCENE_LABEL_IDS["road"]
    for _ in range(rng.integers(1, 4)):
        bottom = rng.uniform(horizon + 0.15 * height, ego_top)
        car_height = (bottom - horizon) * rng.uniform(0.5, 0.8)
        car_width, centre = car_height * rng.uniform(1.5, 2.2), rng.uniform(0, width)
        region = (np.abs(x - centre) < car_width / 2) & (y >= bottom - car_height) & (y < bottom)
        body = _CAR_RGB[rng.integers(len(_CAR_RGB))] + rng.uniform(-15, 15, 3)
        window_band = y < bottom - 0.6 * car_height
        car = np.where(window_band[..., None], _WINDOW_RGB, body) + rng.normal(0, 4, (height, width, 3))
        image[region], labels[region] = car[region], SCENE_LABEL_IDS["car"]
    ego = y >= ego_top
    image[ego], labels[ego] = (25 + rng.normal(0, 3, (height, width, 3)))[ego], SCENE_LABEL_IDS["ego vehicle"]
    return np.clip(image, 0, 255).round().astype(np.uint8), labels


def shift_colours(image: np.ndarray) -> np.ndarray:
    """The target domain's global colour shift of an image [h, w, 3] uint8: the channels rotated
    (R, G, B) <- (B, R, G), contrast scaled by 0.7 and brightness raised by 45."""
    shifted = image[..., [2, 0, 1]].astype(np.float64) * 0.7 + 45
    return np.clip(shifted, 0, 255).round().astype(np.uint8)


def _label_id_palette() -> list[int]:
    """A 256-colour palette that gives each label id its class's Cityscapes colour (black when not evaluated)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label_id, train_id in CITYSCAPES_LABEL_TO_TRAIN_ID.items():
        if label_id >= 0 and train_id < 255:
            palette[label_id] = cityscapes_palette()[train_id]
    return palette.flatten().tolist()


def write_label(path: str | Path, ids: np.ndarray, mode: str = "L") -> Path:
    """Save ids [h, w] uint8 as a PNG whose pixel values are the ids: mode "L" (grey) or "P" (palette
    indices, with label-id colours as GTAV ships its labels)."""
    if mode not in ("L", "P"):
        raise ValueError(f"label mode {mode!r}; expected 'L' or 'P'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = np.ascontiguousarray(ids, dtype=np.uint8)
    image = Image.frombytes(mode, (ids.shape[1], ids.shape[0]), ids.tobytes())
    if mode == "P":
        image.putpalette(_label_id_palette())
    image.save(path)
    return path


def write_gtav(
    root: str | Path,
    count: int = 8,
    size: tuple[int, int] = (96, 54),
    seed: int = 0,
    labels_mode: str = "P",
    colour_shift: bool = False,
) -> Path:
    """Write `count` street scenes (draw_street_scene, size (w, h)) in the GTAV layout under `root`:
    images/00001.png ... (RGB) and labels/00001.png ... (Cityscapes label ids as "P" palette
    indices, as GTAV ships them, or "L" grey values). `colour_shift` applies shift_colours to the
    images. Returns `root`."""
    root, rng = Path(root), np.random.default_rng(seed)
    for index in range(count):
        image, labels = draw_street_scene(size, rng)
        write_image(root / "images" / f"{index + 1:05d}.png", shift_colours(image) if colour_shift else image)
        write_label(root / "labels" / f"{index + 1:05d}.png", labels, labels_mode)
    return root


def write_cityscapes(
    root: str | Path,
    splits: dict[str, int] | None = None,
    size: tuple[int, int] = (128, 64),
    seed: int = 0,
    cities: tuple[str, ...] = ("aachen", "bremen"),
    colour_shift: bool = False,
) -> Path:
    """Write street scenes (draw_street_scene, size (w, h)) in the Cityscapes layout under `root`:

        leftImg8bit/<split>/<city>/<city>_<nnnnnn>_000019_leftImg8bit.png     RGB
        gtFine/<split>/<city>/<city>_<nnnnnn>_000019_gtFine_labelIds.png      label ids, "L"

    `splits` maps split names to image counts (default {"train": 8, "val": 4}); images go to the
    cities in turn. `colour_shift` applies shift_colours to the images. Returns `root`.
    """
    root, rng = Path(root), np.random.default_rng(seed)
    for split, count in (splits or {"train": 8, "val": 4}).items():
        for index in range(count):
            city = cities[index % len(cities)]
            name = f"{city}_{index // len(cities):06d}_000019"
            image, labels = draw_street_scene(size, rng)
            image = shift_colours(image) if colour_shift else image
            write_image(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", image)
            write_label(root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png", labels)
    return root


def write_segmentation_shift(
    root: str | Path,
    count_source: int = 32,
    count_target: int = 16,
    size: tuple[int, int] = (64, 32),
    seed: int = 0,
) -> tuple[Path, Path]:
    """A small segmentation task with a domain shift: returns (gtav_root, cityscapes_root).

    <root>/gtav: `count_source` street scenes (road, building, sky, car and the ignored ego
    vehicle; see draw_street_scene) in the GTAV layout; <root>/cityscapes: `count_target` train
    and `count_target` val scenes in the Cityscapes layout, drawn the same way but with the
    global colour shift of shift_colours (channels rotated, lower contrast, brighter). Classes are
    told apart by texture and layout as well as colour, so a segmenter trained on the source
    transfers to the target only in part, and style-robust training should narrow the gap.
    """
    root = Path(root)
    gtav = write_gtav(root / "gtav", count_source, size, seed)
    splits = {"train": count_target, "val": count_target}
    cityscapes = write_cityscapes(root / "cityscapes", splits, size, seed + 1, colour_shift=True)
    return gtav, cityscapes
