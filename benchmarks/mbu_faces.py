"""Mask-based content transfer on drawn faces whose factors and object pixels are known (the
README's CPU experiment; numbers.md's removal table in small form).

    python -m benchmarks.mbu_faces [--count 3000] [--iterations 2000]

Writes the faces with their object masks in the CelebA layout to data/synthetic_faces (when
missing), trains configs/content_transfer/synthetic_faces.yaml (eyewear) through the CLI and
scores the 64 test pairs with the pixel oracle of the planted factors: transfer membership
(b's glasses added to a), removal success (b's glasses gone), agreement of the other factors
(smile, hair colour, background, pose) with the input, the mean change outside the glasses
for removals, and the IoU of the learned mask with the drawn glasses.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from benchmarks.did_faces import evaluation_batch
from callbacks.mask_iou import DEFAULT_THRESHOLDS, mask_overlap_counts
from datamodules.synthetic import read_face_factors, write_synthetic_celeba
from lightning_modules.cli import build_cli
from lightning_modules.content_transfer import MaskContentTransfer

CONFIG = "configs/content_transfer/synthetic_faces.yaml"
KEPT_FACTORS = ("smiling", "hair", "background", "pose")


def _agreement(outputs: torch.Tensor, inputs: torch.Tensor) -> dict[str, float]:
    read, source = read_face_factors(outputs.clamp(-1, 1), cropped=False), read_face_factors(inputs, cropped=False)
    return {factor: (read[factor] == source[factor]).float().mean().item() for factor in KEPT_FACTORS}


@torch.no_grad()
def content_scores(model: MaskContentTransfer, batch: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Transfer and removal scores on the pairs (a_i, b_i) of `batch` (with "mask_b"); the
    transfer onto a_i is guided by b_i."""
    model.eval()
    a, b, target = batch["a"], batch["b"], batch["mask_b"]
    transfers = model.transfer(a, b)[0]
    removals = model.remove(b)
    outside = 1 - target
    thresholds = torch.tensor(DEFAULT_THRESHOLDS)
    overlap = mask_overlap_counts(model.segment(b), target, thresholds).double()
    iou = overlap[:, 0] / overlap[:, 1].clamp(min=1)
    best, half = int(iou.argmax()), DEFAULT_THRESHOLDS.index(0.5)
    return {
        "transfer": {"membership": read_face_factors(transfers.clamp(-1, 1), cropped=False)["eyeglasses"]
                     .float().mean().item()} | _agreement(transfers, a),
        "removal": {"membership": (~read_face_factors(removals.clamp(-1, 1), cropped=False)["eyeglasses"])
                    .float().mean().item()} | _agreement(removals, b) | {
            "change_outside": (((removals - b).abs() * outside).sum() / (3 * outside.sum())).item()},
        "mask": {"iou": iou[best].item(), "threshold": thresholds[best].item(), "iou_at_0.5": iou[half].item()},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000, help="faces to draw (about half with glasses)")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic_faces"))
    parser.add_argument("--root", type=Path, default=Path("runs/content_transfer/synthetic_faces"))
    args = parser.parse_args()
    masks = args.data / "masks" / "Eyeglasses"
    if not masks.is_dir():
        write_synthetic_celeba(args.data, count=args.count, seed=0)
    build_cli([
        "fit", "--config", CONFIG, f"--data.data_dir={args.data}", f"--data.mask_dir={masks}",
        f"--model.iterations={args.iterations}", f"--trainer.default_root_dir={args.root}",
        "--trainer.enable_model_summary=false",
    ])  # fmt: skip
    model = MaskContentTransfer.load_from_checkpoint(args.root / "checkpoints" / "last.ckpt", map_location="cpu")
    scores = content_scores(model, evaluation_batch(args.data, CONFIG, mask_dir=str(masks)))
    (args.root / "scores.json").write_text(json.dumps(scores, indent=1))
    print(f"\n{args.iterations} iterations; 64 test pairs; oracle of the planted factors\n")
    print("| operation | success | smile kept | hair kept | background kept | pose kept |")
    print("|---|---|---|---|---|---|")
    for name in ("transfer", "removal"):
        score = scores[name]
        kept = " | ".join(f"{score[f]:.2f}" for f in KEPT_FACTORS)
        print(f"| {name} | {score['membership']:.2f} | {kept} |")
    mask, change = scores["mask"], scores["removal"]["change_outside"]
    print(f"\nremoval: mean change outside the glasses {change:.3f} (images in [-1, 1])")
    print(f"mask IoU with the drawn glasses: {mask['iou']:.2f} at threshold {mask['threshold']:.2f}, "
          f"{mask['iou_at_0.5']:.2f} at 0.5")  # fmt: skip


if __name__ == "__main__":
    main()
