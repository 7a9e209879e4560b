"""The GTAV and Cityscapes on-disk layouts: listing and pairing the files, reading images and labels.

Layouts read (nothing is downloaded):

    GTAV (source_root):
        <root>/images/00001.png ...       RGB frames (most are 1914x1052)
        <root>/labels/00001.png ...       one per image, same file name: Cityscapes label ids (0..33),
                                          as palette ("P") PNGs whose indices are the ids, or grey ("L")
    Cityscapes (target_root):
        <root>/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png       RGB frames, 2048x1024
        <root>/gtFine/<split>/<city>/<name>_gtFine_labelIds.png        Cityscapes label ids ("L")
        where <name> is e.g. aachen_000000_000019
    Pseudo-labels (pseudo_label_dir, for self-distillation on Cityscapes train):
        <pseudo_label_dir>/<name>.png     train ids (0..18, 255 ignored), "L" or "P"

Label files hold label ids; readers map them to train ids with `label_ids_to_train_ids`
(CITYSCAPES_LABEL_TO_TRAIN_ID: ids of the 19 evaluated classes to 0..18, everything else to 255).
A few real GTAV images have a label of another size: their label is resized to the image's size
with nearest neighbour. In Cityscapes an image and its label must have the same size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from datamodules.paired_transforms import Size, resize_label
from dfgen.cityscapes import IGNORE_LABEL, NUM_CLASSES, label_ids_to_train_ids
from dfgen.images import IMAGE_SUFFIXES, displayed_size, load_image, open_image

GTAV_LAYOUT = "images/<name>.png and labels/<name>.png (Cityscapes label ids) (the GTAV layout)"
CITYSCAPES_LAYOUT = (
    "leftImg8bit/<split>/<city>/<name>_leftImg8bit.png and gtFine/<split>/<city>/<name>_gtFine_labelIds.png "
    "(the Cityscapes layout)"
)
_IMAGE_SUFFIX, _LABEL_SUFFIX = "_leftImg8bit.png", "_gtFine_labelIds.png"

# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _folder(path: Path, layout: str) -> Path:
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is missing; expected {layout}")
    return path


def _image_files(folder: Path, layout: str, suffix: str | None = None) -> list[Path]:
    """Sorted images in `folder` (with `suffix`: the <city>/*<suffix> files), or an error naming it."""
    _folder(folder, layout)
    if suffix is None:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        wanted = f"image ({', '.join(IMAGE_SUFFIXES)})"
    else:
        files = sorted(p for p in folder.glob(f"*/*{suffix}") if p.is_file())
        wanted = f"<city>/*{suffix} file"
    if not files:
        raise ValueError(f"{folder} holds no {wanted}; expected {layout}")
    return files


def gtav_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(image, label) paths of a GTAV folder, sorted by name: images/<stem>.* with labels/<stem>.png.

    Reads no file. Raises FileNotFoundError naming a missing folder, ValueError naming an empty
    images/ folder, and FileNotFoundError naming both files when an image has no label or a
    label has no image.
    """
    root = Path(root)
    images = _image_files(root / "images", f"{GTAV_LAYOUT} in {root}")
    labels = _folder(root / "labels", f"{GTAV_LAYOUT} in {root}")
    pairs = [(image, labels / f"{image.stem}.png") for image in images]
    for image, label in pairs:
        if not label.is_file():
            raise FileNotFoundError(f"{label}: label is missing for image {image}; expected {GTAV_LAYOUT}")
    stems = {image.stem for image in images}
    for label in sorted(labels.glob("*.png")):
        if label.stem not in stems:
            raise FileNotFoundError(
                f"{root / 'images' / label.name}: image is missing for label {label}; expected {GTAV_LAYOUT}"
            )
    return pairs


def cityscapes_name(image: str | Path) -> str:
    """The Cityscapes name of an image file: aachen_000000_000019 for aachen_000000_000019_leftImg8bit.png."""
    name = Path(image).name
    return name[: -len(_IMAGE_SUFFIX)] if name.endswith(_IMAGE_SUFFIX) else Path(image).stem


def cityscapes_images(root: str | Path, split: str) -> list[Path]:
    """The image files of one Cityscapes split, sorted (city, then name); reads no file.

    Raises FileNotFoundError naming a missing leftImg8bit/<split> folder and ValueError naming an
    empty one.
    """
    folder = Path(root) / "leftImg8bit" / split
    return _image_files(folder, f"{CITYSCAPES_LAYOUT} in {root}", suffix=_IMAGE_SUFFIX)


def cityscapes_pairs(root: str | Path, split: str, check_sizes: bool = True) -> list[tuple[Path, Path]]:
    """(image, labelIds file) paths of one Cityscapes split, sorted (city, then name).

    Raises FileNotFoundError naming both files when an image has no label or a label has no
    image, and with `check_sizes` (file headers only, no decoding) ValueError naming both files
    when their sizes differ; folder errors as `cityscapes_images`.
    """
    root = Path(root)
    images = cityscapes_images(root, split)
    label_folder = _folder(root / "gtFine" / split, f"{CITYSCAPES_LAYOUT} in {root}")
    pairs = []
    for image in images:
        label = label_folder / image.parent.name / f"{cityscapes_name(image)}{_LABEL_SUFFIX}"
        if not label.is_file():
            raise FileNotFoundError(f"{label}: label is missing for image {image}; expected {CITYSCAPES_LAYOUT}")
        pairs.append((image, label))
    known = {label for _, label in pairs}
    for label in sorted(label_folder.glob(f"*/*{_LABEL_SUFFIX}")):
        if label not in known:
            image = root / "leftImg8bit" / split / label.parent.name / label.name.replace(_LABEL_SUFFIX, _IMAGE_SUFFIX)
            raise FileNotFoundError(f"{image}: image is missing for label {label}; expected {CITYSCAPES_LAYOUT}")
    if check_sizes:
        check_pair_sizes(pairs)
    return pairs


def check_pair_sizes(pairs: Sequence[tuple[Path, Path]]) -> None:
    """ValueError naming both files of the first pair whose image and label sizes differ (headers only)."""
    for image, label in pairs:
        image_size, label_size = displayed_size(image), displayed_size(label)
        if image_size != label_size:
            raise ValueError(_size_mismatch(image, image_size, label, label_size))


def pseudo_label_files(images: Sequence[Path], pseudo_label_dir: str | Path) -> list[Path]:
    """<pseudo_label_dir>/<Cityscapes name>.png for every image; FileNotFoundError names the folder
    or a missing file with its image."""
    folder = Path(pseudo_label_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"pseudo_label_dir {folder} is not a folder; expected <name>.png train-id labels")
    files = [folder / f"{cityscapes_name(image)}.png" for image in images]
    for image, path in zip(images, files):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: pseudo-label is missing for image {image}; expected train ids (0..18, 255)"
            )
    return files


def _size_mismatch(image: Path, image_size: Size, label: Path, label_size: Size) -> str:
    return (
        f"image {image} is {image_size[0]}x{image_size[1]} but its label {label} is "
        f"{label_size[0]}x{label_size[1]}; an image and its label must have the same size"
    )


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def read_label(path: str | Path) -> np.ndarray:
    """The raw values [H, W] uint8 of a label PNG: the palette indices of a "P" file (never its
    colours) or the grey values of an "L" file. Other modes (e.g. an RGB colour-coded label) and
    unreadable files raise ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such label file")
    with open_image(path) as opened:
        opened.load()
        if opened.mode not in ("P", "L"):
            raise ValueError(
                f"{path}: label image of mode {opened.mode!r}; expected one value per pixel, as a palette "
                "('P') or grey ('L') PNG of ids (not a colour-coded label)"
            )
        return np.array(opened, dtype=np.uint8)


def load_rgb(path: str | Path) -> torch.Tensor:
    """An image file as float [3, H, W] in [0, 1] (load_image's reading; errors name the file)."""
    return ((load_image(path) + 1) / 2).clamp(0, 1)


def load_train_ids(path: str | Path, label_ids: bool = True) -> torch.Tensor:
    """A label file as train ids int64 [H, W]: mapped from label ids, or (label_ids=False, for
    pseudo-labels) read as train ids, when any value other than 0..18 and 255 is an error."""
    raw = read_label(path)
    if label_ids:
        return torch.from_numpy(label_ids_to_train_ids(raw)).long()
    bad = (raw >= NUM_CLASSES) & (raw != IGNORE_LABEL)
    if bad.any():
        raise ValueError(f"{path}: value {raw[bad][0]}; expected train ids (0..{NUM_CLASSES - 1}, 255 ignored)")
    return torch.from_numpy(raw).long()


def load_pair(
    image: Path, label: Path, resize_label_to_image: bool = False, label_ids: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """(image [3, H, W] in [0, 1], train ids int64 [H, W]) of one pair of files.

    When the sizes differ: with `resize_label_to_image` (GTAV, pseudo-labels) the label is
    resized to the image's size with nearest neighbour; otherwise ValueError names both files.
    """
    pixels, train_ids = load_rgb(image), load_train_ids(label, label_ids)
    height, width = pixels.shape[-2:]
    if train_ids.shape != (height, width):
        if not resize_label_to_image:
            label_height, label_width = train_ids.shape
            raise ValueError(_size_mismatch(image, (width, height), label, (label_width, label_height)))
        train_ids = resize_label(train_ids, (width, height))
    return pixels, train_ids
