"""Drawn faces in the CelebA on-disk layout, with planted factors, ground-truth object masks and a
pixel oracle that reads the factors back from real or generated images."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from datamodules.celeba import CELEBA_ATTRIBUTES
from synthetic.images import write_image

FACE_WIDTH, FACE_HEIGHT = 178, 218  # the size of img_align_celeba's images
FACE_CROP_TOP = (FACE_HEIGHT - FACE_WIDTH) // 2  # a 178x178 centre crop keeps rows 20..197
FACE_HAIR_COLOURS = ("black", "blond", "brown", "gray")
FACE_BACKGROUNDS = ("blue", "green", "purple", "orange")
FACE_POSES = ("left", "centre", "right")
FACE_GLASSES_COLOURS = ("black", "navy", "maroon")
FACE_GLASSES_SHAPES = ("round", "wide")
FACE_SMILE_SHAPES = ("wide", "narrow")
FACE_POSE_OFFSET = 16  # columns the head moves left or right of the image centre
FACE_OBJECTS = ("Eyeglasses", "Mustache", "Smiling")  # the drawn objects with masks, by CelebA attribute name
# the factors that only mean something on a face that has the object, by its factor name
FACE_OBJECT_STYLES = {"eyeglasses": ("glasses_colour", "glasses_shape"), "smiling": ("smile_shape",)}
_HAIR_RGB = np.array([[35, 30, 28], [230, 200, 110], [125, 75, 40], [165, 165, 165]], dtype=np.float64)
_BACKGROUND_RGB = np.array([[50, 90, 200], [50, 160, 70], [130, 60, 160], [240, 150, 40]], dtype=np.float64)
_GLASSES_RGB = np.array([[25, 25, 35], [25, 35, 125], [125, 25, 30]], dtype=np.float64)  # lenses and frame
_SKIN_RGB = np.array([232, 190, 160], dtype=np.float64)
_MUSTACHE_RGB = (50, 35, 25)
_LIPS_RGB = (200, 35, 45)
_CENTRE_X, _CENTRE_Y = FACE_WIDTH / 2, 118  # the head's centre for the centre pose
_HEAD_RX, _HEAD_RY = 50, 64
_EYE_DX, _EYE_Y = 21, 104
_LENS_HALF_SIZES = {"round": (15, 15), "wide": (13, 7)}  # half width and half height of each lens
_SMILE_HALF_SIZES = {"wide": (26, 18), "narrow": (16, 13)}  # of the ellipse whose lower half is the smile
_MUSTACHE_TOP, _MUSTACHE_BOTTOM, _MOUTH_Y = 136, 149, 158

# Oracle regions in full-image pixels, each a union of boxes (x0, x1, y0, y1) with x relative to the
# head's centre column. An object is read where its core has its colour and, so that a smear or a
# blob does not pass for it, the skin around it (the "surround" regions) does not; the "only"
# regions are covered by one of an object's two shapes and not by the other.
_FACE_REGIONS = {
    "forehead": [(-18, 18, 66, 84)],  # bare skin: the reference the other regions are compared with
    "hair": [(-18, 18, 34, 48)],
    "lenses": [(-31, -11, 99, 109), (11, 31, 99, 109)],  # inside both lens shapes
    "lenses_round_only": [(sx, sx + 12, y, y + 5) for sx in (-27, 15) for y in (90, 113)],
    "lenses_surround": [(-36, 36, 80, 86), (-36, 36, 122, 128)],  # above and below both lens shapes
    "lenses_gap": [(-4, 4, 94, 100), (-4, 4, 108, 114)],  # between the lenses, just above and below the bridge
    "mustache": [(-16, 16, 139, 146)],
    "mustache_surround": [(-18, 18, 126, 132)],
    "mouth": [(-10, 10, 160, 168)],  # inside both smile shapes
    "mouth_wide_only": [(-23, -18, 159, 165), (18, 23, 159, 165)],
    "mouth_surround": [(-26, 26, 150, 155)],  # between the moustache and the smile's straight top
}


def sample_face_factors(count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Independent factors of `count` faces: bool eyeglasses/smiling/male/mustache/young, int hair,
    background, pose (0 left, 1 centre, 2 right), glasses_colour, glasses_shape and smile_shape
    (indices into the FACE_* name tuples; drawn for every face, shown only with the object). A
    mustache needs `male`."""
    factors = {name: rng.random(count) < 0.5 for name in ("eyeglasses", "smiling", "male")}
    factors["mustache"] = factors["male"] & (rng.random(count) < 0.5)
    factors["hair"] = rng.integers(len(FACE_HAIR_COLOURS), size=count)
    factors["background"] = rng.integers(len(FACE_BACKGROUNDS), size=count)
    factors["pose"] = rng.integers(len(FACE_POSES), size=count)
    factors["young"] = rng.random(count) < 0.5
    factors["glasses_colour"] = rng.integers(len(FACE_GLASSES_COLOURS), size=count)
    factors["glasses_shape"] = rng.integers(len(FACE_GLASSES_SHAPES), size=count)
    factors["smile_shape"] = rng.integers(len(FACE_SMILE_SHAPES), size=count)
    return factors


