"""The CelebA on-disk layout: the attribute and partition files (nothing is downloaded).

<data_dir>/img_align_celeba/000001.jpg ...   aligned faces, 178 wide x 218 high
<data_dir>/list_attr_celeba.txt              line 1: the image count; line 2: the 40 attribute
                                             names; then "<file> v_1 ... v_40" with v in {-1, 1}
<data_dir>/list_eval_partition.txt           "<file> <p>": 0 train, 1 validation, 2 test
                                             (read only for split="official")
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip
CELEBA_LAYOUT = "img_align_celeba/*.jpg, list_attr_celeba.txt and list_eval_partition.txt (the CelebA layout)"


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
