"""GTAV -> Cityscapes semantic segmentation data: 19 Cityscapes train classes, ignore label 255.

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

Tensor conventions: an image is float [3, H, W], in [0, 1] while it is transformed; the
DataModule's batches are ImageNet mean/std normalised (what torchvision-pretrained backbones
expect) when normalize=True, else in [0, 1]. A label is int64 [H, W] of train ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF

from datamodules.loaders import StreamedTrainingData, evaluation_loader
from datamodules.unpaired_folders import list_images
from dfgen.cityscapes import IGNORE_LABEL, NUM_CLASSES, label_ids_to_train_ids
from dfgen.images import IMAGE_SUFFIXES, displayed_size, load_image, open_image
from dfgen.settings import AT_LEAST_1, NON_NEGATIVE, POSITIVE, Each, OneOf, check_settings

STAGES = ("source", "adversarial", "self_distill")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GTAV_LAYOUT = "images/<name>.png and labels/<name>.png (Cityscapes label ids) (the GTAV layout)"
CITYSCAPES_LAYOUT = (
    "leftImg8bit/<split>/<city>/<name>_leftImg8bit.png and gtFine/<split>/<city>/<name>_gtFine_labelIds.png "
    "(the Cityscapes layout)"
)
_IMAGE_SUFFIX, _LABEL_SUFFIX = "_leftImg8bit.png", "_gtFine_labelIds.png"

Size = tuple[int, int]  # (width, height), as PIL gives sizes

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


# ---------------------------------------------------------------------------------------------
# Transforms: image float [3, H, W] in [0, 1], label int64 [H, W]; randomness from `rng`
# ---------------------------------------------------------------------------------------------


def _check_pair(image: torch.Tensor, label: torch.Tensor | None) -> None:
    if label is not None and image.shape[-2:] != label.shape[-2:]:
        raise ValueError(f"image of shape {tuple(image.shape)} and label of shape {tuple(label.shape)} differ in size")


def resize_image(image: torch.Tensor, size: Size) -> torch.Tensor:
    """Image [3, H, W] -> [3, h, w] for size (w, h): bicubic with antialiasing, which is PIL's BICUBIC
    resize, the official transforms' (`Resize`, `RandomScale` of `FADA/core/datasets/transform.py`)."""
    width, height = size
    if image.shape[-2:] == (height, width):
        return image
    return TF.resize(image, [height, width], interpolation=TF.InterpolationMode.BICUBIC, antialias=True).clamp(0, 1)


def resize_label(label: torch.Tensor, size: Size) -> torch.Tensor:
    """Label [H, W] -> [h, w] for size (w, h): nearest neighbour (the source pixel under each
    output pixel's centre), so values are only ever copied."""
    width, height = size
    old_height, old_width = label.shape[-2:]
    if (old_height, old_width) == (height, width):
        return label
    rows = ((torch.arange(height) + 0.5) * (old_height / height)).long().clamp(max=old_height - 1)
    columns = ((torch.arange(width) + 0.5) * (old_width / width)).long().clamp(max=old_width - 1)
    return label[..., rows[:, None], columns[None, :]]


def resize(image: torch.Tensor, label: torch.Tensor, size: Size) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize a pair to size (w, h): the image bilinearly with antialiasing, the label by nearest neighbour."""
    _check_pair(image, label)
    return resize_image(image, size), resize_label(label, size)


def _uniform(low: float, high: float, rng: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=rng))


def random_scale_crop(
    image: torch.Tensor, label: torch.Tensor, scale_range: tuple[float, float], crop: Size, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The official `RandomScale` then `RandomCrop(pad_if_needed=True)` (`FADA/core/datasets/transform.py`).

    The pair [3, H, W], [H, W] is scaled by s ~ U(scale_range) relative to its own size, to
    (int(W * s), int(H * s)), padded where it is smaller than the crop (see `pad_to_crop`), and
    cropped at a uniformly random place to (w, h) = `crop`. Returns image [3, h, w], label [h, w].
    """
    _check_pair(image, label)
    height, width = image.shape[-2:]
    scale = _uniform(*scale_range, rng)
    image, label = resize(image, label, (max(int(width * scale), 1), max(int(height * scale), 1)))
    image, label = pad_to_crop(image, label, crop)
    crop_width, crop_height = crop
    top = int(torch.randint(image.shape[-2] - crop_height + 1, (), generator=rng))
    left = int(torch.randint(image.shape[-1] - crop_width + 1, (), generator=rng))
    return (
        image[:, top : top + crop_height, left : left + crop_width],
        label[top : top + crop_height, left : left + crop_width],
    )


