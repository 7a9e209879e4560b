"""Semantic segmentation with Permuted AdaIN, GTAV -> Cityscapes (Nuriel et al., CVPR 2021; spec 4.3.5).

DeepLab-v2 (ResNet-101, output stride 8, ASPP-v2 head) with pAdaIN after every bottleneck
convolution of the backbone. Trained with pixel-wise cross-entropy (label 255 ignored) on
logits upsampled to the label size, SGD with a poly schedule and 10x the learning rate on the
head; evaluated by mIoU over the 19 Cityscapes classes with logits upsampled to the full label
size. The same module trains the source-only stage (GTAV, frozen BatchNorm) and the
self-distillation stage (Cityscapes with pseudo-labels, trained BatchNorm).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_warn
from torch.optim import SGD
from torch.optim.lr_scheduler import LambdaLR

from lightning_modules.networks.deeplab import DeepLabV2


class SemanticSegmenter(LightningModule):
    """DeepLab-v2 + pAdaIN for domain-generalising semantic segmentation.

    Args:
        num_classes: 19 Cityscapes classes.
        backbone: "resnet101" (the paper), "resnet50", or "resnet14_narrow" (CPU tests).
        backbone_weights: path of the torchvision ImageNet checkpoint of the backbone
            (e.g. resnet101-63fe2227.pth); None trains from scratch, which is not the paper's setting.
        frozen_batch_norm: keep the backbone's BatchNorm fixed (source-only and adversarial
            stages); False trains it (self-distillation; add `--trainer.sync_batchnorm=true`
            with several processes).
        padain_p: pAdaIN probability (0.01; 0 is the baseline).
        init_checkpoint: a SemanticSegmenter checkpoint of an earlier stage whose network weights
            `fit` starts from (self-distillation starts from the previous stage's model); unlike
            `--ckpt_path`, the steps, schedule and optimizer start afresh.
        lr: SGD learning rate of the backbone (source-only: 5e-4).
        head_lr_factor: the ASPP head's learning rate is this times `lr` (10).
        momentum: SGD momentum (0.9).
        weight_decay: SGD weight decay (5e-4).
        poly_iterations: the poly schedule lr * (1 - step / poly_iterations)^power reaches 0 here
            (source-only: 31,250; the run stops earlier, at `trainer.max_steps` = 20,000).
        poly_power: 0.9.
        ignore_index: the label of unlabelled pixels (255).
    """

    def __init__(
        self,
        num_classes: int = 19,
        backbone: str = "resnet101",
        backbone_weights: str | None = None,
        frozen_batch_norm: bool = True,
        padain_p: float = 0.01,
        init_checkpoint: str | None = None,
        lr: float = 5e-4,
        head_lr_factor: float = 10.0,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        poly_iterations: int = 31_250,
        poly_power: float = 0.9,
        ignore_index: int = 255,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.network = DeepLabV2(num_classes, backbone, backbone_weights, frozen_batch_norm, padain_p)
        if backbone_weights is None and init_checkpoint is None:
            rank_zero_warn(
                "SemanticSegmenter: no model.backbone_weights, so the backbone starts from random weights; the paper "
                "starts from ImageNet (a torchvision checkpoint such as resnet101-63fe2227.pth)"
            )

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.hparams.init_checkpoint:  # a resumed run then overwrites these weights
            load_network_weights(self.network, self.hparams.init_checkpoint)

    @property
    def iteration(self) -> int:
        """Training steps done: where the DataModule's batch stream continues after a resume."""
        return self.global_step

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores at the input's size [B, classes, H, W]."""
        return upsample(self.network(images), images.shape[-2:])

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        groups = [
            {"params": [p for p in self.network.backbone.parameters() if p.requires_grad], "lr": hp.lr},
            {"params": self.network.classifier.parameters(), "lr": hp.lr * hp.head_lr_factor},
        ]
        optimizer = SGD(groups, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        poly = LambdaLR(optimizer, lambda step: max(0.0, 1 - step / hp.poly_iterations) ** hp.poly_power)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": poly, "interval": "step"}}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Cross-entropy of the scores upsampled to the labels' size [B, h, w]."""
        logits = upsample(self.network(batch["images"]), batch["labels"].shape[-2:])
        loss = F.cross_entropy(logits, batch["labels"], ignore_index=self.hparams.ignore_index)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """Predicted train ids at the full label size, for the mIoU callback."""
        labels = batch["labels"]
        logits = upsample(self.network(batch["images"]), labels.shape[-2:])
        self.log("val/loss", F.cross_entropy(logits, labels, ignore_index=self.hparams.ignore_index), sync_dist=True)
        return {"preds": logits.argmax(dim=1), "target": labels}

    test_step = validation_step

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Train ids [B, h, w] at each image's original size, with the images' names."""
        logits = self.network(batch["images"])
        train_ids = [upsample(score[None], tuple(size.tolist())).argmax(dim=1)[0] for score, size in
                     zip(logits, batch["sizes"])]  # fmt: skip
        return {"train_ids": train_ids, "names": batch["names"]}


def load_network_weights(network: torch.nn.Module, path: str | Path) -> None:
    """The `network.` weights of a SemanticSegmenter checkpoint; BatchNorm's step counters may be
    absent, since an earlier stage may have frozen its BatchNorm."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no checkpoint there; expected the last.ckpt of an earlier SemanticSegmenter run"
        )
    state = torch.load(path, map_location="cpu", weights_only=False).get("state_dict", {})
    weights = {key.removeprefix("network."): value for key, value in state.items() if key.startswith("network.")}
    missing, unexpected = network.load_state_dict(weights, strict=False)
    missing = [key for key in missing if not key.endswith("num_batches_tracked")]
    if missing or unexpected or not weights:
        raise ValueError(
            f"{path}: not a checkpoint of this network (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


def upsample(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of class scores (align_corners, as the official code) to `size` (h, w)."""
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=True)
