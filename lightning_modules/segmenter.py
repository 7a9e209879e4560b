"""Semantic segmentation with Permuted AdaIN, GTAV -> Cityscapes (Nuriel et al., CVPR 2021).

DeepLab-v2 (ResNet-101, output stride 8, ASPP-v2 head) with pAdaIN after every bottleneck
convolution of the backbone. Trained with pixel-wise cross-entropy (label 255 ignored) on
logits upsampled to the label size, SGD with a poly schedule and 10x the learning rate on the
head; evaluated by mIoU over the 19 Cityscapes classes with logits upsampled to the full label
size. The same module trains the three stages of the official code: source-only (GTAV, frozen
BatchNorm), adversarial (FADA: GTAV labels and unlabelled Cityscapes, a class-wise feature
discriminator, pAdaIN moving source statistics to target ones) and self-distillation
(Cityscapes with pseudo-labels, trained BatchNorm).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_warn
from torch.optim import SGD, Adam, Optimizer
from torch.optim.lr_scheduler import LambdaLR

from dfgen.checkpoint_files import load_network_weights
from dfgen.cityscapes import IGNORE_LABEL, NUM_CLASSES
from dfgen.contract import SegmentationOutputs, SegmentationPrediction
from dfgen.settings import (
    AT_LEAST_1,
    BETAS,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    OneOf,
    Range,
    check_settings,
    restore_renamed_settings,
)
from lightning_modules.networks.deeplab import BACKBONES, ClassDomainDiscriminator, DeepLabV2
from lightning_modules.networks.padain import MODES, padain_suspended
from lightning_modules.random_streams import PermutedAdaINCheckpointing

ADAPTATIONS = ("none", "fada")


INIT_CHECKPOINT = "the last.ckpt of an earlier SemanticSegmenter run"


class SemanticSegmenter(PermutedAdaINCheckpointing, LightningModule):
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
        padain_mode: "permute" (source-only and self-distillation stages), or "source_to_target"
            (the adversarial stage: source features take the statistics of the target images).
        padain_legacy_eps: None, or the statistics of the paper's experiments with this added to
            the content std (1e-4 in the official segmentation code; see PermutedAdaIN).
        adaptation: "none" trains on labelled batches; "fada" is the adversarial stage, on batches
            of source images with labels and unlabelled target images (see `training_step`).
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
        temperature: FADA divides the class scores by this before the softmax (1.8).
        soft_label_max: FADA's class soft labels are clipped to this (0.9).
        adversarial_weight: weight of the network's adversarial term (0.001).
        lr_discriminator: Adam learning rate of FADA's discriminator (1e-4), on the same poly schedule.
        betas_discriminator: its Adam betas ((0.9, 0.99)).

    With adaptation "fada" every iteration makes two optimizer steps (network, then
    discriminator), so `trainer.max_steps` is twice the iterations and `iteration` half the step.
    """

    setting_rules = {
        "num_classes": Range(2), "backbone": OneOf(tuple(BACKBONES)), "padain_p": PROBABILITY,
        "padain_legacy_eps": POSITIVE, "lr": POSITIVE,
        "head_lr_factor": POSITIVE, "momentum": Range(0, 1, open_high=True), "weight_decay": NON_NEGATIVE,
        "poly_iterations": AT_LEAST_1, "poly_power": POSITIVE, "padain_mode": OneOf(MODES),
        "adaptation": OneOf(ADAPTATIONS), "temperature": POSITIVE, "soft_label_max": Range(0, 1, open_low=True),
        "adversarial_weight": NON_NEGATIVE, "lr_discriminator": POSITIVE, "betas_discriminator": BETAS,
    }  # fmt: skip

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
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
        ignore_index: int = IGNORE_LABEL,
        padain_mode: str = "permute",
        padain_legacy_eps: float | None = None,
        adaptation: str = "none",
        temperature: float = 1.8,
        soft_label_max: float = 0.9,
        adversarial_weight: float = 0.001,
        lr_discriminator: float = 1e-4,
        betas_discriminator: tuple[float, float] = (0.9, 0.99),
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"SemanticSegmenter: ignore_index={ignore_index}; expected a label outside the class ids "
                             f"0..{num_classes - 1}")  # fmt: skip
        if padain_mode == "source_to_target" and adaptation != "fada":
            raise ValueError(
                "padain_mode='source_to_target' needs batches of [source; target] halves: set adaptation='fada'"
            )
        self.network = DeepLabV2(
            num_classes, backbone, backbone_weights, frozen_batch_norm, padain_p, padain_mode, padain_legacy_eps
        )
        self.discriminator = ClassDomainDiscriminator(2048, num_classes) if adaptation == "fada" else None
        self.automatic_optimization = self.discriminator is None
        if backbone_weights is None and init_checkpoint is None:
            rank_zero_warn(
                "SemanticSegmenter: no model.backbone_weights, so the backbone starts from random weights; the paper "
                "starts from ImageNet (a torchvision checkpoint such as resnet101-63fe2227.pth)"
            )

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.hparams.init_checkpoint:  # a resumed run then overwrites these weights
            load_network_weights(self.network, self.hparams.init_checkpoint, INIT_CHECKPOINT)

    @property
    def iteration(self) -> int:
        """Training iterations done: where the DataModule's batch stream continues after a resume."""
        return self.global_step // (1 if self.discriminator is None else 2)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)  # the pAdaIN streams
        restore_renamed_settings(self.hparams, checkpoint.get("hyper_parameters", {}))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores at the input's size [B, classes, H, W]."""
        return upsample(self.network(images), images.shape[-2:])

    def configure_optimizers(self) -> dict[str, Any] | list[dict[str, Any]]:
        hp = self.hparams
        groups = [
            {"params": [p for p in self.network.backbone.parameters() if p.requires_grad], "lr": hp.lr},
            {"params": self.network.classifier.parameters(), "lr": hp.lr * hp.head_lr_factor},
        ]
        network = self._with_poly(SGD(groups, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay))
        if self.discriminator is None:
            return network
        parameters = self.discriminator.parameters()
        return [network, self._with_poly(Adam(parameters, lr=hp.lr_discriminator, betas=hp.betas_discriminator))]

    def _with_poly(self, optimizer: Optimizer) -> dict[str, Any]:
        """The optimizer with the poly schedule lr * (1 - iteration / poly_iterations)^power."""
        hp = self.hparams
        poly = LambdaLR(optimizer, lambda step: max(0.0, 1 - step / hp.poly_iterations) ** hp.poly_power)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": poly, "interval": "step"}}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        """Cross-entropy of the scores upsampled to the labels' size [B, h, w]; the adversarial
        stage's iteration when adaptation is "fada"."""
        if self.discriminator is not None:
            return self._adversarial_step(batch)
        logits = upsample(self.network(batch["images"]), batch["labels"].shape[-2:])
        loss = F.cross_entropy(logits, batch["labels"], ignore_index=self.hparams.ignore_index)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        return loss

    def _adversarial_step(self, batch: dict[str, torch.Tensor]) -> None:
        """One iteration of `train_adv.py` (FADA with pAdaIN) on source images [B, 3, H, W] with
        labels [B, H, W] and target images [B, 3, h, w] at their own size.

        Two backbone passes. The first runs over [source; target resized to H x W] (nearest
        neighbour, F.interpolate's default there), so that pAdaIN's source_to_target mode gives
        source features the target's statistics, and keeps only its source half. The second runs
        over the target images at their own size, without pAdaIN (see `_target_features`); its
        features give the adversarial term, the target soft labels and the discriminator's target
        term. The network then steps on
            CE(source scores / T, labels) + w * softCE(D(target features), [target soft labels, 0]),
        which pulls target features towards "source pixel of class k"; the discriminator steps on
            0.5 * softCE(D(source), [source soft, 0]) + 0.5 * softCE(D(target), [0, target soft])
        on the detached features. Scores and discriminator outputs are upsampled to their images'
        sizes; soft labels are softmax(scores / T), detached, clipped.
        """
        hp = self.hparams
        network_optimizer, discriminator_optimizer = self.optimizers()
        images, targets = batch["images"], batch["target_images"]
        source_size, target_size = images.shape[-2:], targets.shape[-2:]
        joint = torch.cat([images, F.interpolate(targets, size=source_size, mode="nearest")])
        source_features = self.network.backbone(joint)[: len(images)]  # [B, 2048, H/8, W/8]
        source_scores = upsample(self.network.classifier(source_features), source_size) / hp.temperature
        target_features = self._target_features(targets)  # [B, 2048, h/8, w/8]
        target_scores = upsample(self.network.classifier(target_features), target_size) / hp.temperature
        source_soft = soft_labels(source_scores, hp.soft_label_max)  # [B, K, H, W]
        target_soft = soft_labels(target_scores, hp.soft_label_max)  # [B, K, h, w]

        segmentation = F.cross_entropy(source_scores, batch["labels"], ignore_index=hp.ignore_index)
        fool = soft_cross_entropy(
            self._discriminate(target_features, target_size), torch.cat([target_soft, torch.zeros_like(target_soft)], 1)
        )
        network_optimizer.zero_grad(set_to_none=True)
        self.manual_backward(segmentation + hp.adversarial_weight * fool)
        network_optimizer.step()

        source_term = soft_cross_entropy(
            self._discriminate(source_features.detach(), source_size),
            torch.cat([source_soft, torch.zeros_like(source_soft)], 1),
        )
        target_term = soft_cross_entropy(
            self._discriminate(target_features.detach(), target_size),
            torch.cat([torch.zeros_like(target_soft), target_soft], 1),
        )
        discriminator = 0.5 * source_term + 0.5 * target_term
        discriminator_optimizer.zero_grad(set_to_none=True)
        self.manual_backward(discriminator)
        discriminator_optimizer.step()
        self.log("train/loss", segmentation, prog_bar=True)
        self.log_dict({"train/adversarial": fool, "train/discriminator": discriminator})
        self.log("train/lr", network_optimizer.param_groups[0]["lr"])
        for scheduler in self.lr_schedulers():
            scheduler.step()

    def _target_features(self, targets: torch.Tensor) -> torch.Tensor:
        """Backbone features of the target images alone, with pAdaIN suspended: a target-only batch
        has no source half to restyle, and in the official recipe (one target image per GPU) the
        official layer returns a batch of one unchanged."""
        with padain_suspended(self.network.backbone):
            return self.network.backbone(targets)

    def _discriminate(self, features: torch.Tensor, size: torch.Size) -> torch.Tensor:
        """Discriminator scores [B, 2K, H, W] of features [B, 2048, h, w], upsampled to `size`."""
        return upsample(self.discriminator(features), size)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> SegmentationOutputs:
        """Predicted train ids at the full label size, for the mIoU callback."""
        labels = batch["labels"]
        logits = upsample(self.network(batch["images"]), labels.shape[-2:])
        self.log("val/loss", F.cross_entropy(logits, labels, ignore_index=self.hparams.ignore_index), sync_dist=True)
        return {"preds": logits.argmax(dim=1), "target": labels}

    test_step = validation_step

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> SegmentationPrediction:
        """Train ids [B, h, w] at each image's original size, with the images' names."""
        logits = self.network(batch["images"])
        train_ids = [upsample(score[None], tuple(size.tolist())).argmax(dim=1)[0] for score, size in
                     zip(logits, batch["sizes"])]  # fmt: skip
        return {"train_ids": train_ids, "names": batch["names"]}


def soft_labels(scores: torch.Tensor, maximum: float) -> torch.Tensor:
    """FADA's class soft labels: softmax over classes of scores [B, K, H, W], detached, clipped at `maximum`."""
    return F.softmax(scores.detach(), dim=1).clamp(max=maximum)


def soft_cross_entropy(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of scores [B, C, H, W] against soft targets [B, C, H, W]: the sum over channels
    of -target * log_softmax(scores), averaged over pixels."""
    return -(targets * F.log_softmax(scores, dim=1)).sum(dim=1).mean()


def upsample(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of class scores (align_corners, as the official code) to `size` (h, w)."""
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=True)
