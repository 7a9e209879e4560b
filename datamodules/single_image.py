"""Training images (one, or a folder of them trained together), their multi-scale pyramid, and
sampling requests for `predict`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, IterableDataset

from dfgen.images import displayed_size, list_images, load_image
from dfgen.resize import Shape, resize
from dfgen.settings import AT_LEAST_1, NON_NEGATIVE, POSITIVE, SCALE_FACTOR, Each, check_settings


def pyramid_geometry(
    height: int, width: int, min_size: int = 25, max_size: int = 250, scale_factor: float = 0.75
) -> tuple[list[Shape], float]:
    """Image sizes from coarsest to finest and the ratio r between scales, exactly as SinGAN
    computes them (`adjust_scales2image` in `SinGAN/functions.py` of tamarott/SinGAN).

    The number of scales comes from the original size; scales above `max_size` are
    dropped, then the actual ratio r = (min_size / min(h, w)) ** (1 / S) is fitted to
    the working size h x w (long side <= max_size); scale s is ceil(h r^(S-s)) x ceil(w r^(S-s)).
    """
    shrink = min(max_size / max(height, width), 1.0)
    h, w = math.ceil(height * shrink), math.ceil(width * shrink)
    if min_size >= min(h, w):
        raise ValueError(
            f"min_size={min_size} must be below the short side of the working image, {h}x{w} ({height}x{width} "
            f"shrunk to max_size={max_size}); otherwise the coarsest scale is not smaller than the finest"
        )
    num_scales = math.ceil(math.log(min_size / min(height, width)) / math.log(scale_factor)) + 1
    long_side = max(height, width)
    scales_above_max = math.ceil(math.log(min(max_size, long_side) / long_side) / math.log(scale_factor))
    stop_scale = num_scales - scales_above_max
    if stop_scale < 1:
        raise ValueError(f"{height}x{width} gives a single scale with min_size={min_size}, max_size={max_size}")
    ratio = math.pow(min_size / min(h, w), 1 / stop_scale)
    shapes = [
        (math.ceil(h * math.pow(ratio, stop_scale - s)), math.ceil(w * math.pow(ratio, stop_scale - s)))
        for s in range(stop_scale + 1)
    ]
    return shapes, ratio


def pyramid_shapes(
    height: int, width: int, min_size: int = 25, max_size: int = 250, scale_factor: float = 0.75
) -> list[Shape]:
    """The image sizes of `pyramid_geometry`, coarsest to finest."""
    return pyramid_geometry(height, width, min_size, max_size, scale_factor)[0]


def build_pyramid(image: torch.Tensor, shapes: list[Shape]) -> list[torch.Tensor]:
    """Resize `image` [3, H, W] to every shape; returns [1, 3, h_s, w_s] tensors, coarse to fine."""
    batch = image.unsqueeze(0)
    return [resize(batch, shape).clamp(-1, 1) for shape in shapes]


def training_image_files(path: str | list[str]) -> list[Path]:
    """The training images `path` names: one file, a folder's images (sorted by name) or a list of files."""
    if isinstance(path, (list, tuple)):
        return [Path(file) for file in path]
    return list_images(path) if Path(path).is_dir() else [Path(path)]


def image_names(files: list[Path]) -> list[str]:
    """Each image's name, which names its folder of predictions: the file's name without its suffix,
    or, for a file listed several times (several seeds of one image), that name and "_<k>", the
    image's place in the list (its model's seed is seed + k)."""
    names = [file.stem if files.count(file) == 1 else f"{file.stem}_{k}" for k, file in enumerate(files)]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"data.path: the images' names must differ without their suffixes (each names its "
                         f"predictions' folder); {', '.join(repeated)} repeat")  # fmt: skip
    return names


class RepeatedPyramid(IterableDataset):
    """Yields the same pyramid (or dict of pyramids) forever; the LightningModule decides when training ends."""

    def __init__(self, pyramid: list[torch.Tensor] | dict[str, list[torch.Tensor]]) -> None:
        self.pyramid = pyramid

    def __iter__(self) -> Iterator[list[torch.Tensor] | dict[str, list[torch.Tensor]]]:
        while True:
            yield self.pyramid


class SampleRequests(Dataset):
    """`predict` items: sample `index` drawn with seed `seed + index`, plus the fields of `request`
    that every sample shares (sizes, start scale, an injected image...)."""

    def __init__(self, num_samples: int, seed: int, request: dict) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.request = request

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict:
        return {"index": index, "seed": self.seed + index, **self.request}