def pad_to_crop(image: torch.Tensor, label: torch.Tensor, crop: Size) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a pair narrower (shorter) than the crop (w, h) by the shortfall on BOTH sides, the image
    with 0 and the label with 255 (ignored): the official RandomCrop's pad_if_needed, which passes
    torchvision's pad a (left/right, top/bottom) pair."""
    crop_width, crop_height = crop
    pad_width, pad_height = max(crop_width - image.shape[-1], 0), max(crop_height - image.shape[-2], 0)
    if not (pad_width or pad_height):
        return image, label
    padding = (pad_width, pad_width, pad_height, pad_height)
    return F.pad(image, padding, value=0.0), F.pad(label, padding, value=IGNORE_LABEL)


def random_flip(
    image: torch.Tensor, label: torch.Tensor | None, rng: torch.Generator, probability: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Flip the image (and the label, when given) horizontally with `probability`."""
    _check_pair(image, label)
    if float(torch.rand((), generator=rng)) < probability:
        return image.flip(-1), None if label is None else label.flip(-1)
    return image, label


def check_jitter_strength(strength: Sequence[float]) -> None:
    """ValueError unless `strength` is (brightness, contrast, saturation, hue), each >= 0, hue <= 0.5."""
    if len(strength) != 4 or min(strength) < 0 or strength[3] > 0.5:
        raise ValueError(
            f"jitter strengths {tuple(strength)}; expected (brightness, contrast, saturation, hue), "
            "each at least 0 and hue at most 0.5"
        )


def colour_jitter(
    image: torch.Tensor, brightness: float, contrast: float, saturation: float, hue: float, rng: torch.Generator
) -> torch.Tensor:
    """Random brightness, contrast and saturation factors from U(max(0, 1 - s), 1 + s) and a hue
    shift from U(-hue, hue) (hue <= 0.5), applied in a random order to an image [3, H, W] in [0, 1]."""
    check_jitter_strength((brightness, contrast, saturation, hue))
    factors = [_uniform(max(0.0, 1 - s), 1 + s, rng) for s in (brightness, contrast, saturation)]
    shift = _uniform(-hue, hue, rng)
    operations = (
        lambda x: TF.adjust_brightness(x, factors[0]),
        lambda x: TF.adjust_contrast(x, factors[1]),
        lambda x: TF.adjust_saturation(x, factors[2]),
        lambda x: TF.adjust_hue(x, shift),
    )
    for index in torch.randperm(len(operations), generator=rng).tolist():
        image = operations[index](image)
    return image.clamp(0, 1)


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """An image (or batch) in [0, 1] -> ImageNet mean/std normalised."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype)[:, None, None]
    return (image - mean) / std


# ---------------------------------------------------------------------------------------------
# Evaluation and prediction datasets
# ---------------------------------------------------------------------------------------------


class EvaluationPairs(Dataset):
    """Item i: {"images": [3, h, w] resized to size (w, h), "labels": the full-resolution train ids
    int64 [H, W], "index": i}; images normalised when `normalize`, else in [0, 1]."""

    def __init__(self, pairs: list[tuple[Path, Path]], size: Size, normalize: bool) -> None:
        self.pairs, self.size, self.normalize = pairs, size, normalize

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        image, label = load_pair(*self.pairs[index])
        image = resize_image(image, self.size)
        return {"images": normalize_image(image) if self.normalize else image, "labels": label, "index": index}


class PredictImages(Dataset):
    """Item i: {"images": [3, h, w] resized to size (w, h), "sizes": the original (H, W) int64 [2],
    "names": names[i]}; images normalised when `normalize`, else in [0, 1]."""

    def __init__(self, files: list[Path], names: list[str], size: Size, normalize: bool) -> None:
        self.files, self.names, self.size, self.normalize = files, names, size, normalize

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        image = load_rgb(self.files[index])
        sizes = torch.tensor(image.shape[-2:], dtype=torch.long)
        image = resize_image(image, self.size)
        return {
            "images": normalize_image(image) if self.normalize else image,
            "sizes": sizes,
            "names": self.names[index],
        }


def collate_predictions(items: list[dict]) -> dict[str, torch.Tensor | list[str]]:
    """{"images": [B, 3, h, w], "sizes": [B, 2] (H, W), "names": list of B str}."""
    return {
        "images": torch.stack([item["images"] for item in items]),
        "sizes": torch.stack([item["sizes"] for item in items]),
        "names": [item["names"] for item in items],
    }


# ---------------------------------------------------------------------------------------------
# The DataModule
# ---------------------------------------------------------------------------------------------


class GTAVCityscapesDataModule(StreamedTrainingData):
    """GTAV (source, labelled) -> Cityscapes (target) semantic segmentation, for Permuted AdaIN.

    Training batches (`training_batch(rng)`: every random choice from `rng`, so batch k is a
    function of (sample_seed, k) and a resumed run sees the same batches), B = batch_size:
        stage "source":       {"images": [B, 3, sh, sw], "labels": int64 [B, sh, sw]}: GTAV pairs,
                              colour-jittered when enabled, resized to source_size = (sw, sh),
                              flipped when enabled.
        stage "adversarial":  {"images": [B/2, 3, sh, sw], "labels": [B/2, sh, sw]} as in "source",
                              plus "target_images": [B/2, 3, th, tw]: Cityscapes train images
                              resized to target_size = (tw, th), flipped when `flip` (no jitter,
                              no target labels).
        stage "self_distill": {"images": [B, 3, th, tw], "labels": [B, th, tw]}: Cityscapes train
                              images with their pseudo-labels, colour-jittered when enabled, scaled
                              by s ~ U(scale_range) relative to their own size (2048x1024),
                              randomly cropped to target_size (padding: image 0, label 255),
                              flipped when enabled.
    Labels are train ids (0..18, 255 ignored). Images are ImageNet mean/std normalised when
    `normalize`, else in [0, 1]. The order is the official transforms' (`build_transform` of
    `FADA/core/datasets/build.py`): jitter on the full [0, 1] image, resize or scale and crop,
    flip, normalise; every resize of an image is bicubic (PIL's), of a label nearest-neighbour.
    Each batch draws distinct images of each pool.

    Validation and test (the same loader): Cityscapes `eval_split`, the first `num_eval` pairs in
    (city, name) order, items {"images": [3, th, tw] resized to test_size, "labels": int64 [H, W]
    train ids at the label's FULL resolution (1024x2048 in Cityscapes), "index": i}, batched by the
    default collate (every Cityscapes image has the same size); the model upsamples its logits to
    the label's size.

    Predict: the images of `predict_dir` (sorted) or else of Cityscapes `eval_split`, items
    {"images": [B, 3, th, tw] resized to test_size, "sizes": int64 [B, 2] original (H, W),
    "names": list of B str}: the Cityscapes name (e.g. aachen_000000_000019) or the file stem.
    Predicting with eval_split="train" and writing <name>.png train ids gives the pseudo-labels
    that stage "self_distill" reads. num_eval does not apply to predict.

    Args:
        source_root: the GTAV folder (images/, labels/); needed by stages "source" and "adversarial".
        target_root: the Cityscapes folder (leftImg8bit/, gtFine/).
        stage: "source", "adversarial" or "self_distill" (see above).
        source_size: (width, height) of GTAV training images.
        target_size: (width, height) of Cityscapes training images (adversarial) and crops (self_distill).
        test_size: (width, height) of evaluation and predict images.
        batch_size: images per training step and process; in "adversarial" half are source and
            half target images (must be even).
        colour_jitter: random brightness, contrast, saturation and hue on training images.
        jitter_strength: (brightness, contrast, saturation, hue) strengths of colour_jitter.
        scale_range: (low, high) of the random scale of stage "self_distill".
        flip: flip training images (with their labels) horizontally with probability 1/2.
        pseudo_label_dir: <name>.png train-id labels of the Cityscapes train images (self_distill);
            a label of another size than its image is resized to it by nearest neighbour.
        num_workers: loader processes (the same batches in the same order for any number).
        sample_seed: seed of the training batches (rank r adds r).
        eval_batch_size: batch size of the validation, test and predict loaders.
        num_eval: evaluation pairs used (None: the whole split).
        eval_split: the Cityscapes split evaluated and, without predict_dir, predicted.
        predict_dir: a folder of images (any names and sizes) that predict segments.
        normalize: return ImageNet-normalised images (else in [0, 1]).

    Construction lists and pairs the files (reading only the headers of the evaluation pairs, to
    check their sizes) and raises a clear error naming the folder or files at fault.
    """

    setting_rules = {
        "stage": OneOf(STAGES), "source_size": Each(AT_LEAST_1, length=2), "target_size": Each(AT_LEAST_1, length=2),
        "test_size": Each(AT_LEAST_1, length=2), "batch_size": AT_LEAST_1,
        "jitter_strength": Each(NON_NEGATIVE, length=4), "scale_range": Each(POSITIVE, length=2),
        "num_workers": NON_NEGATIVE, "eval_batch_size": AT_LEAST_1, "num_eval": AT_LEAST_1,
    }  # fmt: skip

    def __init__(
        self,
        source_root: str | None,
        target_root: str,
        stage: str = "source",
        source_size: tuple[int, int] = (1280, 720),
        target_size: tuple[int, int] = (1024, 512),
        test_size: tuple[int, int] = (1024, 512),
        batch_size: int = 8,
        colour_jitter: bool = False,
        jitter_strength: tuple[float, float, float, float] = (0.5, 0.5, 0.5, 0.2),
        scale_range: tuple[float, float] = (0.5, 1.5),
        flip: bool = False,
        pseudo_label_dir: str | None = None,
        num_workers: int = 0,
        sample_seed: int = 0,
        eval_batch_size: int = 1,
        num_eval: int | None = None,
        eval_split: str = "val",
        predict_dir: str | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        self.source_size, self.target_size, self.test_size = (
            tuple(size) for size in (source_size, target_size, test_size)
        )
        check_jitter_strength(jitter_strength)
        if scale_range[0] > scale_range[1]:
            raise ValueError(f"scale_range={tuple(scale_range)}; expected (low, high) with low <= high")
        if stage == "adversarial" and batch_size % 2:
            raise ValueError(f"batch_size={batch_size}; expected an even number (half source, half target)")
        per_pool = batch_size // 2 if stage == "adversarial" else batch_size
        self.source_pairs: list[tuple[Path, Path]] = []
        self.target_images: list[Path] = []
        self.pseudo_labels: list[Path] = []
        if stage in ("source", "adversarial"):
            if source_root is None:
                raise ValueError(f"stage={stage!r} trains on GTAV: source_root must be the GTAV folder")
            self.source_pairs = self._enough(gtav_pairs(source_root), per_pool, f"GTAV {source_root}")
        if stage in ("adversarial", "self_distill"):
            where = f"Cityscapes {Path(target_root) / 'leftImg8bit' / 'train'}"
            self.target_images = self._enough(cityscapes_images(target_root, "train"), per_pool, where)
        if stage == "self_distill":
            if pseudo_label_dir is None:
                raise ValueError(
                    "stage='self_distill' trains on pseudo-labels: pseudo_label_dir must be a folder of "
                    "<name>.png train-id labels of the Cityscapes train images"
                )
            self.pseudo_labels = pseudo_label_files(self.target_images, pseudo_label_dir)
        pairs = cityscapes_pairs(target_root, eval_split, check_sizes=False)
        self.eval_pairs = pairs[:num_eval] if num_eval is not None else pairs
        check_pair_sizes(self.eval_pairs)
        if predict_dir is not None:
            if not Path(predict_dir).is_dir():
                raise FileNotFoundError(f"predict_dir {predict_dir} is not a folder; expected the images to segment")
            self.predict_files = list_images(Path(predict_dir))
            self.predict_names = [path.stem for path in self.predict_files]
        else:
            self.predict_files = [image for image, _ in pairs]
            self.predict_names = [cityscapes_name(path) for path in self.predict_files]

    def _enough(self, files: list, count: int, where: str) -> list:
        if len(files) < count:
            raise ValueError(
                f"{where} has {len(files)} images, fewer than the {count} of a training batch "
                f"(batch_size={self.hparams.batch_size}; a batch draws distinct images)"
            )
        return files

    # ---- training ----------------------------------------------------------------------------

    def _jitter(self, image: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """Colour jitter (when `colour_jitter`) of a full image, before any geometry, as the official
        transform lists put ColorJitter first."""
        hp = self.hparams
        return colour_jitter(image, *hp.jitter_strength, rng) if hp.colour_jitter else image

    def _finish(
        self, image: torch.Tensor, label: torch.Tensor | None, rng: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Flip (when `flip`), then normalise (when `normalize`): the end of every official transform list."""
        hp = self.hparams
        if hp.flip:
            image, label = random_flip(image, label, rng)
        return (normalize_image(image) if hp.normalize else image), label

    def _source_example(self, index: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = load_pair(*self.source_pairs[index], resize_label_to_image=True)
        image, label = resize(self._jitter(image, rng), label, self.source_size)
        return self._finish(image, label, rng)

    def _target_image(self, index: int, rng: torch.Generator) -> torch.Tensor:
        """A Cityscapes train image at target_size, without jitter (the official target transform has none)."""
        return self._finish(resize_image(load_rgb(self.target_images[index]), self.target_size), None, rng)[0]

    def _distill_example(self, index: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = load_pair(self.target_images[index], self.pseudo_labels[index], True, label_ids=False)
        image, label = random_scale_crop(
            self._jitter(image, rng), label, self.hparams.scale_range, self.target_size, rng
        )
        return self._finish(image, label, rng)

    def training_batch(self, rng: torch.Generator) -> dict[str, torch.Tensor]:
        """One training batch of the stage (see the class docstring); all randomness from `rng`."""
        stage, batch_size = self.hparams.stage, self.hparams.batch_size
        if stage == "self_distill":
            picks = torch.randperm(len(self.target_images), generator=rng)[:batch_size].tolist()
            images, labels = zip(*(self._distill_example(index, rng) for index in picks))
            return {"images": torch.stack(images), "labels": torch.stack(labels)}
        count = batch_size // 2 if stage == "adversarial" else batch_size
        picks = torch.randperm(len(self.source_pairs), generator=rng)[:count].tolist()
        images, labels = zip(*(self._source_example(index, rng) for index in picks))
        batch = {"images": torch.stack(images), "labels": torch.stack(labels)}
        if stage == "adversarial":
            picks = torch.randperm(len(self.target_images), generator=rng)[:count].tolist()
            batch["target_images"] = torch.stack([self._target_image(index, rng) for index in picks])
        return batch

    # ---- evaluation and prediction -----------------------------------------------------------

    def val_dataloader(self) -> DataLoader:
        hp = self.hparams
        dataset = EvaluationPairs(self.eval_pairs, self.test_size, hp.normalize)
        return evaluation_loader(dataset, hp.eval_batch_size, hp.num_workers)

    test_dataloader = val_dataloader

    def predict_dataloader(self) -> DataLoader:
        hp = self.hparams
        dataset = PredictImages(self.predict_files, self.predict_names, self.test_size, hp.normalize)
        return evaluation_loader(dataset, hp.eval_batch_size, hp.num_workers, collate_fn=collate_predictions)