def face_objects(factors: dict[str, int | bool], cx: float, rx: float, dy: float) -> dict[str, list[tuple]]:
    """The drawing calls of each planted object of one face, keyed by its CelebA attribute name.

    "Eyeglasses" (two lenses, round or wide, the frame's side pieces and the bridge), "Mustache"
    (the band) and "Smiling" (an open smile, wide or narrow) are present when planted; each call
    is (ImageDraw method name, xy, keyword arguments other than `fill`). `cx` is the head's centre
    column, `rx` its half-width and `dy` the vertical shift of every part. The same calls draw the
    face and its masks, so a mask covers exactly its object's pixels; the objects never overlap.
    """
    eye_y, objects = _EYE_Y + dy, {}
    if factors["eyeglasses"]:
        shape = FACE_GLASSES_SHAPES[int(factors["glasses_shape"])]
        (half_width, half_height), lens = _LENS_HALF_SIZES[shape], "ellipse" if shape == "round" else "rectangle"
        glasses = []
        for side in (-1, 1):
            ex = cx + side * _EYE_DX
            glasses.append((lens, (ex - half_width, eye_y - half_height, ex + half_width, eye_y + half_height), {}))
            side_piece = (ex + side * half_width, eye_y - 2, cx + side * (rx - 1), eye_y - 4)
            glasses.append(("line", side_piece, {"width": 3}))
        glasses.append(("rectangle", (cx - _EYE_DX + 10, eye_y - 3, cx + _EYE_DX - 10, eye_y + 3), {}))
        objects["Eyeglasses"] = glasses
    if factors["mustache"]:
        top, bottom = _MUSTACHE_TOP + dy, _MUSTACHE_BOTTOM + dy
        objects["Mustache"] = [("rounded_rectangle", (cx - 22, top, cx + 22, bottom), {"radius": 5})]
    if factors["smiling"]:  # an open smile: the lower half of an ellipse
        half_width, half_height = _SMILE_HALF_SIZES[FACE_SMILE_SHAPES[int(factors["smile_shape"])]]
        box = (cx - half_width, _MOUTH_Y + dy - half_height, cx + half_width, _MOUTH_Y + dy + half_height)
        objects["Smiling"] = [("chord", box, {"start": 0, "end": 180})]
    return objects


def face_object_colours(factors: dict[str, int | bool]) -> dict[str, tuple[int, int, int]]:
    """The colour of each of FACE_OBJECTS on a face with these factors (the glasses' own colour)."""
    glasses = tuple(int(v) for v in _GLASSES_RGB[int(factors["glasses_colour"])])
    return {"Eyeglasses": glasses, "Mustache": _MUSTACHE_RGB, "Smiling": _LIPS_RGB}


def _draw_calls(draw: ImageDraw.ImageDraw, calls: list[tuple], fill: int | tuple[int, int, int]) -> None:
    for method, xy, kwargs in calls:
        getattr(draw, method)(xy, fill=fill, **kwargs)


