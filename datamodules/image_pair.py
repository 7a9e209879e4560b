"""Two training images, one pyramid each, for structural analogy (`train.py` of rmokady/structural-analogy)."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from datamodules.single_image import RepeatedPyramid, SampleRequests, build_pyramid, pyramid_geometry
from dfgen.images import displayed_size, load_image
from dfgen.resize import resize
from dfgen.settings import AT_LEAST_1, SCALE_FACTOR, Each, Either, OneOf, check_settings

DOMAINS = ("a", "b")


class ImagePairDataModule(LightningDataModule):
    """Images A and B, each resized to `image_size` and turned into a pyramid of the same shapes.

    The official code resizes both images to a square (aspect ratio not kept) and builds
    the pyramid with SinGAN's formulas on that size; `min_size` sets the granularity of
    the analogy (a larger coarsest scale aligns the structure at a finer level). Each
    training batch is {"a": [1, 3, h_s, w_s] per scale, "b": the same for B}.

    Args:
        path_a: image A (PNG, JPEG, BMP or WebP).
        path_b: image B.
        image_size: side of the square both images are resized to, or (height, width).
        min_size: short side of the coarsest scale (official default 18).
        max_size: long side of the finest scale.
        scale_factor: nominal ratio between scales, used to count them.
        num_samples: how many samples per domain `predict` draws (each also translated).
        predict_seed: seed of the first predicted sample; sample i uses predict_seed + i.
        inject_path: an image (a paint, a sketch, a photo) that `predict` injects into the
            pyramid of `inject_domain` at `inject_scale` and then translates into the other
            domain; None draws random samples.
        inject_domain: "a" or "b", the domain whose generators continue from the injected image.
        inject_scale: the scale k (>= 1) at which the injected image, resized to that scale,
            enters the generator's convolutions in place of the coarser output (see
            `StructuralAnalogy.sample`).
        batch_size: predicted samples per forward pass.
        minmax_outputs: `predict` stretches each written image to the full range by its own
            minimum and maximum, as the official code saves its outputs (torchvision's
            `save_image(..., normalize=True)`); False clamps them to [-1, 1] and keeps the
            generators' absolute colours.
        composite_alpha: composite an image's alpha channel onto white; False (the official
            code, PIL's `convert("RGB")`) drops it and keeps the stored colours of
            transparent pixels.
    """

    setting_rules = {
        "image_size": Either(AT_LEAST_1, Each(AT_LEAST_1, length=2)), "min_size": AT_LEAST_1, "max_size": AT_LEAST_1,
        "scale_factor": SCALE_FACTOR, "num_samples": AT_LEAST_1, "inject_domain": OneOf(DOMAINS),
        "inject_scale": AT_LEAST_1, "batch_size": AT_LEAST_1,
    }  # fmt: skip

    def __init__(
        self,
        path_a: str,
        path_b: str,
        image_size: int | tuple[int, int] = 220,
        min_size: int = 18,
        max_size: int = 250,
        scale_factor: float = 0.75,
        num_samples: int = 8,
        predict_seed: int = 0,
        inject_path: str | None = None,
        inject_domain: str = "a",
        inject_scale: int = 1,
        batch_size: int = 4,
        minmax_outputs: bool = True,
        composite_alpha: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if min(height, width) <= min_size:
            raise ValueError(f"image_size={image_size} must exceed min_size={min_size} for a pyramid of several scales")
        self.images = {}
        background = (255, 255, 255) if composite_alpha else None
        for domain, path in zip(DOMAINS, (path_a, path_b)):
            file_width, file_height = displayed_size(path)
            if min(file_height, file_width) < min_size:
                raise ValueError(
                    f"{path}: image is {file_height}x{file_width}, too small for the pyramid: "
                    f"its short side must be at least min_size={min_size}"
                )
            image = load_image(path, background, at_least=(height, width))
            self.images[domain] = resize(image[None], (height, width)).clamp(-1, 1)[0]
        self.pyramid_shapes, self.pyramid_ratio = pyramid_geometry(height, width, min_size, max_size, scale_factor)
        if inject_path and not 0 < inject_scale < len(self.pyramid_shapes):
            raise ValueError(f"inject_scale={inject_scale} must be in [1, {len(self.pyramid_shapes) - 1}]")
        self.inject = load_image(inject_path, background, at_least=self.pyramid_shapes[-1]) if inject_path else None
        self.pyramids: dict[str, list[torch.Tensor]] = {}

    def setup(self, stage: str) -> None:
        if not self.pyramids:
            self.pyramids = {domain: build_pyramid(image, self.pyramid_shapes) for domain, image in self.images.items()}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(RepeatedPyramid(self.pyramids), batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return DataLoader([self.pyramids], batch_size=None)

    def predict_dataloader(self) -> DataLoader:
        hp = self.hparams
        request = {"inject_scale": hp.inject_scale if self.inject is not None else -1, "minmax": hp.minmax_outputs}
        if self.inject is not None:
            inject = resize(self.inject[None], self.pyramid_shapes[-1]).clamp(-1, 1)[0]
            request |= {"inject": inject, "inject_domain": DOMAINS.index(hp.inject_domain)}
        return DataLoader(SampleRequests(hp.num_samples, hp.predict_seed, request), batch_size=hp.batch_size)
