"""Mean intersection-over-union over a whole validation or test set, exact under DDP.

The LightningModule's `validation_step` / `test_step` returns `dfgen.contract.SegmentationOutputs`,
{"preds": logits [B, C, H, W] or labels [B, H, W], "target": labels [B, H, W]}, for every
batch. One confusion matrix is accumulated over the whole set (a sum, so the all-reduce
across processes is exact); evaluation data loaders should use an unpadded distributed
sampler (`datamodules.evaluation_loader`) so that no image is counted twice.
"""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from torchmetrics.classification import MulticlassJaccardIndex

from callbacks.evaluation import SetMetric
from dfgen.cityscapes import CITYSCAPES_CLASSES, IGNORE_LABEL, NUM_CLASSES
from dfgen.contract import SegmentationOutputs


class MeanIoU(SetMetric):
    """Per-class IoU and their mean, logged as `<stage>/miou` and `<stage>/iou/<class>`.

    Classes absent from both predictions and targets over the whole set are left out of
    the mean (reported as NaN), the usual Cityscapes convention.

    Args:
        num_classes: number of classes (19 for Cityscapes).
        ignore_index: target label that is not evaluated (255 for Cityscapes).
        class_names: names for the per-class table; defaults to the Cityscapes classes when
            there are 19, else class indices.
    """

    reads = SegmentationOutputs
    reads_every_batch = True

    def __init__(
        self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_LABEL, class_names: list[str] | None = None
    ) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        default_names = CITYSCAPES_CLASSES if num_classes == NUM_CLASSES else [str(i) for i in range(num_classes)]
        self.class_names = list(class_names or default_names)
        if len(self.class_names) != num_classes:
            raise ValueError(f"{len(self.class_names)} class names given for {num_classes} classes")
        self.metric = MulticlassJaccardIndex(
            num_classes, average="none", ignore_index=ignore_index, validate_args=False, zero_division=float("nan")
        )
        self.last: dict[str, float] = {}

    def _start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.metric.to(pl_module.device)
        self.metric.reset()

    def _update(self, outputs: SegmentationOutputs) -> None:
        self.metric.update(outputs["preds"].detach(), outputs["target"])

    def _finish(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        per_class = self.metric.compute().float()  # all-reduces the confusion matrix on every process
        self.last = {f"{stage}/miou": torch.nanmean(per_class).item()}
        self.last |= {f"{stage}/iou/{name}": value for name, value in zip(self.class_names, per_class.tolist())}
        pl_module.log(f"{stage}/miou", torch.nanmean(per_class).to(pl_module.device), sync_dist=False)
        if trainer.is_global_zero:
            self._log_table(trainer, stage, per_class.tolist())

    def _log_table(self, trainer: Trainer, stage: str, per_class: list[float]) -> None:
        rows = [[name, value] for name, value in zip(self.class_names, per_class)]
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table(key=f"{stage}/iou_table", columns=["class", "iou"], data=rows)
            elif isinstance(logger, TensorBoardLogger):
                text = "| class | IoU |\n|---|---|\n" + "\n".join(f"| {n} | {v:.4f} |" for n, v in rows)
                logger.experiment.add_text(f"{stage}/iou_table", text, global_step=trainer.global_step)
            else:
                logger.log_metrics({k: v for k, v in self.last.items() if "/iou/" in k}, step=trainer.global_step)