def draw_face_with_masks(
    factors: dict[str, int | bool], rng: np.random.Generator, grain: float = 3.0
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One face [218, 178, 3] uint8 with the given factors (the keys of `sample_face_factors`) and
    the mask [218, 178] uint8 of each of FACE_OBJECTS: 255 on that object's pixels, else 0 (all
    zero when it is not planted).

    Every part lies inside the 178x178 centre crop and is large enough to read at 32x32,
    cropped or squashed; `rng` adds small size, position and colour jitter plus Gaussian pixel
    grain of standard deviation `grain` (0: the flat colours; `rng` is drawn from the same way).
    """

    def colour(rgb: np.ndarray, spread: float) -> tuple[int, int, int]:
        return tuple(int(v) for v in np.clip(rgb + rng.uniform(-spread, spread, size=3), 0, 255).round())

    background, skin = colour(_BACKGROUND_RGB[factors["background"]], 8), colour(_SKIN_RGB, 10)
    hair = colour(_HAIR_RGB[factors["hair"]], 8)
    cx = _CENTRE_X + (int(factors["pose"]) - 1) * FACE_POSE_OFFSET + rng.uniform(-1.5, 1.5)
    dy = rng.uniform(-2, 2)  # moves every part vertically
    rx, ry = _HEAD_RX + rng.uniform(-3, 3), _HEAD_RY + rng.uniform(-3, 3)
    cy = _CENTRE_Y + dy
    image = Image.new("RGB", (FACE_WIDTH, FACE_HEIGHT), background)
    draw = ImageDraw.Draw(image)
    if not factors["male"]:  # long hair falling beside the face
        draw.rounded_rectangle((cx - rx - 9, cy - 40, cx + rx + 9, cy + 52), radius=14, fill=hair)
    draw.ellipse((cx - rx - 6, cy - ry - 30, cx + rx + 6, cy + 32), fill=hair)  # the cap above the head
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=skin)
    eye_y = _EYE_Y + dy
    for side in (-1, 1):
        ex = cx + side * _EYE_DX
        draw.ellipse((ex - 6, eye_y - 4, ex + 6, eye_y + 4), fill=(250, 250, 250))
        draw.ellipse((ex - 3, eye_y - 3, ex + 3, eye_y + 3), fill=(40, 30, 30))
    objects = face_objects(factors, cx, rx, dy)
    for kind, fill in face_object_colours(factors).items():
        _draw_calls(draw, objects.get(kind, []), fill)
    if "Smiling" not in objects:  # a closed mouth, which no mask marks
        mouth_y = _MOUTH_Y + dy
        draw.line((cx - 12, mouth_y + 2, cx + 12, mouth_y + 2), fill=(110, 55, 50), width=3)
    masks = {}
    for kind in FACE_OBJECTS:
        mask = Image.new("L", (FACE_WIDTH, FACE_HEIGHT), 0)
        _draw_calls(ImageDraw.Draw(mask), objects.get(kind, []), 255)
        masks[kind] = np.asarray(mask)
    pixels = np.asarray(image, dtype=np.float64) + rng.normal(0, grain, size=(FACE_HEIGHT, FACE_WIDTH, 3))
    return np.clip(pixels, 0, 255).round().astype(np.uint8), masks


def face_attributes(factors: dict[str, np.ndarray]) -> np.ndarray:
    """The CelebA attribute values [N, 40] in {-1, 1} that the planted factors imply.

    Eyeglasses, Smiling, Male, Mustache (then No_Beard -1), one hair colour and Young
    (random, not drawn) are set; every other attribute is -1.
    """
    column = {name: index for index, name in enumerate(CELEBA_ATTRIBUTES)}
    count = len(factors["pose"])
    values = -np.ones((count, len(CELEBA_ATTRIBUTES)), dtype=np.int64)
    planted = {
        "Eyeglasses": factors["eyeglasses"], "Smiling": factors["smiling"], "Male": factors["male"],
        "Mustache": factors["mustache"], "No_Beard": ~factors["mustache"], "Young": factors["young"],
    }  # fmt: skip
    for name, hair in zip(("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"), range(len(FACE_HAIR_COLOURS))):
        planted[name] = factors["hair"] == hair
    for name, present in planted.items():
        values[:, column[name]] = np.where(present, 1, -1)
    return values


_FLAG_FACTORS = ("eyeglasses", "smiling", "mustache", "male")
_NAMED_FACTORS = {
    "hair": FACE_HAIR_COLOURS, "background": FACE_BACKGROUNDS, "pose": FACE_POSES,
    "glasses_colour": FACE_GLASSES_COLOURS, "glasses_shape": FACE_GLASSES_SHAPES, "smile_shape": FACE_SMILE_SHAPES,
}  # fmt: skip


def write_synthetic_celeba(root: str | Path, count: int = 500, seed: int = 0, masks: bool = True) -> Path:
    """Write `count` drawn faces in the CelebA layout under `root` and return `root`.

    Files: img_align_celeba/000001.jpg... (178x218 JPEG, quality 95), list_attr_celeba.txt and
    list_eval_partition.txt in the real formats (partition by index: the first 80% train, the
    next 10% validation, the rest test), and factors.csv with the planted factors per file
    (filename, eyeglasses, smiling, mustache, male as 0/1; hair, background, pose, glasses_colour,
    glasses_shape and smile_shape as names, the styles drawn for every face and shown only on
    the faces with that object). Males are drawn with short hair, everyone else with hair
    falling beside the face.

    With `masks`, also the ground-truth object masks, one folder per object kind named by its
    CelebA attribute (FACE_OBJECTS), one PNG per image named by the image's stem:

        masks/Eyeglasses/000001.png   the lenses, the frame's side pieces and the bridge
        masks/Mustache/000001.png     the moustache band
        masks/Smiling/000001.png      the red open-mouth smile (not the closed mouth's line)

    each 178x218, mode "L": 255 on the object's pixels (drawn with the image's own drawing
    calls, so they match the JPEG's object pixels up to JPEG blur), 0 elsewhere, and all 0
    when the image has no such object. The images do not depend on `masks`.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    factors = sample_face_factors(count, rng)
    names = [f"{index + 1:06d}.jpg" for index in range(count)]
    for index, name in enumerate(names):
        face, object_masks = draw_face_with_masks({key: values[index] for key, values in factors.items()}, rng)
        write_image(root / "img_align_celeba" / name, face, quality=95)
        if masks:
            for kind, mask in object_masks.items():
                write_image(root / "masks" / kind / f"{Path(name).stem}.png", mask)
    attributes = face_attributes(factors)
    lines = [str(count), " ".join(CELEBA_ATTRIBUTES) + " "]
    lines += [f"{name} " + " ".join(f"{value:2d}" for value in row) for name, row in zip(names, attributes)]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    partition = np.searchsorted([0.8 * count, 0.9 * count], np.arange(count), side="right")
    (root / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, partition)))
    rows = [",".join(("filename", *_FLAG_FACTORS, *_NAMED_FACTORS))]
    for index, name in enumerate(names):
        flags = [str(int(factors[key][index])) for key in _FLAG_FACTORS]
        named = [values[factors[key][index]] for key, values in _NAMED_FACTORS.items()]
        rows.append(",".join((name, *flags, *named)))
    (root / "factors.csv").write_text("\n".join(rows) + "\n")
    return root


