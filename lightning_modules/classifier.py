"""Image classification with Permuted AdaIN (Nuriel, Benaim and Wolf, CVPR 2021).

pAdaIN layers sit after every main-path convolution and act only in training; with
`padain_p = 0` the same module is the baseline. `test` reports clean top-1/top-5 and,
when the DataModule provides corrupted test sets (CIFAR-C, ImageNet-C), the error of
every corruption and severity, the mean corruption error and, for ImageNet-C, the mCE.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn
from torch.optim import SGD
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from dfgen.contract import ClassPrediction
from dfgen.settings import NON_NEGATIVE, POSITIVE, PROBABILITY, Each, OneOf, Range, check_settings
from lightning_modules.networks.classifiers import RESNETS, build_classifier
from lightning_modules.networks.losses import jensen_shannon_consistency
from lightning_modules.networks.padain import insert_permuted_adain
from lightning_modules.random_streams import PermutedAdaINCheckpointing

ARCHITECTURES = (*RESNETS, "resnext29", "densenet40")


class ImageClassifier(PermutedAdaINCheckpointing, LightningModule):
    """A ResNet classifier trained with cross-entropy, optionally with pAdaIN.

    Args:
        arch: "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", the CIFAR-100-C
            backbones "resnext29" and "densenet40", or "resnet20" (He et al.'s CIFAR ResNet-20, a
            small network for CPU experiments; not the paper's).
        num_classes: number of classes (10 or 100 for CIFAR).
        cifar_stem: 3x3 stride-1 stem without max-pool, for 32x32 images.
        padain_p: probability that each pAdaIN layer fires per forward (paper: 0.01; 0 = baseline).
        padain_eps: epsilon of the pAdaIN statistics.
        padain_legacy_eps: None for the released layer's statistics; a number for those of the
            paper's experiments, with this added to the content std (1e-5 in the official
            classification code, 1e-4 in its CIFAR-100-C code; see PermutedAdaIN).
        lr: SGD learning rate (after warm-up).
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        weight_decay: L2 weight decay.
        warmup_epochs: linear warm-up of the LR over this many epochs, per step (CIFAR recipe: 1).
        milestones: the LR is multiplied by `gamma` once this many epochs are done (the ImageNet
            recipe's 30, 60; the official CIFAR-100 loop decays at the start of its epochs 60, 120
            and 160, counted from 1, that is after 59, 119 and 159 epochs).
        gamma: LR decay factor at each milestone (CIFAR-100 recipe: 0.2).
        schedule: "step" (warm-up, then the milestones) or "cosine" (warm-up, then cosine
            annealing per step down to `min_lr`, the AugMix recipe).
        min_lr: final learning rate of the cosine schedule.
        jsd_weight: weight of AugMix's Jensen-Shannon consistency term, used when the data
            yields (clean, augmix_1, augmix_2) views (AugMix recipe: 12).
        network: any classifier nn.Module (in a config: `class_path` and `init_args`) to use
            instead of `arch`; pAdaIN is inserted after its main-path convolutions the same way.
    """

    setting_rules = {
        "arch": OneOf(ARCHITECTURES), "num_classes": Range(2), "padain_p": PROBABILITY, "padain_eps": POSITIVE,
        "padain_legacy_eps": POSITIVE,
        "lr": POSITIVE, "momentum": Range(0, 1, open_high=True), "weight_decay": NON_NEGATIVE,
        "warmup_epochs": NON_NEGATIVE, "milestones": Each(NON_NEGATIVE), "gamma": POSITIVE,
        "schedule": OneOf(("step", "cosine")), "min_lr": NON_NEGATIVE, "jsd_weight": NON_NEGATIVE,
    }  # fmt: skip

    def __init__(
        self,
        arch: str = "resnet18",
        num_classes: int = 100,
        cifar_stem: bool = True,
        padain_p: float = 0.01,
        padain_eps: float = 1e-5,
        padain_legacy_eps: float | None = None,
        lr: float = 0.1,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 5e-4,
        warmup_epochs: float = 1.0,
        milestones: list[int] = (59, 119, 159),
        gamma: float = 0.2,
        schedule: str = "step",
        min_lr: float = 1e-6,
        jsd_weight: float = 12.0,
        network: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["network"])  # a given network is rebuilt from its config
        check_settings(self)
        if network is None:
            network = build_classifier(arch, num_classes, cifar_stem, padain_p, padain_eps, padain_legacy_eps)
        elif padain_p > 0:
            insert_permuted_adain(network, padain_p, padain_eps, padain_legacy_eps)
        self.network = network
        self.val_accuracy = self._accuracy()
        self.test_accuracy = torch.nn.ModuleList()

    def _accuracy(self) -> MetricCollection:
        num_classes = self.hparams.num_classes
        return MetricCollection({
            "top1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
            "top5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
        })  # fmt: skip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        if isinstance(images, (list, tuple)):  # AugMix views in one forward, so pAdaIN permutes across them
            logits = self(torch.cat(images)).chunk(len(images))
            consistency = jensen_shannon_consistency(logits)
            loss = F.cross_entropy(logits[0], labels) + self.hparams.jsd_weight * consistency
            self.log("train/jsd", consistency)
        else:
            loss = F.cross_entropy(self(images), labels)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        self.log("val/loss", F.cross_entropy(logits, labels), sync_dist=True)
        self.val_accuracy.update(logits, labels)

    def on_validation_epoch_end(self) -> None:
        scores = self.val_accuracy.compute()
        self.log_dict({f"val/{name}": value for name, value in scores.items()}, prog_bar=True)
        self.val_accuracy.reset()

    def predict_step(self, batch: tuple[torch.Tensor, list[str]], batch_idx: int) -> ClassPrediction:
        """Class probabilities [B, num_classes] of a batch of images, with their file names."""
        images, names = batch
        return {"names": list(names), "probabilities": self(images).softmax(dim=1)}

    # ------------------------------------------------------------------ test (clean and corrupted)
    def on_test_epoch_start(self) -> None:
        self.test_names = getattr(self.trainer.datamodule, "test_names", ["clean"])
        self.test_accuracy = torch.nn.ModuleList(self._accuracy() for _ in self.test_names).to(self.device)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        images, labels = batch
        self.test_accuracy[dataloader_idx].update(self(images), labels)

    def on_test_epoch_end(self) -> None:
        errors = {}
        for name, metric in zip(self.test_names, self.test_accuracy):
            scores = metric.compute()  # synced across processes
            errors[name] = 100 * (1 - scores["top1"].item())
            if name == "clean":
                self.log_dict({"test/top1": scores["top1"], "test/top5": scores["top5"]}, add_dataloader_idx=False)
        self.log_dict({f"test/error/{name}": error for name, error in errors.items()}, add_dataloader_idx=False)
        summary = corruption_summary(errors, getattr(self.trainer.datamodule, "normalize_corruption_errors", False))
        self.log_dict(summary, add_dataloader_idx=False)
        if self.trainer.is_global_zero and len(errors) > 1:
            self._write_table(errors, summary)

    def _write_table(self, errors: dict[str, float], summary: dict[str, float]) -> None:
        directory = Path(self.trainer.log_dir or self.trainer.default_root_dir)
        directory.mkdir(parents=True, exist_ok=True)
        rows = list(errors.items()) + [(name.removeprefix("test/"), value) for name, value in summary.items()]
        lines = ["| test set | error (%) |", "|---|---|"] + [f"| {name} | {value:.2f} |" for name, value in rows]
        (directory / "corruption_errors.md").write_text("\n".join(lines) + "\n")

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> dict:
        hp = self.hparams
        optimizer = SGD(self.parameters(), lr=hp.lr, momentum=hp.momentum, nesterov=hp.nesterov,
                        weight_decay=hp.weight_decay)  # fmt: skip
        steps_per_epoch = self._steps_per_epoch()
        warmup_steps = hp.warmup_epochs * steps_per_epoch
        epochs = self.trainer.max_epochs
        total_steps = max(1, steps_per_epoch * epochs if epochs and epochs > 0 else self.trainer.max_steps)

        def factor(step: int) -> float:
            warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
            if hp.schedule == "cosine":
                floor = hp.min_lr / hp.lr
                return warmup * (
                    floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
                )
            epoch = step // steps_per_epoch
            return warmup * hp.gamma ** sum(epoch >= milestone for milestone in hp.milestones)

        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": LambdaLR(optimizer, factor), "interval": "step"}}

    def _steps_per_epoch(self) -> int:
        """Optimizer steps per epoch, from the training loader's length: the schedule follows the epochs, and
        `trainer.max_steps` only stops a run. (Not `trainer.estimated_stepping_batches`, which also builds the
        Trainer's data iterator before a checkpoint's progress is restored, so a resumed epoch would restart.)"""
        datamodule = self.trainer.datamodule
        if datamodule is None:
            return max(1, math.ceil(self.trainer.estimated_stepping_batches / max(1, self.trainer.max_epochs)))
        return max(1, math.ceil(len(datamodule.train_dataloader()) / self.trainer.accumulate_grad_batches))


# AlexNet's ImageNet-C top-1 error per corruption (averaged over severities), the mCE reference
ALEXNET_ERRORS = {
    "gaussian_noise": 0.886428, "shot_noise": 0.894468, "impulse_noise": 0.922640, "defocus_blur": 0.819880,
    "glass_blur": 0.826268, "motion_blur": 0.785948, "zoom_blur": 0.798360, "snow": 0.866816, "frost": 0.826572,
    "fog": 0.819324, "brightness": 0.564592, "contrast": 0.853204, "elastic_transform": 0.646056,
    "pixelate": 0.717840, "jpeg_compression": 0.606500,
}  # fmt: skip


def corruption_summary(errors: dict[str, float], normalize: bool = False) -> dict[str, float]:
    """Per-corruption mean error (%) over severities and their mean.

    Unnormalised, the mean is CIFAR-C's mean corruption error; with `normalize` each
    corruption's error is also divided by AlexNet's, and their mean x 100 is ImageNet-C's mCE.
    """
    per_corruption: dict[str, list[float]] = {}
    for name, error in errors.items():
        if "/" in name:
            per_corruption.setdefault(name.split("/")[0], []).append(error)
    if not per_corruption:
        return {}
    means = {name: sum(values) / len(values) for name, values in per_corruption.items()}
    summary = {f"test/corruption_error/{name}": error for name, error in means.items()}
    summary["test/mean_corruption_error"] = sum(means.values()) / len(means)
    if normalize:
        ratios = [error / (100 * ALEXNET_ERRORS[name]) for name, error in means.items()]
        summary["test/mCE"] = 100 * sum(ratios) / len(ratios)
    return summary
