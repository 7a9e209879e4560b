"""CelebA and other pairs of unpaired image domains, for attribute-based domain translation.

CelebA layout read (nothing is downloaded):

    <data_dir>/img_align_celeba/000001.jpg ...   aligned faces, 178 wide x 218 high
    <data_dir>/list_attr_celeba.txt              line 1: the image count; line 2: the 40 attribute
                                                 names; then "<file> v_1 ... v_40" with v in {-1, 1}
    <data_dir>/list_eval_partition.txt           "<file> <p>": 0 train, 1 validation, 2 test
                                                 (read only for split="official")

Two domains A and B are defined by boolean expressions over the attribute names, e.g.
A = "Smiling & ~Eyeglasses" and B = "~Smiling & Eyeglasses".

Optional object masks (the DataModules' mask_dir), for evaluating a method's masks as
segmentations: one folder of PNGs named like the images, e.g. <mask_dir>/000001.png for
img_align_celeba/000001.jpg, each of its image's size, 0 on the background and 255 on the object
(synthetic.write_synthetic_celeba writes masks/Eyeglasses/, masks/Mustache/ and
masks/Smiling/ in this form).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF

from datamodules.loaders import ClassificationDataModule, StreamedTrainingData, evaluation_loader
from datamodules.unpaired_folders import list_images
from dfgen.images import check_images_complete, displayed_size, load_image
from dfgen.settings import AT_LEAST_1, NON_NEGATIVE, OneOf, check_settings

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip
CELEBA_LAYOUT = "img_align_celeba/*.jpg, list_attr_celeba.txt and list_eval_partition.txt (the CelebA layout)"
SPLITS = ("first_n", "official")
DOMAIN_KEYS = ("train_a", "train_b", "test_a", "test_b")

# ---------------------------------------------------------------------------------------------
# Attribute expressions: "~" (not) binds tighter than "&" (and), which binds tighter than "|" (or)
# ---------------------------------------------------------------------------------------------

Mask = Callable[[np.ndarray], np.ndarray]
_TOKENS = re.compile(r"\s*(?:([A-Za-z0-9_]+)|(\S))")  # a name, or any other single character
_OPERATORS = frozenset("~&|()")


class _ExpressionParser:
    """Recursive descent over the tokens of one expression; each rule returns a mask function."""

    def __init__(self, expression: str, names: Sequence[str]) -> None:
        self.expression, self.names = expression, list(names)
        self.tokens: list[tuple[str, int]] = []  # (text, position)
        for match in _TOKENS.finditer(expression):
            name, symbol = match.groups()
            if symbol is not None and symbol not in _OPERATORS:
                self.fail(f"unexpected character {symbol!r} at position {match.start(2)}")
            self.tokens.append((name or symbol, match.start(1) if name else match.start(2)))
        self.position = 0

    def fail(self, problem: str) -> NoReturn:
        raise ValueError(f"attribute expression {self.expression!r}: {problem}")

    def peek(self) -> str | None:
        return self.tokens[self.position][0] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        self.position += 1
        return token

    def describe_next(self) -> str:
        if self.position >= len(self.tokens):
            return "end of the expression"
        text, where = self.tokens[self.position]
        return f"{text!r} at position {where}"

    def parse(self) -> Mask:
        if not self.tokens:
            self.fail("it is empty; expected attribute names joined by ~ (not), & (and), | (or) and parentheses")
        mask = self.parse_or()
        if self.peek() == ")":
            self.fail(f"unbalanced parentheses: ')' at position {self.tokens[self.position][1]} has no matching '('")
        if self.peek() is not None:
            self.fail(f"unexpected {self.describe_next()}; expected '&', '|' or the end of the expression")
        return mask

    def parse_or(self) -> Mask:
        terms = [self.parse_and()]
        while self.peek() == "|":
            self.take()
            terms.append(self.parse_and())
        return terms[0] if len(terms) == 1 else lambda values: np.logical_or.reduce([t(values) for t in terms])

    def parse_and(self) -> Mask:
        factors = [self.parse_not()]
        while self.peek() == "&":
            self.take()
            factors.append(self.parse_not())
        return factors[0] if len(factors) == 1 else lambda values: np.logical_and.reduce([f(values) for f in factors])

    def parse_not(self) -> Mask:
        if self.peek() == "~":
            self.take()
            operand = self.parse_not()
            return lambda values: ~operand(values)
        return self.parse_atom()

    def parse_atom(self) -> Mask:
        token = self.peek()
        if token == "(":
            opening = self.tokens[self.position][1]
            self.take()
            inner = self.parse_or()
            if self.peek() is None:
                self.fail(f"unbalanced parentheses: '(' at position {opening} is never closed")
            if self.peek() != ")":
                self.fail(f"unexpected {self.describe_next()}; expected '&', '|' or ')'")
            self.take()
            return inner
        if token is None or token in _OPERATORS:
            self.fail(f"unexpected {self.describe_next()}; expected an attribute name, '~' or '('")
        if token not in self.names:
            close = difflib.get_close_matches(token, self.names, n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(close)}?" if close else f"expected one of {', '.join(self.names)}"
            self.fail(f"unknown attribute {token!r}; {hint}")
        self.take()
        column = self.names.index(token)
        return lambda values: values[:, column]


def parse_attribute_expression(expression: str, names: Sequence[str] = CELEBA_ATTRIBUTES) -> Mask:
    """Compile a boolean expression over attribute names, e.g. "Smiling & ~(Eyeglasses | Male)".

    Operators: ~ (not), & (and), | (or), with that precedence, and parentheses; names are
    [A-Za-z0-9_]+ from `names`. Returns a function mapping bool values [N, len(names)] to a
    bool mask [N]. Raises ValueError naming the expression and the problem.
    """
    mask = _ExpressionParser(expression, names).parse()

    def evaluate(values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=bool)
        if values.ndim != 2 or values.shape[1] != len(names):
            raise ValueError(f"{expression!r}: values of shape {values.shape}; expected [N, {len(names)}]")
        return np.asarray(mask(values), dtype=bool)

    return evaluate


# ---------------------------------------------------------------------------------------------
# The attribute and partition files
# ---------------------------------------------------------------------------------------------


@dataclass
class CelebAIndex:
    """The images of a CelebA folder in attribute-file order.

    files: image paths [N]; attributes: bool [N, 40] (value 1 is True), columns in
    CELEBA_ATTRIBUTES order; partition: int [N] (0 train, 1 validation, 2 test), read from
    list_eval_partition.txt on first access, so that only split="official" needs that file.
    """

    data_dir: Path
    files: list[Path]
    attributes: np.ndarray

    @cached_property
    def partition(self) -> np.ndarray:
        return read_partition(self.data_dir, [path.name for path in self.files])


def _required(path: Path, kind: str = "file") -> Path:
    exists = path.is_dir() if kind == "folder" else path.is_file()
    if not exists:
        raise FileNotFoundError(f"{path} is missing; expected {CELEBA_LAYOUT} in {path.parent}")
    return path


def read_celeba(data_dir: str | Path) -> CelebAIndex:
    """Read list_attr_celeba.txt of a CelebA folder (see the module docstring for the layout).

    Raises a clear error naming the file (and line) when a file or the image folder is
    missing, the header differs from the image count and the 40 CelebA names, or a line does
    not hold a file name and 40 values in {-1, 1}. Image files themselves are not opened.
    """
    data_dir = Path(data_dir)
    images = _required(data_dir / "img_align_celeba", "folder")
    path = _required(data_dir / "list_attr_celeba.txt")
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        raise ValueError(f"{path}: {len(lines)} lines; expected the image count, the 40 attribute names, then rows")
    count = int(lines[0]) if lines[0].strip().isdigit() else -1
    if count < 0:
        raise ValueError(f"{path} line 1: {lines[0]!r}; expected the number of images")
    names = tuple(lines[1].split())
    if names != CELEBA_ATTRIBUTES:
        missing = [name for name in CELEBA_ATTRIBUTES if name not in names]
        extra = [name for name in names if name not in CELEBA_ATTRIBUTES]
        detail = f"missing {missing}, unexpected {extra}" if missing or extra else "another order"
        raise ValueError(f"{path} line 2: attribute names differ from the 40 CelebA names ({detail})")
    attributes = np.empty((count, len(CELEBA_ATTRIBUTES)), dtype=bool)
    files = []
    for number, line in enumerate(lines[2:], start=3):
        tokens = line.split()
        if not tokens:
            continue
        if len(files) == count:
            raise ValueError(f"{path}: line 1 announces {count} images but line {number} holds one more")
        values = tokens[1:]
        if len(values) != len(CELEBA_ATTRIBUTES):
            raise ValueError(
                f"{path} line {number}: {len(values)} values after the file name; expected {len(CELEBA_ATTRIBUTES)}"
            )
        positive = [value == "1" for value in values]
        if sum(positive) + values.count("-1") != len(values):
            bad = next(value for value in values if value not in ("1", "-1"))
            raise ValueError(f"{path} line {number}: value {bad!r}; expected -1 or 1")
        attributes[len(files)] = positive
        files.append(images / tokens[0])
    if len(files) != count:
        raise ValueError(f"{path}: line 1 announces {count} images but {len(files)} rows follow")
    return CelebAIndex(data_dir, files, attributes)


def read_partition(data_dir: str | Path, names: list[str]) -> np.ndarray:
    """Partitions int [N] (0 train, 1 validation, 2 test) of the images `names`, in that order,
    from list_eval_partition.txt, which must list exactly those files in the same order."""
    path = _required(Path(data_dir) / "list_eval_partition.txt")
    rows = [(number, line.split()) for number, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    if len(rows) != len(names):
        raise ValueError(f"{path}: {len(rows)} rows; expected one per image of list_attr_celeba.txt ({len(names)})")
    partition = np.empty(len(names), dtype=np.int64)
    for index, ((number, tokens), name) in enumerate(zip(rows, names)):
        if len(tokens) != 2 or tokens[1] not in ("0", "1", "2"):
            raise ValueError(f"{path} line {number}: {' '.join(tokens)!r}; expected '<file> <0, 1 or 2>'")
        if tokens[0] != name:
            raise ValueError(
                f"{path} line {number}: {tokens[0]!r}, but image {index + 1} of list_attr_celeba.txt is {name!r}; "
                "both files must list the same images in the same order"
            )
        partition[index] = int(tokens[1])
    return partition


def celeba_domain_files(
    data_dir: str | Path, domain_a: str, domain_b: str, split: str = "first_n", num_test: int = 64
) -> dict[str, list[Path]]:
    """The image files of domains A and B, keyed "train_a", "train_b", "test_a", "test_b".

    An image belongs to A when it satisfies `domain_a`, else to B when it satisfies
    `domain_b` (the official code's order, so overlapping expressions favour A).
    split "first_n": in attribute-file order, the first `num_test` images of each domain are
    its test set and the rest its training set (the official DID/MBU rule); "official": train
    = partition 0, test = partition 2 of list_eval_partition.txt (partition 1 is unused).
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; expected one of {SPLITS}")
    if split == "first_n" and num_test < 1:
        raise ValueError(f"num_test={num_test}; expected at least one test image per domain")
    index = read_celeba(data_dir)
    in_a = parse_attribute_expression(domain_a)(index.attributes)
    in_b = parse_attribute_expression(domain_b)(index.attributes) & ~in_a
    files = {}
    for domain, expression, member in (("a", domain_a, in_a), ("b", domain_b, in_b)):
        where = f"domain {domain.upper()} ({expression!r}) in {Path(data_dir) / 'list_attr_celeba.txt'}"
        positions = np.flatnonzero(member)
        if not len(positions):
            overlap = " (images matching domain A's expression go to A)" if domain == "b" else ""
            raise ValueError(f"{where} matches no image{overlap}")
        if split == "first_n":
            test, train = positions[:num_test], positions[num_test:]
        else:
            test, train = positions[index.partition[positions] == 2], positions[index.partition[positions] == 0]
        for part, chosen in (("train", train), ("test", test)):
            if not len(chosen):
                raise ValueError(f"{where}: {len(positions)} images but none for {part} with split={split!r}")
            files[f"{part}_{domain}"] = [index.files[position] for position in chosen]
    return files


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def _crop_and_resize(image: torch.Tensor, path: str | Path, crop_size: int | None, size: int) -> torch.Tensor:
    """[C, H, W] -> [C, size, size]: the centre crop (when crop_size), then an antialiased resize."""
    if crop_size is not None:
        if crop_size > min(image.shape[-2:]):
            height, width = image.shape[-2:]
            raise ValueError(f"{path}: {width}x{height} image is smaller than crop_size={crop_size}")
        image = TF.center_crop(image, [crop_size, crop_size])
    return TF.resize(image, [size, size], antialias=True)


def load_face(path: str | Path, crop_size: int | None, size: int) -> torch.Tensor:
    """An image file as a float tensor [3, size, size] in [-1, 1].

    crop_size: the side of a centre crop taken first (178 keeps the face region of CelebA's
    178x218 images, as DID does), then resized to size x size with antialiasing; None resizes
    the whole image to a square directly (aspect ratio not kept, as MBU does).
    """
    return _crop_and_resize(load_image(path), path, crop_size, size).clamp(-1, 1)


def load_mask(path: str | Path, crop_size: int | None, size: int) -> torch.Tensor:
    """A mask file (0 background, 255 object; grey or colour files are averaged over channels) as
    a float tensor [1, size, size] in {0, 1}, cropped and resized as `load_face` does its image.

    The mask is resized as a float with load_face's antialiased (triangle-filter) resize, then
    thresholded: 1 where the object covers at least half of the output pixel's footprint. The
    image's pixel there is the same weighted mix of object and surroundings, so the mask marks
    exactly the pixels that look more object than background in the loaded image: a thin part
    (a 3-pixel frame at 64 px) is kept when the image shows it, and a part the image blurs to
    below half strength is dropped. Nearest-neighbour resizing instead samples one source pixel
    per output pixel, so thin parts come and go with their sub-pixel position.

    Raises FileNotFoundError (missing) or ValueError (not an image, smaller than crop_size, or
    values only 0 and 1, i.e. labels rather than a 0/255 mask), each naming the file.
    """
    mask = (load_image(path) + 1).mean(0, keepdim=True) / 2  # [1, H, W] in [0, 1]
    if mask.max() > 0 and (mask * 255).round().max() <= 1:
        raise ValueError(f"{path}: mask values are 0 and 1; expected 0 (background) and 255 (object)")
    return (_crop_and_resize(mask, path, crop_size, size) >= 0.5).float()


def mask_files(image_files: Sequence[Path], mask_dir: str | Path) -> list[Path]:
    """The mask of each image: <mask_dir>/<image stem>.png."""
    return [Path(mask_dir) / f"{Path(path).stem}.png" for path in image_files]


def check_masks(image_files: Sequence[Path], mask_dir: str | Path) -> None:
    """Check that every image has its own mask (see `mask_files`) of the image's size.

    Reads headers, and checks that every mask is complete (`check_images_complete`). Raises
    FileNotFoundError naming the folder or the expected mask file, or ValueError naming the mask
    and its image when their sizes differ or a file is not an image or is truncated, or naming
    both images when two of them (in different folders) would share one mask.
    """
    mask_dir = Path(mask_dir)
    if not mask_dir.is_dir():
        raise FileNotFoundError(f"mask_dir {mask_dir} is not a folder; expected <image stem>.png masks in it")
    owners: dict[Path, Path] = {}
    for image_path, mask_path in zip(image_files, mask_files(image_files, mask_dir)):
        owner = owners.setdefault(mask_path, image_path)
        if owner != image_path:
            raise ValueError(f"{owner} and {image_path} would share the mask {mask_path}; rename one of them")
        if not mask_path.is_file():
            raise FileNotFoundError(f"{mask_path}: mask file is missing; expected the mask of {image_path}")
        (mask_width, mask_height), (width, height) = displayed_size(mask_path), displayed_size(image_path)
        if (mask_width, mask_height) != (width, height):
            raise ValueError(
                f"{mask_path}: mask is {mask_width}x{mask_height} but its image {image_path} is {width}x{height}; "
                "a mask must have its image's size"
            )
    check_images_complete(list(owners))


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


class FaceImages(Dataset):
    """load_face(files[i], crop_size, size): [3, size, size] in [-1, 1].

    With in_memory, the first access decodes every file once and keeps them as uint8
    [N, 3, size, size]; items are then the same up to uint8 quantisation (<= 0.5 / 127.5).
    """

    def __init__(self, files: list[Path], crop_size: int | None, size: int, in_memory: bool = False) -> None:
        self.files, self.crop_size, self.size, self.in_memory = files, crop_size, size, in_memory
        self.cache: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.files)

    def fill_cache(self) -> None:
        if self.in_memory and self.cache is None:
            self.cache = torch.stack([_to_uint8(load_face(path, self.crop_size, self.size)) for path in self.files])

    def __getitem__(self, index: int) -> torch.Tensor:
        if not self.in_memory:
            return load_face(self.files[index], self.crop_size, self.size)
        self.fill_cache()
        return self.cache[index].float() / 127.5 - 1