def read_planted_factors(root: str | Path) -> tuple[list[str], dict[str, torch.Tensor]]:
    """factors.csv of `write_synthetic_celeba`: the file names and, per factor, a tensor [N]
    (bool eyeglasses/smiling/mustache/male; long indices of the named factors), as the oracle gives."""
    path = Path(root) / "factors.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; expected the factors.csv that write_synthetic_celeba writes")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    missing = [key for key in (*_FLAG_FACTORS, *_NAMED_FACTORS) if rows and key not in rows[0]]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)}; rewrite the faces with write_synthetic_celeba")
    factors = {key: torch.tensor([row[key] == "1" for row in rows]) for key in _FLAG_FACTORS}
    for key, names in _NAMED_FACTORS.items():
        factors[key] = torch.tensor([names.index(row[key]) for row in rows])
    return [row["filename"] for row in rows], factors


def _region_masks(size: int, cropped: bool, centre_x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image, which pixels of an S x S image lie in each oracle region: bool [N, S, S] per name.

    Pixel centres are mapped back to full-image coordinates (both loadings keep the 178
    columns; the crop keeps rows 20..197, the squash all 218), and the regions follow the
    estimated head column `centre_x` [N]. A box narrower than a pixel takes the nearest row or
    column.
    """
    step = torch.tensor(FACE_WIDTH / size)
    columns = (torch.arange(size) + 0.5) * step
    rows = (torch.arange(size) + 0.5) * (step if cropped else FACE_HEIGHT / size) + (FACE_CROP_TOP if cropped else 0)
    relative = columns[None, :] - centre_x[:, None]  # [N, S]
    masks = {}
    for name, boxes in _FACE_REGIONS.items():
        mask = torch.zeros(len(centre_x), size, size, dtype=torch.bool)
        for x0, x1, y0, y1 in boxes:
            in_rows = (rows >= y0) & (rows <= y1)
            if not in_rows.any():
                in_rows = torch.zeros(size, dtype=torch.bool)
                in_rows[(rows - (y0 + y1) / 2).abs().argmin()] = True
            in_columns = (relative >= x0) & (relative <= x1)  # [N, S]
            nearest = (relative - (x0 + x1) / 2).abs().argmin(1)  # [N]
            in_columns[~in_columns.any(1), nearest[~in_columns.any(1)]] = True
            mask |= in_rows[None, :, None] & in_columns[:, None, :]
        masks[name] = mask
    return masks


def _masked_mean(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean colour [N, 3] of images [N, 3, S, S] over mask [N, S, S] (an empty mask gives 0)."""
    weights = mask[:, None].to(images.dtype)
    return (images * weights).sum((2, 3)) / weights.sum((2, 3)).clamp(min=1)


def _nearest(colours: torch.Tensor, palette_rgb: np.ndarray) -> torch.Tensor:
    """Index [N] of the palette entry (RGB 0..255 [K, 3]) nearest to colours [N, 3] in [-1, 1]."""
    palette = torch.as_tensor(palette_rgb / 127.5 - 1, dtype=colours.dtype)
    return torch.cdist(colours, palette).argmin(1)


def face_measurements(images: torch.Tensor, cropped: bool = True) -> dict[str, torch.Tensor]:
    """The statistics `read_face_factors` decides from, for images [N, 3, S, S] in [-1, 1].

    "background", "hair" and "lenses_colour": mean colours [N, 3]; "offset": the head's column
    minus the image centre, in full-image pixels [N]; "darkness_<region>": how much darker than
    the forehead a region of _FACE_REGIONS is (mean luminance difference [N]) for the glasses'
    and the moustache's regions; "redness_<region>": how much redder (R - (G + B) / 2) than the
    forehead, for the mouth's regions.
    """
    images = images.float()
    size = images.shape[-1]
    corner = max(size // 10, 1)
    corners = torch.cat(
        [images[..., rows, columns] for rows in (slice(0, corner), slice(-corner, None))
         for columns in (slice(0, corner), slice(-corner, None))], dim=-1,
    )  # fmt: skip
    background = corners.mean((2, 3))
    # the head (with its hair) is symmetric about its centre column: the centroid of the pixels
    # that differ from the background finds it
    foreground = ((images - background[:, :, None, None]).norm(dim=1) > 0.4).float()  # [N, S, S]
    columns = (torch.arange(size, dtype=images.dtype) + 0.5) * (FACE_WIDTH / size)
    weight = foreground.sum((1, 2)).clamp(min=1)
    centre_x = (foreground.sum(1) * columns).sum(1) / weight
    centre_x = torch.where(foreground.sum((1, 2)) > 0, centre_x, torch.full_like(centre_x, _CENTRE_X))
    means = {name: _masked_mean(images, mask) for name, mask in _region_masks(size, cropped, centre_x).items()}
    luminance = {name: mean @ torch.tensor([0.299, 0.587, 0.114]) for name, mean in means.items()}
    redness = {name: mean[:, 0] - mean[:, 1:].mean(1) for name, mean in means.items()}
    measured = {"background": background, "hair": means["hair"], "lenses_colour": means["lenses"]}
    measured["offset"] = centre_x - _CENTRE_X
    for name in ("lenses", "lenses_round_only", "lenses_surround", "lenses_gap", "mustache", "mustache_surround"):
        measured[f"darkness_{name}"] = luminance["forehead"] - luminance[name]
    for name in ("mouth", "mouth_wide_only", "mouth_surround"):
        measured[f"redness_{name}"] = redness[name] - redness["forehead"]
    return measured


# Decision thresholds, from the measurements on written faces (both loadings, sizes 32 to 128;
# tests/test_synthetic_faces.py): an object's core must differ from the forehead by more than
# the first value and the skin around it by less than the second; between the lenses the skin
# must be less than 0.35 times as dark as the lenses (drawn glasses: 0.28 at most, a dark strip
# across both eyes 0.4 or more); a style shows in its "only" region at more than half the
# core's strength.
_GLASSES_DARKNESS, _GLASSES_SURROUND, _GLASSES_GAP = 0.6, 0.3, 0.35
_MUSTACHE_DARKNESS, _MUSTACHE_SURROUND = 0.6, 0.3
_SMILE_REDNESS, _SMILE_SURROUND = 0.35, 0.3
_STYLE_SHARE = 0.5


def read_face_factors(images: torch.Tensor, cropped: bool = True) -> dict[str, torch.Tensor]:
    """Read the planted factors back from faces [N, 3, S, S] in [-1, 1] (real or generated).

    `cropped`: the images were loaded with load_face(path, crop_size=178, size=S); False for
    crop_size=None (the whole 178x218 image squashed to a square). Returns "eyeglasses",
    "smiling", "mustache" (bool [N]) and "hair", "background", "pose", "glasses_colour",
    "glasses_shape", "smile_shape" (long [N]: indices into the FACE_* name tuples; a style is
    read whether or not its object is there, and means something only where it is).

    An object is read from its shape, not from a region's average alone: glasses are two dark
    lenses with skin above, below and between them, a smile a red half-ellipse under skin, a
    moustache a dark band with skin above it; so a dark smear over the eyes or a red blob at
    the mouth is no glasses and no smile. Colours are compared with the forehead's and with
    the nearest palette entry, so blurry reconstructions are read the same way.
    """
    measured = face_measurements(images, cropped)
    lenses, mouth = measured["darkness_lenses"], measured["redness_mouth"]
    poses = torch.tensor([-FACE_POSE_OFFSET, 0.0, FACE_POSE_OFFSET])
    round_lenses = measured["darkness_lenses_round_only"] > _STYLE_SHARE * lenses
    wide_smile = measured["redness_mouth_wide_only"] > _STYLE_SHARE * mouth
    return {
        "eyeglasses": (lenses > _GLASSES_DARKNESS)
        & (measured["darkness_lenses_surround"] < _GLASSES_SURROUND)
        & (measured["darkness_lenses_gap"] < _GLASSES_GAP * lenses),
        "smiling": (mouth > _SMILE_REDNESS) & (measured["redness_mouth_surround"] < _SMILE_SURROUND),
        "mustache": (measured["darkness_mustache"] > _MUSTACHE_DARKNESS)
        & (measured["darkness_mustache_surround"] < _MUSTACHE_SURROUND),
        "hair": _nearest(measured["hair"], _HAIR_RGB),
        "background": _nearest(measured["background"], _BACKGROUND_RGB),
        "pose": (measured["offset"][:, None] - poses).abs().argmin(1),
        "glasses_colour": _nearest(measured["lenses_colour"], _GLASSES_RGB),
        "glasses_shape": torch.where(round_lenses, 0, 1),
        "smile_shape": torch.where(wide_smile, 0, 1),
    }
