"""How well translations keep their content, measured by a classifier of the target domain.

The LightningModule's `validation_step` / `test_step` returns `dfgen.contract.TranslationOutputs`,
{"translations": images of the target domain [B, C, H, W], "labels": the labels they should
get [B]} (or neither key while it has no translation to evaluate). A classifier trained on
the target domain labels the translations; the accuracy (one-shot translation's "translation
accuracy") is a sum over the whole set, so it is exact under DDP with an unpadded evaluation
sampler.

Two extensions: translations [B, K, C, H, W] are K translations of each source (with
different guides), whose class probabilities are averaged before the decision
(marginalised); and dicts {name: images} / {name: labels} are several translation sets,
each logged as `<stage>/<name>_accuracy` (for example both directions of a domain pair).
"""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule, Trainer
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from callbacks.evaluation import SetMetric
from dfgen.checkpoint_files import load_network_weights
from dfgen.contract import TranslationOutputs

CLASSIFIER_CHECKPOINT = "a checkpoint of lightning_modules.ImageClassifier"


class TranslationAccuracy(SetMetric):
    """Accuracy of the target-domain classifier on translations, logged as `<stage>/translation_accuracy`.

    Args:
        classifier: the classifier network (in a config: `class_path` and `init_args`, as it
            was given to `ImageClassifier`), mapping target-domain images to logits.
        checkpoint: the `ImageClassifier` checkpoint trained on the target domain whose
            weights it loads; None uses `classifier` as given.
        num_classes: number of classes (10 digits).
    """

    reads = TranslationOutputs

    def __init__(self, classifier: nn.Module, checkpoint: str | None = None, num_classes: int = 10) -> None:
        self.classifier = classifier
        self.checkpoint = checkpoint
        self.num_classes = num_classes
        self.metrics: dict[str, MulticlassAccuracy] = {}
        self.last: dict[str, float] = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self.checkpoint:  # loaded here, so that a config parses before the classifier is trained
            load_network_weights(self.classifier, self.checkpoint, CLASSIFIER_CHECKPOINT)
            self.checkpoint = None
        self.classifier.eval().requires_grad_(False)

    def _start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.classifier.to(pl_module.device)
        self.device = pl_module.device
        self.metrics = {}

    @torch.no_grad()
    def _update(self, outputs: TranslationOutputs) -> None:
        translations, labels = outputs["translations"], outputs["labels"]
        if not isinstance(translations, dict):
            translations, labels = {"translation": translations}, {"translation": labels}
        for name, images in translations.items():
            if name not in self.metrics:
                self.metrics[name] = MulticlassAccuracy(self.num_classes, average="micro").to(self.device)
            self.metrics[name].update(self._probabilities(images), labels[name])

    def _probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities [B, classes], averaged over the K translations of a [B, K, C, H, W] batch."""
        if images.dim() == 4:
            return self.classifier(images).softmax(dim=1)
        return self.classifier(images.flatten(0, 1)).softmax(dim=1).unflatten(0, images.shape[:2]).mean(dim=1)

    def _finish(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.last = {}
        for name, metric in sorted(self.metrics.items()):  # the same order on every process
            key = f"{stage}/{name}_accuracy"
            accuracy = metric.compute()  # all-reduces the counts on every process
            self.last[key] = accuracy.item()
            pl_module.log(key, accuracy.to(pl_module.device), sync_dist=False)