class FaceMasks(Dataset):
    """load_mask(files[i], crop_size, size): [1, size, size] in {0, 1}, read when an item is asked for."""

    def __init__(self, files: list[Path], crop_size: int | None, size: int) -> None:
        self.files, self.crop_size, self.size = files, crop_size, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        return load_mask(self.files[index], self.crop_size, self.size)


class ImagePairs(Dataset):
    """Item i: {"a": images_a[i], "b": images_b[i], "index": i} for the first `count` pairs, plus
    "mask_a": masks[0][i] and "mask_b": masks[1][i] ([1, size, size]) when `masks` is given."""

    def __init__(
        self,
        images_a: Dataset,
        images_b: Dataset,
        count: int | None = None,
        masks: tuple[Dataset, Dataset] | None = None,
    ) -> None:
        self.images_a, self.images_b, self.masks = images_a, images_b, masks
        self.count = min(len(images_a), len(images_b), *([count] if count is not None else []))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        item = {"a": self.images_a[index], "b": self.images_b[index], "index": index}
        if self.masks is not None:
            item |= {"mask_a": self.masks[0][index], "mask_b": self.masks[1][index]}
        return item


# ---------------------------------------------------------------------------------------------
# DataModules
# ---------------------------------------------------------------------------------------------


class TwoDomainDataModule(StreamedTrainingData):
    """Two unpaired image domains A and B: resumable training batches of both, test pairs.

    A subclass's `__init__` calls `save_hyperparameters()`, then `_set_domains(files)` with
    the file lists "train_a", "train_b", "test_a", "test_b". Training batches are
    {"a": [batch_size, 3, size, size], "b": [...]} in [-1, 1]; validation, test and predict
    items are {"a": [3, size, size], "b": [3, size, size], "index": i} (batched by the loader),
    plus {"mask_a": [1, size, size], "mask_b": [...]} in {0, 1} when mask_dir is given.

    Common args:
        size: images are size x size.
        crop_size: side of the centre crop taken before resizing (178: the face square of
            CelebA's 178x218 images, the DID recipe); None resizes the whole image to a square
            (the MBU recipe).
        flip: flip each training image horizontally with probability 1/2.
        batch_size: images per domain per training step (drawn without replacement).
        sample_seed: seed of the training batches (batch k is a function of (seed, k); rank r
            adds r).
        num_workers: loader processes (the same batches in the same order for any number).
        in_memory: decode every image once, resized, and keep them as uint8 tensors (for small
            datasets and CPU runs; size^2 * 3 bytes per image). The caches fill on first use
            (the training loader fills the training ones before starting its workers), so
            construction stays fast.
        eval_batch_size: batch size of the validation, test and predict loaders.
        num_eval: test pairs used by validation and test (None: all, i.e. as many as the
            smaller test domain has).
        predict_dir_a: a folder of images that predict uses as domain A (default: test A).
        predict_dir_b: the same for domain B. Predict pairs the two in sorted order, up to
            the shorter list (num_eval does not apply).
        verify_images: check every image file at construction (dfgen.images.
            check_images_complete), so that a file that is not an image or is truncated fails
            before anything is written, with its name: a header parse and, for a JPEG or PNG, a
            look at its last bytes, so complete files are not decoded (about 30 s of CPU for all of
            CelebA, a fifth of a full decode).
        mask_dir: a folder of object masks named like the images (<image stem>.png, 0 background,
            255 object, each of its image's size; see load_mask). Evaluation items then carry
            "mask_a" and "mask_b", cropped and resized like the images. Construction checks that
            every image of the validation/test pairs (the first num_eval) and of the predict
            pairs has its mask; training images need none, and training batches are unchanged.
    """

    setting_rules = {
        "size": AT_LEAST_1, "crop_size": AT_LEAST_1, "batch_size": AT_LEAST_1, "num_workers": NON_NEGATIVE,
        "eval_batch_size": AT_LEAST_1, "num_eval": AT_LEAST_1,
    }  # fmt: skip

    def _set_domains(self, files: dict[str, list[Path]], definitions: dict[str, str] | None = None) -> None:
        """Check and keep the four file lists; `definitions` describes each key for error messages."""
        hp = self.hparams
        where = f" of {hp.data_dir}" if "data_dir" in hp else ""
        for key in DOMAIN_KEYS:
            if not files.get(key):
                definition = (definitions or {}).get(key, key)
                raise ValueError(f"domain {key} ({definition}){where} has no image")
        for domain in ("a", "b"):
            count = len(files[f"train_{domain}"])
            if count < hp.batch_size:
                definition = (definitions or {}).get(f"train_{domain}", f"train_{domain}")
                raise ValueError(
                    f"domain train_{domain} ({definition}){where} has {count} images, fewer than "
                    f"batch_size={hp.batch_size} (a batch draws distinct images)"
                )
        predict = {domain: hp.get(f"predict_dir_{domain}") for domain in ("a", "b")}
        predict_files = {domain: list_images(Path(folder)) for domain, folder in predict.items() if folder}
        if hp.verify_images:
            check_images_complete([path for key in DOMAIN_KEYS for path in files[key]])
            check_images_complete([path for paths in predict_files.values() for path in paths])
        self.files = {key: list(files[key]) for key in DOMAIN_KEYS}
        self.images = {key: FaceImages(self.files[key], hp.crop_size, hp.size, hp.in_memory) for key in DOMAIN_KEYS}
        self.predict_images = {
            domain: FaceImages(predict_files[domain], hp.crop_size, hp.size) if domain in predict_files
            else self.images[f"test_{domain}"]
            for domain in ("a", "b")
        }  # fmt: skip
        self.masks: dict[str, FaceMasks] | None = None
        self.predict_masks: dict[str, FaceMasks] | None = None
        if hp.get("mask_dir"):
            self._set_masks(Path(hp.mask_dir))

    def _set_masks(self, mask_dir: Path) -> None:
        """Check the masks of the evaluation images that the loaders use and keep their readers."""
        hp = self.hparams
        test_count, predict_count = len(self._pairs("test")), len(self._pairs("predict"))
        used = []  # the images the pairs use (predict defaults to the test images: no repeats)
        for domain in ("a", "b"):
            used += self.images[f"test_{domain}"].files[:test_count]
            used += self.predict_images[domain].files[:predict_count]
        check_masks(list(dict.fromkeys(used)), mask_dir)

        def readers(images: FaceImages) -> FaceMasks:  # every file's mask; only the checked ones are read
            return FaceMasks(mask_files(images.files, mask_dir), hp.crop_size, hp.size)

        self.masks = {key: readers(self.images[key]) for key in ("test_a", "test_b")}
        self.predict_masks = {domain: readers(self.predict_images[domain]) for domain in ("a", "b")}

    def _pairs(self, part: str) -> ImagePairs:
        """The evaluation pairs of `part`, "test" (validation and test) or "predict", with their masks."""
        if part == "test":
            images, count = (self.images["test_a"], self.images["test_b"]), self.hparams.num_eval
            masks = None if self.masks is None else (self.masks["test_a"], self.masks["test_b"])
        else:
            images, count = (self.predict_images["a"], self.predict_images["b"]), None
            masks = None if self.predict_masks is None else (self.predict_masks["a"], self.predict_masks["b"])
        return ImagePairs(*images, count, masks)

    def training_batch(self, rng: torch.Generator) -> dict[str, torch.Tensor]:
        """{"a": [batch_size, 3, size, size], "b": [...]} in [-1, 1]; all randomness from `rng`."""
        hp, batch = self.hparams, {}
        for domain in ("a", "b"):
            images = self.images[f"train_{domain}"]
            picks = torch.randperm(len(images), generator=rng)[: hp.batch_size].tolist()
            stacked = torch.stack([images[index] for index in picks])
            if hp.flip:
                flips = torch.rand(len(picks), generator=rng) < 0.5
                stacked = torch.where(flips[:, None, None, None], stacked.flip(-1), stacked)
            batch[domain] = stacked
        return batch

    def train_dataloader(self) -> DataLoader:
        # fill the caches here, once, rather than in every worker process
        for key in ("train_a", "train_b"):
            self.images[key].fill_cache()
        return super().train_dataloader()

    def val_dataloader(self) -> DataLoader:
        hp = self.hparams
        for key in ("test_a", "test_b"):
            self.images[key].fill_cache()
        return evaluation_loader(self._pairs("test"), hp.eval_batch_size, hp.num_workers)

    test_dataloader = val_dataloader

    def predict_dataloader(self) -> DataLoader:
        for images in self.predict_images.values():
            images.fill_cache()
        hp = self.hparams
        return DataLoader(self._pairs("predict"), batch_size=hp.eval_batch_size, num_workers=hp.num_workers)


