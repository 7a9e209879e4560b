"""Mask-based content transfer on drawn faces whose factors and object pixels are known (the
README's CPU experiment; the paper's transfer and removal tables in small form).

    python -m benchmarks.mbu_faces [--count 3000] [--iterations 2000] [--variant flip_confusion ...] [--model.x=v ...]

Writes the faces with their object masks in the CelebA layout to data/synthetic_faces (when
missing), and 300 more faces drawn with another seed to data/synthetic_faces_heldout; trains
configs/content_transfer/synthetic_faces.yaml (eyewear; the official recipe, or it with the
variant configs of configs/content_transfer/variants/ given after it) through the CLI and
scores the 64 test pairs with the pixel oracle of the planted factors: transfer membership
(b's glasses added to a) and whether the added glasses are the guide's own (their colour and
shape: the glasses differ from face to face), removal success (b's glasses gone), agreement of
the other factors (smile, hair colour, background, pose) with the input, the mean change
outside the glasses for removals, and the IoU of the learned mask with the drawn glasses at the
threshold that is best on 64 held-out pairs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from benchmarks.did_faces import evaluation_batch
from callbacks.mask_iou import DEFAULT_THRESHOLDS, mask_overlap_counts
from lightning_modules.cli import build_cli
from lightning_modules.content_transfer import MaskContentTransfer
from synthetic import read_face_factors, write_synthetic_celeba

CONFIG = "configs/content_transfer/synthetic_faces.yaml"
VARIANTS = Path("configs/content_transfer/variants")
KEPT_FACTORS = ("smiling", "hair", "background", "pose")
GLASSES_STYLES = ("glasses_colour", "glasses_shape")


def _read(images: torch.Tensor) -> dict[str, torch.Tensor]:
    return read_face_factors(images.clamp(-1, 1), cropped=False)


def _agreement(read: dict[str, torch.Tensor], source: dict[str, torch.Tensor]) -> dict[str, float]:
    return {factor: (read[factor] == source[factor]).float().mean().item() for factor in KEPT_FACTORS}


@torch.no_grad()
def mask_ious(model: MaskContentTransfer, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """IoU [T] of the masks of batch["b"] with batch["mask_b"], pooled over the batch, at every
    threshold of DEFAULT_THRESHOLDS."""
    overlap = mask_overlap_counts(model.segment(batch["b"]), batch["mask_b"], torch.tensor(DEFAULT_THRESHOLDS))
    overlap = overlap.double()
    return overlap[:, 0] / overlap[:, 1].clamp(min=1)


@torch.no_grad()
def content_scores(
    model: MaskContentTransfer, batch: dict[str, torch.Tensor], heldout: dict[str, torch.Tensor]
) -> dict[str, dict[str, float]]:
    """Transfer, removal and mask scores on the pairs (a_i, b_i) of `batch` (with "mask_b"); the
    transfer onto a_i is guided by b_i. The mask threshold is the best one on the `heldout` pairs.

    "transfer": "membership" (glasses added), "guide_style" (glasses added with the colour and the
    shape of the guide's), the kept factors; "removal": "membership" (glasses gone), the kept
    factors, "change_outside" (mean absolute change outside the drawn glasses, images in
    [-1, 1]); "mask": "iou" at "threshold" (picked on `heldout`), and, for reference, the IoU at
    the threshold that is best on these very pairs ("iou_best_here") and at 0.5.
    """
    model.eval()
    a, b, target = batch["a"], batch["b"], batch["mask_b"]
    transfers, removals = model.transfer(a, b)[0], model.remove(b)
    read_transfers, read_b = _read(transfers), _read(b)
    added = read_transfers["eyeglasses"]
    same_style = torch.stack([read_transfers[style] == read_b[style] for style in GLASSES_STYLES]).all(0)
    outside = 1 - target
    picked = int(mask_ious(model, heldout).argmax())
    ious = mask_ious(model, batch)
    read_removals = _read(removals)
    transfer = {"membership": added.float().mean().item(), "guide_style": (added & same_style).float().mean().item()}
    return {
        "transfer": transfer | _agreement(read_transfers, _read(a)),
        "removal": {"membership": (~read_removals["eyeglasses"]).float().mean().item()}
        | _agreement(read_removals, read_b)
        | {"change_outside": (((removals - b).abs() * outside).sum() / (3 * outside.sum())).item()},
        "mask": {
            "iou": ious[picked].item(),
            "threshold": DEFAULT_THRESHOLDS[picked],
            "iou_best_here": ious.max().item(),
            "iou_at_0.5": ious[DEFAULT_THRESHOLDS.index(0.5)].item(),
        },
    }


def print_table(scores: dict[str, dict[str, float]], title: str) -> None:
    print(f"\n{title}\n")
    print("| operation | success | guide's glasses | smile kept | hair kept | background kept | pose kept |")
    print("|---|---|---|---|---|---|---|")
    for name in ("transfer", "removal"):
        score = scores[name]
        style = f"{score['guide_style']:.2f}" if "guide_style" in score else "–"
        kept = " | ".join(f"{score[f]:.2f}" for f in KEPT_FACTORS)
        print(f"| {name} | {score['membership']:.2f} | {style} | {kept} |")
    mask, change = scores["mask"], scores["removal"]["change_outside"]
    print(f"\nremoval: mean change outside the glasses {change:.3f} (images in [-1, 1])")
    print(f"mask IoU with the drawn glasses: {mask['iou']:.2f} at threshold {mask['threshold']:.2f} (picked on "
          f"held-out pairs); {mask['iou_best_here']:.2f} at the test pairs' own best threshold, "
          f"{mask['iou_at_0.5']:.2f} at 0.5")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000, help="faces to draw (about half with glasses)")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", action="append", default=[], help=f"a config of {VARIANTS}/, by name")
    parser.add_argument("--data", type=Path, default=Path("data/synthetic_faces"))
    parser.add_argument("--root", type=Path, default=None, help="default: runs/content_transfer/faces_<variants>")
    args, overrides = parser.parse_known_args()  # the rest: further options of the training CLI
    name = "_".join(["official", *args.variant]) + f"_seed{args.seed}"
    root = args.root or Path("runs/content_transfer") / f"faces_{name}"
    heldout_data = args.data.with_name(args.data.name + "_heldout")
    for data, count, seed in ((args.data, args.count, 0), (heldout_data, 300, 1)):
        if not (data / "masks" / "Eyeglasses").is_dir():
            write_synthetic_celeba(data, count=count, seed=seed)
    variants = [argument for variant in args.variant for argument in ("--config", str(VARIANTS / f"{variant}.yaml"))]
    masks = args.data / "masks" / "Eyeglasses"
    build_cli([
        "fit", "--config", CONFIG, *variants, f"--data.data_dir={args.data}", f"--data.mask_dir={masks}",
        f"--model.iterations={args.iterations}", f"--seed_everything={args.seed}",
        f"--trainer.default_root_dir={root}", "--trainer.enable_model_summary=false", *overrides,
    ])  # fmt: skip
    model = MaskContentTransfer.load_from_checkpoint(root / "checkpoints" / "last.ckpt", map_location="cpu")
    batch = evaluation_batch(args.data, CONFIG, mask_dir=str(masks))
    heldout = evaluation_batch(heldout_data, CONFIG, mask_dir=str(heldout_data / "masks" / "Eyeglasses"))
    scores = content_scores(model, batch, heldout)
    (root / "scores.json").write_text(json.dumps(scores, indent=1))
    print_table(scores, f"{name}: {args.iterations} iterations; 64 test pairs; oracle of the planted factors")


if __name__ == "__main__":
    main()
