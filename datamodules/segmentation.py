"""GTAV -> Cityscapes semantic segmentation data: 19 Cityscapes train classes, ignore label 255.

The file layouts are read by datamodules.segmentation_files and the pairs transformed by
datamodules.paired_transforms. The DataModule's batches are ImageNet mean/std normalised (what
torchvision-pretrained backbones expect) when normalize=True, else in [0, 1]; a label is int64
[H, W] of train ids.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.loaders import StreamedTrainingData, evaluation_loader
from datamodules.paired_transforms import (
    Size,
    check_jitter_strength,
    colour_jitter,
    normalize_image,
    random_flip,
    random_scale_crop,
    resize,
    resize_image,
)
from datamodules.segmentation_files import (
    check_pair_sizes,
    cityscapes_images,
    cityscapes_name,
    cityscapes_pairs,
    gtav_pairs,
    load_pair,
    load_rgb,
    pseudo_label_files,
)
from dfgen.images import list_images
from dfgen.settings import AT_LEAST_1, NON_NEGATIVE, POSITIVE, Each, OneOf, check_settings

STAGES = ("source", "adversarial", "self_distill")


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
    function of (batch_seed, k) and a resumed run sees the same batches), B = batch_size:
        stage "source":       {"images": [B, 3, sh, sw], "labels": int64 [B, sh, sw]}: GTAV pairs,
                              colour-jittered when enabled, resized to source_shape = (sh, sw),
                              flipped when enabled.
        stage "adversarial":  {"images": [B/2, 3, sh, sw], "labels": [B/2, sh, sw]} as in "source",
                              plus "target_images": [B/2, 3, th, tw]: Cityscapes train images
                              resized to target_shape = (th, tw), flipped when `flip` (no jitter,
                              no target labels).
        stage "self_distill": {"images": [B, 3, th, tw], "labels": [B, th, tw]}: Cityscapes train
                              images with their pseudo-labels, colour-jittered when enabled, scaled
                              by s ~ U(scale_range) relative to their own size (2048x1024),
                              randomly cropped to target_shape (padding: image 0, label 255),
                              flipped when enabled.
    Labels are train ids (0..18, 255 ignored). Images are ImageNet mean/std normalised when
    `normalize`, else in [0, 1]. The order is the official transforms' (`build_transform` of
    `FADA/core/datasets/build.py`): jitter on the full [0, 1] image, resize or scale and crop,
    flip, normalise; every resize of an image is bicubic (PIL's), of a label nearest-neighbour.
    Each batch draws distinct images of each pool.

    Validation and test (the same loader): Cityscapes `eval_split`, the first `num_eval` pairs in
    (city, name) order, items {"images": [3, th, tw] resized to test_shape, "labels": int64 [H, W]
    train ids at the label's FULL resolution (1024x2048 in Cityscapes), "index": i}, batched by the
    default collate (every Cityscapes image has the same size); the model upsamples its logits to
    the label's size.

    Predict: the images of `predict_dir` (sorted) or else of Cityscapes `eval_split`, items
    {"images": [B, 3, th, tw] resized to test_shape, "sizes": int64 [B, 2] original (H, W),
    "names": list of B str}: the Cityscapes name (e.g. aachen_000000_000019) or the file stem.
    Predicting with eval_split="train" and writing <name>.png train ids gives the pseudo-labels
    that stage "self_distill" reads. num_eval does not apply to predict.

    Args:
        source_root: the GTAV folder (images/, labels/); needed by stages "source" and "adversarial".
        target_root: the Cityscapes folder (leftImg8bit/, gtFine/).
        stage: "source", "adversarial" or "self_distill" (see above).
        source_shape: (height, width) of GTAV training images.
        target_shape: (height, width) of Cityscapes training images (adversarial) and crops (self_distill).
        test_shape: (height, width) of evaluation and predict images.
        batch_size: images per training step and process; in "adversarial" half are source and
            half target images (must be even).
        colour_jitter: random brightness, contrast, saturation and hue on training images.
        jitter_strength: (brightness, contrast, saturation, hue) strengths of colour_jitter.
        scale_range: (low, high) of the random scale of stage "self_distill".
        flip: flip training images (with their labels) horizontally with probability 1/2.
        pseudo_label_dir: <name>.png train-id labels of the Cityscapes train images (self_distill);
            a label of another size than its image is resized to it by nearest neighbour.
        num_workers: loader processes (the same batches in the same order for any number).
        batch_seed: seed of the training batches (rank r adds r).
        eval_batch_size: batch size of the validation, test and predict loaders.
        num_eval: evaluation pairs used (None: the whole split).
        eval_split: the Cityscapes split evaluated and, without predict_dir, predicted.
        predict_dir: a folder of images (any names and sizes) that predict segments.
        normalize: return ImageNet-normalised images (else in [0, 1]).

    Construction lists and pairs the files (reading only the headers of the evaluation pairs, to
    check their sizes) and raises a clear error naming the folder or files at fault.
    """

    setting_rules = {
        "stage": OneOf(STAGES), "source_shape": Each(AT_LEAST_1, length=2), "target_shape": Each(AT_LEAST_1, length=2),
        "test_shape": Each(AT_LEAST_1, length=2), "batch_size": AT_LEAST_1,
        "jitter_strength": Each(NON_NEGATIVE, length=4), "scale_range": Each(POSITIVE, length=2),
        "num_workers": NON_NEGATIVE, "eval_batch_size": AT_LEAST_1, "num_eval": AT_LEAST_1,
    }  # fmt: skip

    def __init__(
        self,
        source_root: str | None,
        target_root: str,
        stage: str = "source",
        source_shape: tuple[int, int] = (720, 1280),
        target_shape: tuple[int, int] = (512, 1024),
        test_shape: tuple[int, int] = (512, 1024),
        batch_size: int = 8,
        colour_jitter: bool = False,
        jitter_strength: tuple[float, float, float, float] = (0.5, 0.5, 0.5, 0.2),
        scale_range: tuple[float, float] = (0.5, 1.5),
        flip: bool = False,
        pseudo_label_dir: str | None = None,
        num_workers: int = 0,
        batch_seed: int = 0,
        eval_batch_size: int = 1,
        num_eval: int | None = None,
        eval_split: str = "val",
        predict_dir: str | None = None,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        # (width, height), as PIL and the paired transforms take sizes
        self.source_size, self.target_size, self.test_size = (
            (int(width), int(height)) for height, width in (source_shape, target_shape, test_shape)
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
        """A Cityscapes train image at target_shape, without jitter (the official target transform has none)."""
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