class CelebAAttributeDomains(TwoDomainDataModule):
    """CelebA images split into domains A and B by attribute expressions (DID and MBU setups).

    Args:
        data_dir: the CelebA folder (see the module docstring).
        domain_a: expression over CELEBA_ATTRIBUTES selecting A, e.g. "Smiling & ~Eyeglasses";
            ~ not, & and, | or, parentheses.
        domain_b: the same for B; an image matching both expressions belongs to A.
        split: "first_n" (the first num_test images of each domain, in file order, are its
            test set; the official code's rule) or "official" (train: partition 0, test:
            partition 2 of list_eval_partition.txt).
        num_test: test images per domain with split="first_n".
        size: images are size x size.
        crop_size: side of the centre crop taken before resizing (178: CelebA's face square, the
            DID recipe); None resizes the whole 178x218 image to a square (the MBU recipe).
        flip: flip each training image horizontally with probability 1/2.
        batch_size: images per domain per training step, drawn without replacement.
        sample_seed: seed of the training batches (rank r adds r).
        num_workers: loader processes (the same batches in the same order for any number).
        in_memory: decode every image once and keep it, resized, as uint8 (small data, CPU runs).
        eval_batch_size: batch size of the validation, test and predict loaders.
        num_eval: test pairs used by validation and test (None: all).
        predict_dir_a: a folder of images that predict uses as domain A (default: test A).
        predict_dir_b: the same for domain B (default: test B).
        verify_images: check every image file at construction (fails early, naming a file that
            is not an image or is truncated).
        mask_dir: a folder of object masks named <image stem>.png (e.g. masks/Eyeglasses/ of
            write_synthetic_celeba); evaluation items then carry "mask_a" and "mask_b" [1, size,
            size] in {0, 1}. Every evaluation image must have its mask (checked at construction).
    """

    setting_rules = TwoDomainDataModule.setting_rules | {"split": OneOf(SPLITS), "num_test": AT_LEAST_1}

    def __init__(
        self,
        data_dir: str,
        domain_a: str = "Smiling & ~Eyeglasses",
        domain_b: str = "~Smiling & Eyeglasses",
        split: str = "first_n",
        num_test: int = 64,
        size: int = 128,
        crop_size: int | None = 178,
        flip: bool = True,
        batch_size: int = 32,
        sample_seed: int = 0,
        num_workers: int = 0,
        in_memory: bool = False,
        eval_batch_size: int = 64,
        num_eval: int | None = None,
        predict_dir_a: str | None = None,
        predict_dir_b: str | None = None,
        verify_images: bool = True,
        mask_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        files = celeba_domain_files(data_dir, domain_a, domain_b, split, num_test)
        rule = f"first {num_test} matches" if split == "first_n" else "official partition"
        definitions = {f"{part}_{d}": f"{e!r}, {part} by {rule}" for d, e in (("a", domain_a), ("b", domain_b))
                       for part in ("train", "test")}  # fmt: skip
        self._set_domains(files, definitions)


class FolderDomains(TwoDomainDataModule):
    """Two domains as image folders in the CycleGAN layout: data_dir/trainA/, trainB/, testA/, testB/.

    Args:
        data_dir: the folder holding trainA/, trainB/, testA/ and testB/ (files sorted by name).
        size: images are size x size.
        crop_size: side of a centre crop taken before resizing; None (the default, as images
            may have any shape) resizes the whole image to a square.
        flip: flip each training image horizontally with probability 1/2.
        batch_size: images per domain per training step, drawn without replacement.
        sample_seed: seed of the training batches (rank r adds r).
        num_workers: loader processes (the same batches in the same order for any number).
        in_memory: decode every image once and keep it, resized, as uint8 (small data, CPU runs).
        eval_batch_size: batch size of the validation, test and predict loaders.
        num_eval: test pairs used by validation and test (None: all).
        predict_dir_a: a folder of images that predict uses as domain A (default: test A).
        predict_dir_b: the same for domain B (default: test B).
        verify_images: check every image file at construction (fails early, naming a file that
            is not an image or is truncated).
        mask_dir: a folder of object masks named <image stem>.png (0 background, 255 object, the
            image's size); evaluation items then carry "mask_a" and "mask_b" [1, size, size] in
            {0, 1}. Every evaluation image must have its mask (checked at construction), and
            testA/ and testB/ images need different stems.
    """

    def __init__(
        self,
        data_dir: str,
        size: int = 128,
        crop_size: int | None = None,
        flip: bool = True,
        batch_size: int = 32,
        sample_seed: int = 0,
        num_workers: int = 0,
        in_memory: bool = False,
        eval_batch_size: int = 64,
        num_eval: int | None = None,
        predict_dir_a: str | None = None,
        predict_dir_b: str | None = None,
        verify_images: bool = True,
        mask_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        folders = {"train_a": "trainA", "train_b": "trainB", "test_a": "testA", "test_b": "testB"}
        files = {key: list_images(Path(data_dir) / folder) for key, folder in folders.items()}
        self._set_domains(files, {key: f"folder {folder}/" for key, folder in folders.items()})


class LabelledFaces(Dataset):
    """(image [3, size, size] in [-1, 1], label int), flipped horizontally with probability 1/2 when `flip`."""

    def __init__(self, images: FaceImages, labels: list[int], flip: bool) -> None:
        self.images, self.labels, self.flip = images, labels, flip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        # the loader seeds torch's generator in every worker, so this draw differs across workers
        if self.flip and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image, self.labels[index]


class CelebADomainLabels(ClassificationDataModule):
    """CelebA domains A and B (as in CelebAAttributeDomains) as a two-class dataset: label 0 for A,
    1 for B, for training an A-vs-B membership classifier.

    Args:
        data_dir, domain_a, domain_b, split, num_test: the domains, as in CelebAAttributeDomains.
        size: images are size x size in [-1, 1].
        crop_size: centre crop before resizing (None: squash the whole image).
        batch_size: images per step (training drops the last incomplete batch).
        num_workers: loader processes.
        verify_images: check every image file at construction (fails early, naming a file that
            is not an image or is truncated).
    """

    num_classes = 2
    setting_rules = {
        "split": OneOf(SPLITS), "num_test": AT_LEAST_1, "size": AT_LEAST_1, "crop_size": AT_LEAST_1,
        "batch_size": AT_LEAST_1, "num_workers": NON_NEGATIVE,
    }  # fmt: skip

    def __init__(
        self,
        data_dir: str,
        domain_a: str = "Smiling & ~Eyeglasses",
        domain_b: str = "~Smiling & Eyeglasses",
        split: str = "first_n",
        num_test: int = 64,
        size: int = 128,
        crop_size: int | None = 178,
        batch_size: int = 64,
        num_workers: int = 0,
        verify_images: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        self.files = celeba_domain_files(data_dir, domain_a, domain_b, split, num_test)
        if verify_images:
            check_images_complete([path for paths in self.files.values() for path in paths])
        self.test_names: list[str] = ["clean"]

    def _labelled(self, part: str, flip: bool) -> LabelledFaces:
        hp = self.hparams
        files_a, files_b = self.files[f"{part}_a"], self.files[f"{part}_b"]
        images = FaceImages(files_a + files_b, hp.crop_size, hp.size)
        return LabelledFaces(images, [0] * len(files_a) + [1] * len(files_b), flip)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.train_set = self._labelled("train", flip=True)
        self.test_sets: list[Dataset] = [self._labelled("test", flip=False)]
