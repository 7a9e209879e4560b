"""`python -m synthetic KIND ROOT [--count N] [--size W H] [--seed S]`: write a small dataset in its real layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthetic.datasets import write_cifar, write_cifar_c
from synthetic.faces import write_synthetic_celeba
from synthetic.street_scenes import write_cityscapes, write_gtav, write_segmentation_shift


def main() -> None:
    """`python -m synthetic KIND ROOT [--count N] [--seed S]`: write a small dataset in its real layout."""
    kinds = ["cifar10", "cifar100", "cifar10-c", "cifar100-c", "faces", "gtav", "cityscapes", "segmentation_shift"]
    parser = argparse.ArgumentParser(prog="python -m synthetic", description=main.__doc__)
    parser.add_argument("kind", choices=kinds)
    parser.add_argument("root", type=Path)
    parser.add_argument(
        "--count", type=int, default=None,
        help="faces: how many (3000); gtav: images (8); cityscapes: train images (8; val: a half); "
        "segmentation_shift: source images (32; target: a half per split)",
    )  # fmt: skip
    parser.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), help="street scenes: image width and height")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    scene = {"size": tuple(args.size)} if args.size else {}
    if args.kind == "faces":
        write_synthetic_celeba(args.root, count=args.count or 3000, seed=args.seed)
    elif args.kind == "gtav":
        write_gtav(args.root, count=args.count or 8, seed=args.seed, **scene)
    elif args.kind == "cityscapes":
        count = args.count or 8
        write_cityscapes(args.root, {"train": count, "val": max(count // 2, 1)}, seed=args.seed, **scene)
    elif args.kind == "segmentation_shift":
        count = args.count or 32
        write_segmentation_shift(args.root, count, max(count // 2, 1), seed=args.seed, **scene)
    elif args.kind.endswith("-c"):
        write_cifar_c(args.root, num_classes=10 if args.kind == "cifar10-c" else 100, seed=args.seed)
    else:
        write_cifar(args.root, args.kind, seed=args.seed)
    print(f"wrote {args.kind} to {args.root}")


if __name__ == "__main__":
    main()
