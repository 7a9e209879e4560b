"""IoU of learned masks against ground-truth masks, with the threshold searched over a grid.

The LightningModule's `validation_step` / `test_step` returns `dfgen.contract.MaskOutputs`,
{"masks": soft masks [B, 1, H, W] in [0, 1], "target_masks": binary masks [B, 1, H, W]},
when ground truth exists (mask-based content transfer: the mask of the added content as a
weakly supervised segmentation). For every threshold t the intersection and union of
[mask >= t] with the target are summed over the whole set (so the result is exact under DDP
with an unpadded evaluation sampler); the IoU at the best threshold, that threshold and the IoU at 0.5 are
logged as `<stage>/mask_iou`, `<stage>/mask_threshold` and `<stage>/mask_iou_at_0.5`.
"""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule, Trainer

from callbacks.evaluation import SetMetric
from dfgen.contract import MaskOutputs

DEFAULT_THRESHOLDS = [round(0.05 * k, 2) for k in range(1, 20)]


def mask_overlap_counts(masks: torch.Tensor, target: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Intersection and union pixel counts [T, 2] of [masks >= t] with the binary `target`, for every t."""
    masks, target = masks.flatten(1), target.flatten(1).bool()  # [B, HW]
    predicted = masks[None] >= thresholds.to(masks.device)[:, None, None]  # [T, B, HW]
    return torch.stack([(predicted & target).sum(dim=(1, 2)), (predicted | target).sum(dim=(1, 2))], dim=1)


class MaskIoU(SetMetric):
    """Args:
    thresholds: the grid searched (default 0.05, 0.10, ..., 0.95; 0.5 is always added).
    """

    reads = MaskOutputs

    def __init__(self, thresholds: list[float] | None = None) -> None:
        grid = thresholds if thresholds is not None else DEFAULT_THRESHOLDS
        self.thresholds = torch.tensor(sorted(set(grid) | {0.5}))
        self.counts: torch.Tensor | None = None  # [T, 2]: intersection and union per threshold
        self.last: dict[str, float] = {}

    def _start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.counts = torch.zeros(len(self.thresholds), 2, dtype=torch.float64, device=pl_module.device)

    @torch.no_grad()
    def _update(self, outputs: MaskOutputs) -> None:
        self.counts += mask_overlap_counts(outputs["masks"], outputs["target_masks"], self.thresholds).to(self.counts)

    def _finish(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        counts = trainer.strategy.reduce(self.counts, reduce_op="sum")  # every process joins, even without masks
        if counts[:, 1].sum() == 0:
            return
        iou = counts[:, 0] / counts[:, 1].clamp(min=1)
        best = int(iou.argmax())
        half = int((self.thresholds - 0.5).abs().argmin())
        self.last = {
            f"{stage}/mask_iou": iou[best].item(),
            f"{stage}/mask_threshold": self.thresholds[best].item(),
            f"{stage}/mask_iou_at_0.5": iou[half].item(),
        }
        for name, value in self.last.items():
            pl_module.log(name, torch.tensor(value, device=pl_module.device), sync_dist=False)
