"""Reading image files: the one reader of every DataModule that reads single images.

Every file is read the same way: EXIF orientation applied, grayscale replicated to three
channels, transparency composited onto a background, 16-bit grayscale read at its full range
(not clipped to white), and a header that claims more than MAX_PIXELS pixels (a decompression
bomb) refused before anything is decoded. With `at_least`, a large file is decoded at a reduced
size, so that memory follows the size the caller works at rather than the file's. Every error
is one sentence that names the file.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS  # Pillow's own decompression-bomb limit, 178,956,970 pixels
# A reduced decode keeps at least this many times the caller's size on each side. The working
# image (the reduced decode resized to the caller's size) then differs from the full decode's by at
# most 1.5/255 per pixel and 0.18/255 on average in what we measured: a photographed texture of
# 1200x900 at 100 px (tests/test_inputs.py) and a 12000x12000 photo at 250 px, as JPEG and PNG. A
# margin of 2 moves the texture's worst pixel by 6.6/255, a margin of 1 by 17/255.
REDUCTION_MARGIN = 4
# Files of up to this many pixels are always decoded in full, as the official code reads its images
# (at most about 0.15 GB on the way to the working image); only larger ones are decoded reduced.
FULL_DECODE_PIXELS = 2048 * 2048
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # PNG's 16-bit grayscale ("I": 32-bit holder)
_ROTATED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}  # the last bytes of a complete file


def list_images(directory: str | Path, layout: str = "a folder of images") -> list[Path]:
    """The image files of `directory` (by suffix, IMAGE_SUFFIXES), sorted by name; reads no file.

    Raises FileNotFoundError naming the folder and `layout` (what was expected) when it is
    missing, and ValueError naming it when it holds no image.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is missing; expected {layout}")
    files = sorted(path for path in directory.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{directory} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    return files


@contextmanager
def _named_errors(path: Path) -> Iterator[None]:
    """Turn PIL's errors inside the block into one ValueError naming `path`."""
    try:
        yield
    except Image.DecompressionBombError as error:
        raise ValueError(
            f"{path}: refused as a possible decompression bomb ({error}); expected at most {MAX_PIXELS:,} pixels"
        ) from error
    except (UnidentifiedImageError, OSError, SyntaxError, EOFError) as error:
        raise ValueError(
            f"{path}: not a readable image ({error}); expected a complete PNG, JPEG, BMP or WebP file"
        ) from error


@contextmanager
def open_image(path: str | Path) -> Iterator[Image.Image]:
    """PIL's image of `path` with only its header read, after the checks that need no decoding.

    Raises FileNotFoundError when the file is missing and ValueError (naming the file) when it is
    not an image or its header claims more than MAX_PIXELS pixels. Decoding errors inside the
    block are also raised as ValueError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file (expected one of {', '.join(IMAGE_SUFFIXES)})")
    with _named_errors(path):
        with warnings.catch_warnings():  # the size is checked below, against the error limit
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ValueError(
                    f"{path}: the header claims {width}x{height} = {width * height:,} pixels, more than the "
                    f"{MAX_PIXELS:,} this reader decodes (a decompression bomb?); shrink the image first"
                )
            yield image


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1: as stored). A PNG's eXIf chunk is read only when it precedes the
    pixel data (PIL would otherwise decode the whole file to look for it)."""
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    return image.getexif().get(0x0112, 1)


def displayed_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file as `load_image` returns it (after EXIF rotation); reads the header only."""
    with open_image(path) as image:
        width, height = image.size
        return (height, width) if _orientation(image) in _ROTATED_ORIENTATIONS else (width, height)


def _exact_factor(length: int, needed: int, candidates: Sequence[int]) -> int:
    """The largest candidate that divides `length` and leaves at least `needed` pixels (else 1)."""
    return max((k for k in candidates if length % k == 0 and length // k >= needed), default=1)


def _decode_reduced(image: Image.Image, at_least: tuple[int, int]) -> Image.Image:
    """Decode `image` shrunk by whole factors that keep REDUCTION_MARGIN x `at_least` (height, width).

    JPEG files are decoded by DCT scaling (1/2, 1/4 or 1/8: libjpeg never builds the full image),
    then any file is box-reduced by whole factors. Factors divide the size exactly, so every
    reduced pixel covers the same block of the original and the geometry is unchanged. Files of
    at most FULL_DECODE_PIXELS are decoded in full.
    """
    if image.width * image.height <= FULL_DECODE_PIXELS:
        return _working_mode(image)
    height, width = at_least
    if _orientation(image) in _ROTATED_ORIENTATIONS:
        height, width = width, height
    needed = (math.ceil(REDUCTION_MARGIN * width), math.ceil(REDUCTION_MARGIN * height))
    if image.format == "JPEG":
        scale = min(_exact_factor(length, need, (2, 4, 8)) for length, need in zip(image.size, needed))
        if scale > 1:  # both sides then divide by the smaller of the two factors as well
            image.draft(image.mode, (image.width // scale, image.height // scale))
    image = _working_mode(image)
    factors = tuple(_exact_factor(length, need, range(2, length + 1)) for length, need in zip(image.size, needed))
    return image.reduce(factors) if max(factors) > 1 else image


def _working_mode(image: Image.Image) -> Image.Image:
    """`image` decoded as "I" (16-bit grayscale), "RGBA" (with transparency), "L" or "RGB"."""
    if image.mode in SIXTEEN_BIT_MODES:
        mode = "I"
    elif image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        mode = "RGBA"
    elif image.mode in ("L", "1"):
        mode = "L"
    elif image.mode == "F":
        raise ValueError(f"{image.filename}: floating-point pixels (mode F); expected an 8- or 16-bit image")
    else:
        mode = "RGB"
    return image if image.mode == mode else image.convert(mode)


def _to_array(image: Image.Image, background: tuple[int, int, int] | None) -> np.ndarray:
    """A decoded image in a working mode -> float32 [H, W, 3] in [-1, 1]; alpha composited onto
    `background`, or dropped (the stored colours kept) when it is None."""
    if image.mode == "I":  # 16-bit grayscale: 0..65535
        grey = np.clip(np.asarray(image, dtype=np.float32) / 32767.5 - 1.0, -1.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "RGBA" and background is not None:
        composite = Image.new("RGB", image.size, background)
        composite.paste(image, mask=image.getchannel("A"))
        image = composite
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0


def load_image(
    path: str | Path,
    background: tuple[int, int, int] | None = (255, 255, 255),
    at_least: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Read an image file as a float tensor [3, H, W] in [-1, 1].

    EXIF orientation is applied; grayscale is replicated to three channels; an alpha channel is
    composited onto `background`, or dropped when `background` is None (PIL's `convert("RGB")`,
    as the official single-image code reads images); 16-bit grayscale PNGs keep their full range. With `at_least`
    (height, width), the size the caller will resize the image to, a file of more than
    FULL_DECODE_PIXELS is decoded at a reduced size no smaller than REDUCTION_MARGIN times that
    (see `_decode_reduced`). Any
    failure names the file.
    """
    path = Path(path)
    with open_image(path) as opened:
        image = _decode_reduced(opened, at_least) if at_least is not None else _working_mode(opened)
        image.load()  # decode now, so truncated files fail here
        array = _to_array(ImageOps.exif_transpose(image), background)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def load_rgb8(path: str | Path) -> Image.Image:
    """An image file as an 8-bit RGB PIL image, the way torchvision's folder loader reads it (no EXIF
    rotation, no compositing), except that 16-bit grayscale keeps its range and errors name the file."""
    with open_image(path) as opened:
        if opened.mode in SIXTEEN_BIT_MODES:
            grey = np.asarray(opened.convert("I"), dtype=np.float64) / 257.0
            return Image.fromarray(np.clip(grey.round(), 0, 255).astype(np.uint8)).convert("RGB")
        return opened.convert("RGB")


def check_images_complete(files: Sequence[str | Path]) -> None:
    """Check that every file is a whole image, before training starts; the first failure names its file.

    Each header is read (which refuses non-images and decompression bombs); a JPEG or PNG that
    ends with its format's end marker is complete (a truncated file lacks it), and any other file
    is decoded in full. For CelebA's 178x218 JPEGs that costs 0.14 ms of CPU per file with a warm
    file cache (30 s for all 202,599 images), against 0.08 ms for PIL's verify(), which reads the
    header only and passes truncated files, and 0.74 ms for a full decode.
    """
    for path in files:
        with open_image(path) as image:
            marker = _END_MARKERS.get(image.format)
            if marker is None or not _ends_with(image, marker):
                image.load()


def _ends_with(image: Image.Image, marker: bytes) -> bool:
    """Whether the file of `image` (header read, not decoded) ends with `marker`; its position is kept."""
    position = image.fp.tell()
    size = image.fp.seek(0, 2)
    image.fp.seek(max(size - len(marker), 0))
    ends = image.fp.read() == marker
    image.fp.seek(position)
    return ends
