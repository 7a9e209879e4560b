"""Domain intersection/difference on drawn faces whose factors are known (the README's CPU
experiment; the paper's membership table in small form).

    python -m benchmarks.did_faces [--count 3000] [--iterations 2000] [--variant flip_confusion ...] [--model.x=v ...]

Writes the faces in the CelebA layout (synthetic.write_synthetic_celeba) to
data/synthetic_faces, trains configs/domain_intersection/synthetic_faces.yaml (the official
recipe, or it with the variant configs of configs/domain_intersection/variants/ given after it)
through the CLI, and scores every operation on the 64 test pairs with the pixel oracle that
reads the planted factors (read_face_factors). Per operation: how many outputs show glasses
and a smile, membership (the paper's measure: A -> B shows glasses and no smile, B -> A a smile
and no glasses; the intersection neither; the union both), whether an imported part has its
guide's own style (the glasses' colour and shape, the smile's shape) and whether the common
factors (hair colour, background, pose) are the source image's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from datamodules.celeba_domains import CelebAAttributeDomains
from lightning_modules.cli import build_cli, config_settings
from lightning_modules.domain_intersection import DomainIntersectionDifference
from synthetic import read_face_factors, write_synthetic_celeba

CONFIG = "configs/domain_intersection/synthetic_faces.yaml"
VARIANTS = Path("configs/domain_intersection/variants")
COMMON_FACTORS = ("hair", "background", "pose")
PART_STYLES = {"eyeglasses": ("glasses_colour", "glasses_shape"), "smiling": ("smile_shape",)}
# operation -> (source domain, eyeglasses expected, smiling expected)
EXPECTED = {
    "a_to_b": ("a", True, False),
    "b_to_a": ("b", False, True),
    "a_intersection": ("a", False, False),
    "b_intersection": ("b", False, False),
    "a_union": ("a", True, True),
    "b_union": ("b", True, True),
}


def _style_agreement(read: dict, guide: dict, part: str) -> torch.Tensor:
    """Per output [N]: every style of `part` is the guide's (bool)."""
    return torch.stack([read[style] == guide[style] for style in PART_STYLES[part]]).all(0)


@torch.no_grad()
def operation_scores(model: DomainIntersectionDifference, a: torch.Tensor, b: torch.Tensor) -> dict[str, dict]:
    """Per operation, fractions over the pairs (a_i, b_i): "eyeglasses" and "smiling" (outputs
    showing each), "membership" (both as expected), "guide_style" (the outputs that show an
    expected imported part with all of its guide's styles, over all outputs) and each common
    factor's agreement with the source. Guides are the other test images (rolled by one)."""
    model.eval()
    guides = {"a": a.roll(1, dims=0), "b": b.roll(1, dims=0)}
    outputs = {
        "a_to_b": model.translate_a_to_b(a, guides["b"]),
        "b_to_a": model.translate_b_to_a(b, guides["a"]),
        "a_intersection": model.intersection(a),
        "b_intersection": model.intersection(b),
        "a_union": model.union(a, guides["a"], guides["b"]),
        "b_union": model.union(b, guides["a"], guides["b"]),
    }
    sources = {"a": read_face_factors(a), "b": read_face_factors(b)}
    read_guides = {domain: read_face_factors(images) for domain, images in guides.items()}
    scores = {}
    for name, images in outputs.items():
        source, glasses, smile = EXPECTED[name]
        read = read_face_factors(images.clamp(-1, 1))
        member = (read["eyeglasses"] == glasses) & (read["smiling"] == smile)
        # every part an operation shows comes from a guide: the glasses from a B image, the smile from an A image
        imported = [(part, domain) for part, domain, wanted in (("eyeglasses", "b", glasses), ("smiling", "a", smile))
                    if wanted]  # fmt: skip
        styled = member.clone()
        for part, domain in imported:
            styled &= _style_agreement(read, read_guides[domain], part)
        scores[name] = {
            "eyeglasses": read["eyeglasses"].float().mean().item(),
            "smiling": read["smiling"].float().mean().item(),
            "membership": member.float().mean().item(),
            "guide_style": styled.float().mean().item() if imported else float("nan"),
        } | {factor: (read[factor] == sources[source][factor]).float().mean().item() for factor in COMMON_FACTORS}
    return scores


def evaluation_batch(data_dir: Path, config: str = CONFIG, **overrides) -> dict[str, torch.Tensor]:
    """The 64 test pairs, loaded as the config's DataModule loads them (with `overrides`)."""
    init_args = config_settings(config)["data"]["init_args"]  # the task's file holds only its differences
    data = CelebAAttributeDomains(**(init_args | {"data_dir": str(data_dir), "in_memory": False} | overrides))
    return next(iter(data.val_dataloader()))


def print_table(scores: dict[str, dict], title: str) -> None:
    print(f"\n{title}\n")
    print("| output | glasses | smile | membership | guide's style | hair kept | background kept | pose kept |")
    print("|---|---|---|---|---|---|---|---|")
    for name, score in scores.items():
        values = [score[key] for key in ("eyeglasses", "smiling", "membership", "guide_style", *COMMON_FACTORS)]
        print(f"| {name} | " + " | ".join("–" if v != v else f"{v:.2f}" for v in values) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000, help="faces to draw (about a quarter per domain)")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", action="append", default=[], help=f"a config of {VARIANTS}/, by name")
    parser.add_argument("--data", type=Path, default=Path("data/synthetic_faces"))
    parser.add_argument("--root", type=Path, default=None, help="default: runs/domain_intersection/faces_<variants>")
    args, overrides = parser.parse_known_args()  # the rest: further options of the training CLI
    name = "_".join(["official", *args.variant]) + f"_seed{args.seed}"
    root = args.root or Path("runs/domain_intersection") / f"faces_{name}"
    if not (args.data / "list_attr_celeba.txt").is_file():
        write_synthetic_celeba(args.data, count=args.count, seed=0)
    variants = [argument for variant in args.variant for argument in ("--config", str(VARIANTS / f"{variant}.yaml"))]
    build_cli([
        "fit", "--config", CONFIG, *variants, f"--data.data_dir={args.data}", f"--model.iterations={args.iterations}",
        f"--seed_everything={args.seed}", f"--trainer.default_root_dir={root}", "--trainer.enable_model_summary=false",
        *overrides,
    ])  # fmt: skip
    model = DomainIntersectionDifference.load_from_checkpoint(root / "checkpoints" / "last.ckpt", map_location="cpu")
    batch = evaluation_batch(args.data)
    scores = operation_scores(model, batch["a"], batch["b"])
    (root / "scores.json").write_text(json.dumps(scores, indent=1))
    print_table(scores, f"{name}: {args.iterations} iterations; 64 test pairs; oracle of the planted factors")


if __name__ == "__main__":
    main()