def feather_mask(mask: torch.Tensor, dilation: int, sigma: float = 5.0) -> torch.Tensor:
    """A compositing mask as the official `dilate_mask` (`SinGAN/functions.py` of tamarott/SinGAN) makes it.

    mask [1, 1, H, W] in [0, 1] -> [1, 1, H, W] in [0, 1]: every pixel that is not black is
    foreground; it is dilated by a disk of radius `dilation` px, blurred by a Gaussian of std
    `sigma` px (edges repeated, cut at 4 sigma) and stretched to span [0, 1].
    """
    offsets = torch.arange(-dilation, dilation + 1, dtype=torch.float32)
    disk = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= dilation**2).float()[None, None]
    dilated = (F.conv2d((mask > 0.5 / 255).float(), disk, padding=dilation) > 0).float()
    radius = int(4 * sigma + 0.5)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    blurred = F.conv2d(F.pad(dilated, [radius] * 4, mode="replicate"), kernel.view(1, 1, 1, -1))
    blurred = F.conv2d(blurred, kernel.view(1, 1, -1, 1))
    span = blurred.max() - blurred.min()
    return (blurred - blurred.min()) / span if span > 0 else blurred


class SingleImageDataModule(LightningDataModule):
    """A training image as a multi-scale pyramid (SinGAN; `adjust_scales2image` and
    `creat_reals_pyramid` in `SinGAN/functions.py` of tamarott/SinGAN), or K images that train
    K models in one run, sharing one pyramid; every scale's batch is then [1, K*3, h_s, w_s],
    image k in channels 3k..3k+2.

    Args:
        path: the training image (PNG, JPEG, BMP or WebP), a folder of them (sorted by name) or a
            list of files, where a file listed n times trains n seeds of it. Every image is read
            before anything else happens, so a bad one fails the run at once, named.
        image_shape: (height, width) every image is resized to before its pyramid is built; None
            keeps each image's size, and several images must then give the same pyramid.
        max_size: long side of the finest scale; larger images are shrunk to it.
        min_size: short side of the coarsest scale.
        scale_factor: nominal ratio between scales, used to count them (0.75 in the paper).
        num_samples: how many images `predict` writes.
        predict_seed: seed of the first predicted sample; sample i uses predict_seed + i.
        sample_scale: (height, width) factors of the predicted images relative to the
            training image; the noise maps of every scale are scaled by them.
        gen_start_scale: predicted samples use the reconstruction noise below this scale
            (0 = fully random samples; higher keeps more of the training layout).
        inject_path: an image to inject at `inject_scale` instead of generating the coarser
            scales (paint-to-image, editing, harmonization), resized to the training image's
            size. None for random samples.
        inject_scale: the scale n at which generation starts from the injected image (shrunk
            to scale n - 1 and upsampled back, as the official scripts do).
        inject_mask_path: optional mask (not black = regenerate), resized to the training
            image's size; it is dilated and feathered (`feather_mask`) and the output is the
            generated image inside it and the training image outside it, which is how the
            official harmonization and editing composite. None: the generated image as is
            (paint-to-image).
        batch_size: predicted samples per forward pass.
        inject_mask_dilation: radius in pixels of the disk the mask is dilated by (official:
            7 for harmonization, 20 for editing); the Gaussian feather has std 5 px in both.
        composite_alpha: composite an image's alpha channel onto white; False (the official
            code) drops the alpha channel and keeps the stored colours of transparent pixels.

    An image of more than 4 megapixels is decoded at a reduced size that keeps four times the
    finest scale (see dfgen.images.load_image), so memory follows `max_size` rather than the file.
    """

    setting_rules = {
        "max_size": AT_LEAST_1, "min_size": AT_LEAST_1, "scale_factor": SCALE_FACTOR, "num_samples": AT_LEAST_1,
        "sample_scale": Each(POSITIVE, length=2), "gen_start_scale": NON_NEGATIVE, "inject_scale": AT_LEAST_1,
        "batch_size": AT_LEAST_1, "inject_mask_dilation": NON_NEGATIVE, "image_shape": Each(AT_LEAST_1, length=2),
    }  # fmt: skip

    def __init__(
        self,
        path: str | list[str],
        image_shape: tuple[int, int] | None = None,
        max_size: int = 250,
        min_size: int = 25,
        scale_factor: float = 0.75,
        num_samples: int = 16,
        predict_seed: int = 0,
        sample_scale: tuple[float, float] = (1.0, 1.0),
        gen_start_scale: int = 0,
        inject_path: str | None = None,
        inject_scale: int = 1,
        inject_mask_path: str | None = None,
        batch_size: int = 4,
        inject_mask_dilation: int = 7,
        composite_alpha: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        background = (255, 255, 255) if composite_alpha else None
        files = training_image_files(path)
        if inject_path and len(files) > 1:
            raise ValueError(f"data.inject_path: injection edits one training image's model; data.path={path} "
                             f"holds {len(files)} images")  # fmt: skip
        self.image_names = image_names(files)
        geometries = [self._geometry(file) for file in files]
        self.pyramid_shapes, self.pyramid_ratio = geometries[0]
        for file, geometry in zip(files[1:], geometries[1:]):
            if geometry != geometries[0]:
                raise ValueError(
                    f"{file}: its pyramid {geometry[0]} differs from {files[0]}'s {self.pyramid_shapes}; the images "
                    "of one run share one pyramid: give data.image_shape=[height, width] to resize them all to it"
                )
        self.images = [load_image(file, background, at_least=self.pyramid_shapes[-1]) for file in files]
        finest_sample = self.sample_shapes()[-1]
        self.inject = load_image(inject_path, background, at_least=finest_sample) if inject_path else None
        self.inject_mask = (
            load_image(inject_mask_path, background, at_least=finest_sample)[:1] * 0.5 + 0.5
            if inject_mask_path
            else None
        )
        if inject_path and not 0 < inject_scale < len(self.pyramid_shapes):
            raise ValueError(f"inject_scale={inject_scale} must be in [1, {len(self.pyramid_shapes) - 1}]")
        if not 0 <= gen_start_scale < len(self.pyramid_shapes):
            raise ValueError(f"gen_start_scale={gen_start_scale} must be in [0, {len(self.pyramid_shapes) - 1}]")
        self.pyramid: list[torch.Tensor] = []

    def _geometry(self, file: Path) -> tuple[list[Shape], float]:
        """The pyramid of one image: its shapes and ratio (`pyramid_geometry`)."""
        hp = self.hparams
        if hp.image_shape is None:
            width, height = displayed_size(file)
            if min(height, width) < hp.min_size:
                raise ValueError(f"{file}: image is {height}x{width}, smaller than min_size={hp.min_size} on its "
                                 "short side")  # fmt: skip
        else:
            height, width = hp.image_shape
            displayed_size(file)  # a file that is not an image fails here, named
        return pyramid_geometry(height, width, hp.min_size, hp.max_size, hp.scale_factor)

    def setup(self, stage: str) -> None:
        if not self.pyramid:
            pyramids = [build_pyramid(image, self.pyramid_shapes) for image in self.images]
            self.pyramid = [torch.cat(scale, dim=1) for scale in zip(*pyramids)]  # [1, K*3, h_s, w_s] each

    def sample_shapes(self) -> list[Shape]:
        """Pyramid shapes of the predicted images (the training shapes times `sample_scale`)."""
        fh, fw = self.hparams.sample_scale
        return [(max(round(h * fh), 1), max(round(w * fw), 1)) for h, w in self.pyramid_shapes]

    def train_dataloader(self) -> DataLoader:
        # batch_size=None: each item is already the whole batch (one image per scale)
        return DataLoader(RepeatedPyramid(self.pyramid), batch_size=None)

    def test_dataloader(self) -> DataLoader:
        # one batch: the real pyramid, against which `test` evaluates reconstruction and SIFID
        return DataLoader([self.pyramid], batch_size=None)

    def predict_dataloader(self) -> DataLoader:
        hp = self.hparams
        request = {"shapes": torch.tensor(self.sample_shapes()), "gen_start_scale": hp.gen_start_scale}
        request["inject_scale"] = hp.inject_scale if self.inject is not None else -1
        if self.inject is not None:
            request |= self.injection()
        return DataLoader(SampleRequests(hp.num_samples, hp.predict_seed, request), batch_size=hp.batch_size)

    def injection(self) -> dict[str, torch.Tensor]:
        """What the official injection scripts prepare: the injected image [3, H, W] at the training
        size and, with a mask, the feathered mask [1, H, W] and the training image [3, H, W] that
        is kept outside it."""
        if tuple(self.hparams.sample_scale) != (1.0, 1.0):
            raise ValueError(f"inject_path={self.hparams.inject_path} generates at the training size: "
                             f"sample_scale must be [1.0, 1.0], not {list(self.hparams.sample_scale)}")  # fmt: skip
        shape = self.pyramid_shapes[-1]
        request = {"inject": resize(self.inject[None], shape).clamp(-1, 1)[0]}
        if self.inject_mask is not None:
            mask = resize(self.inject_mask[None], shape)
            request["inject_mask"] = feather_mask(mask, self.hparams.inject_mask_dilation)[0]
            request["inject_background"] = build_pyramid(self.images[0], self.pyramid_shapes[-1:])[0][0]
        return request
