"""FID and KID between real and generated images, as a callback for any method.

The LightningModule provides `dfgen.contract.SetFidelity`,

    fidelity_images(batch, batch_idx) -> (real [B, 3, H, W], generated [B', 3, H, W]), in [-1, 1]

(random samples for an unconditional generator, translations for a domain-transfer
method); the callback knows nothing else about the method. Images are turned into uint8,
passed once through the feature extractor, and the features feed torchmetrics' FID and
KID. The extractor and the metric states live in the callback, never in a checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance
from torchmetrics.utilities.data import dim_zero_cat

from callbacks.contract import ChecksContract
from callbacks.inception import InceptionPool
from dfgen.contract import SetFidelity


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images -> uint8 [0, 255], the input of the FID Inception network."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class PrecomputedFeatures(nn.Module):
    """Lets torchmetrics' FID/KID take features instead of images (the extractor runs once)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


class CanonicalKID(KernelInceptionDistance):
    """KID whose random subsets do not depend on the order in which processes sent features.

    After the all-gather the features of a multi-process run arrive grouped by process;
    sorting them (by their first component) before sampling subsets makes the result equal
    to a single-process run on the same images, for the same seed.
    """

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        # runs on the synced states; torchmetrics restores the local ones afterwards
        for name in ("real_features", "fake_features"):
            features = dim_zero_cat(getattr(self, name))
            setattr(self, name, [features[torch.argsort(features[:, 0], stable=True)]])
        return super().compute()


class FIDKID(ChecksContract, Callback):
    """FID and KID (mean and std over subsets) at the end of validation and test.

    Args:
        feature_extractor: maps uint8 images [N, 3, H, W] to features [N, d]; None loads the
            standard 2048-d Inception pool features (see `weights_path`).
        weights_path: Inception weights file; None looks in the torch hub cache.
        max_samples: at most this many real and this many generated images per evaluation,
            over all processes (bounds time and KID's stored features).
        kid_subsets: number of KID subsets.
        kid_subset_size: images per KID subset; must not exceed the number of images.
        every_n_epochs: evaluate every n-th validation epoch during `fit` (always in
            `validate` and `test`).
        seed: seed of KID's subset sampling, so that results are reproducible and equal on
            every process.
    """

    module_needs = (SetFidelity,)

    def __init__(
        self,
        feature_extractor: nn.Module | None = None,
        weights_path: str | None = None,
        max_samples: int = 10000,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        every_n_epochs: int = 1,
        seed: int = 0,
    ) -> None:
        if kid_subset_size > max_samples:
            raise ValueError(f"kid_subset_size={kid_subset_size} is larger than max_samples={max_samples}")
        self.feature_extractor = feature_extractor
        self.weights_path = weights_path
        self.max_samples = max_samples
        self.kid_subsets = kid_subsets
        self.kid_subset_size = kid_subset_size
        self.every_n_epochs = every_n_epochs
        self.seed = seed
        self.real_ready = False  # real statistics are computed once per fit, then reused
        self._active = False
        self._seen = {"real": 0, "generated": 0}  # images added by this process

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self.feature_extractor is None:
            self.feature_extractor = InceptionPool(2048, self.weights_path)
        self.feature_extractor.eval().requires_grad_(False)
        dim = self._feature_dim()
        self.fid = FrechetInceptionDistance(PrecomputedFeatures(dim), reset_real_features=False)
        self.kid = CanonicalKID(
            PrecomputedFeatures(dim),
            subsets=self.kid_subsets,
            subset_size=self.kid_subset_size,
            reset_real_features=False,
            compute_on_cpu=True,  # KID keeps every feature: hold them in host memory
        )
        self.fid.set_dtype(torch.float64)
        self.real_ready = False
        self._seen = {"real": 0, "generated": 0}

    def _feature_dim(self) -> int:
        dim = getattr(self.feature_extractor, "num_features", None)
        if dim is None:
            probe = torch.zeros(1, 3, 299, 299, dtype=torch.uint8)
            dim = self.feature_extractor(probe).shape[-1]
        return int(dim)

    # ---------------------------------------------------------------- accumulation
    def _start(self, pl_module: LightningModule) -> None:
        self._active = True
        self._seen["generated"] = 0
        self.feature_extractor.to(pl_module.device)
        self.fid.to(pl_module.device)
        self.kid.to(pl_module.device)
        self.fid.reset()
        self.kid.reset()

    def _quota(self, trainer: Trainer, kind: str, batch: int) -> int:
        """How many of `batch` new images this process may still add (max_samples over all processes)."""
        per_process = -(-self.max_samples // trainer.world_size)
        return max(0, min(batch, per_process - self._seen[kind]))

    @torch.no_grad()
    def _update(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if not self._active:
            return
        real, generated = pl_module.fidelity_images(batch, batch_idx)
        for kind, images in (("real", real), ("generated", generated)):
            if kind == "real" and self.real_ready:
                continue
            count = self._quota(trainer, kind, len(images))
            if count == 0:
                continue
            features = self.feature_extractor(to_uint8(images[:count]).to(pl_module.device))
            self.fid.update(features, real=kind == "real")
            self.kid.update(features, real=kind == "real")
            self._seen[kind] += count

    def _finish(self, trainer: Trainer, pl_module: LightningModule, prefix: str) -> None:
        if not self._active:
            return
        self._active = False
        self.real_ready = True
        counts = torch.tensor([float(self._seen["real"]), float(self._seen["generated"])], device=pl_module.device)
        num_real, num_generated = (int(n) for n in trainer.strategy.reduce(counts, reduce_op="sum").tolist())
        smallest = min(num_real, num_generated)
        if self.kid_subset_size > smallest:
            raise ValueError(
                f"KID subset size {self.kid_subset_size} exceeds the {smallest} images available "
                f"({num_real} real, {num_generated} generated); lower FIDKID.kid_subset_size"
            )
        fid = self.fid.compute()  # collective: every process computes, Lightning logs from rank 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            kid_mean, kid_std = self.kid.compute()
        metrics = {f"{prefix}/fid": fid, f"{prefix}/kid_mean": kid_mean, f"{prefix}/kid_std": kid_std}
        for name, value in metrics.items():
            pl_module.log(name, value.float().to(pl_module.device), sync_dist=False)
        self.last = {name: float(value) for name, value in metrics.items()}

    # ---------------------------------------------------------------- hooks
    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        due = trainer.state.fn != "fit" or (trainer.current_epoch + 1) % self.every_n_epochs == 0
        if due and not trainer.sanity_checking:
            self._start(pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update(trainer, pl_module, batch, batch_idx)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._finish(trainer, pl_module, "val")

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update(trainer, pl_module, batch, batch_idx)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._finish(trainer, pl_module, "test")
