"""Domain intersection/difference on drawn faces whose factors are known (the README's CPU
experiment; numbers.md's membership table in small form).

    python -m benchmarks.did_faces [--count 3000] [--iterations 2000]

Writes the faces in the CelebA layout (datamodules.synthetic.write_synthetic_celeba) to
data/synthetic_faces, trains configs/domain_intersection/synthetic_faces.yaml through the CLI,
and scores every operation on the 64 test pairs with the pixel oracle that reads the planted
factors (read_face_factors): membership (the paper's measure: A -> B shows glasses and no
smile, B -> A a smile and no glasses; the intersection neither; the union both) and
agreement of the common factors (hair colour, background, pose) with the source image.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import yaml

from datamodules.celeba import CelebAAttributeDomains
from datamodules.synthetic import read_face_factors, write_synthetic_celeba
from lightning_modules.cli import build_cli
from lightning_modules.domain_intersection import DomainIntersectionDifference

CONFIG = "configs/domain_intersection/synthetic_faces.yaml"
COMMON_FACTORS = ("hair", "background", "pose")
# operation -> (source domain, eyeglasses expected, smiling expected)
EXPECTED = {
    "a_to_b": ("a", True, False),
    "b_to_a": ("b", False, True),
    "a_intersection": ("a", False, False),
    "b_intersection": ("b", False, False),
    "a_union": ("a", True, True),
    "b_union": ("b", True, True),
}


@torch.no_grad()
def operation_scores(model: DomainIntersectionDifference, a: torch.Tensor, b: torch.Tensor) -> dict[str, dict]:
    """Per operation: membership (both planted attributes as expected) and agreement of each
    common factor with the source, as fractions over the pairs (a_i, b_i); guides are the
    other test images (rolled by one)."""
    model.eval()
    guides_a, guides_b = a.roll(1, dims=0), b.roll(1, dims=0)
    outputs = {
        "a_to_b": model.translate_a_to_b(a, guides_b),
        "b_to_a": model.translate_b_to_a(b, guides_a),
        "a_intersection": model.intersection(a),
        "b_intersection": model.intersection(b),
        "a_union": model.union(a, guides_a, guides_b),
        "b_union": model.union(b, guides_a, guides_b),
    }
    sources = {"a": read_face_factors(a), "b": read_face_factors(b)}
    scores = {}
    for name, images in outputs.items():
        source, glasses, smile = EXPECTED[name]
        read = read_face_factors(images.clamp(-1, 1))
        member = (read["eyeglasses"] == glasses) & (read["smiling"] == smile)
        scores[name] = {"membership": member.float().mean().item()} | {
            factor: (read[factor] == sources[source][factor]).float().mean().item() for factor in COMMON_FACTORS
        }
    return scores


def evaluation_batch(data_dir: Path, config: str = CONFIG, **overrides) -> dict[str, torch.Tensor]:
    """The 64 test pairs, loaded as the config's DataModule loads them (with `overrides`)."""
    init_args = yaml.safe_load(Path(config).read_text())["data"]["init_args"]
    data = CelebAAttributeDomains(**(init_args | {"data_dir": str(data_dir), "in_memory": False} | overrides))
    return next(iter(data.val_dataloader()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000, help="faces to draw (about a quarter per domain)")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--data", type=Path, default=Path("data/synthetic_faces"))
    parser.add_argument("--root", type=Path, default=Path("runs/domain_intersection/synthetic_faces"))
    args = parser.parse_args()
    if not (args.data / "list_attr_celeba.txt").is_file():
        write_synthetic_celeba(args.data, count=args.count, seed=0)
    build_cli([
        "fit", "--config", CONFIG, f"--data.data_dir={args.data}", f"--model.iterations={args.iterations}",
        f"--trainer.default_root_dir={args.root}", "--trainer.enable_model_summary=false",
    ])  # fmt: skip
    model = DomainIntersectionDifference.load_from_checkpoint(
        args.root / "checkpoints" / "last.ckpt", map_location="cpu"
    )
    batch = evaluation_batch(args.data)
    scores = operation_scores(model, batch["a"], batch["b"])
    (args.root / "scores.json").write_text(json.dumps(scores, indent=1))
    print(f"\n{args.iterations} iterations; 64 test pairs; oracle of the planted factors\n")
    print("| operation | membership | hair kept | background kept | pose kept |\n|---|---|---|---|---|")
    for name, score in scores.items():
        print(f"| {name} | {score['membership']:.2f} | " + " | ".join(f"{score[f]:.2f}" for f in COMMON_FACTORS) + " |")


if __name__ == "__main__":
    main()
