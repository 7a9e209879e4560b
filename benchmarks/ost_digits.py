"""One-shot translation's digits experiment in small form, on real handwriting that ships with
scikit-learn (the ablation of the paper's MNIST -> SVHN experiment, Benaim and Wolf, NeurIPS 2018).

    python -m benchmarks.ost_digits [--samples 0 1 2 3 4] [--variants ost no_selective_backprop ...]

A = scikit-learn's handwritten digits (upscaled to 32x32), B = the same kind of digits
blended onto photographs (MNIST-M style), A and B from disjoint halves of the training scans.
Through the real CLI and configs: the B classifier (textured_classifier.yaml), phase 1 once
(handwritten_to_textured_phase1.yaml), then phase 2 with ONE A sample per run
(handwritten_to_textured_phase2.yaml) for every variant and choice of the sample; the table
gives the translation accuracy of the 360 A test digits (chance 0.10).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from lightning_modules.cli import build_cli

CONFIGS = Path("configs/one_shot_translation")
VARIANTS = {
    "ost": [],
    "no_selective_backprop": ["--model.selective_backprop=false"],
    "no_one_way_cycle": ["--model.one_way_cycle=false"],
    "no_augmentation": ["--data.augment=false"],
    "sample_augmented_each_step": ["--data.augment_sample_each_step=true"],
    "frozen_shared": ["--model.freeze_shared=true"],
    "two_way_cycle": ["--model.two_way_cycle=true"],
}
DEFAULT_VARIANTS = ["ost", "no_selective_backprop", "no_one_way_cycle", "no_augmentation", "sample_augmented_each_step"]


def fit(config: str, root: Path, *extra: str) -> object:
    args = ["fit", "--config", str(CONFIGS / config), f"--trainer.default_root_dir={root}", *extra]
    return build_cli(args + ["--trainer.enable_model_summary=false"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="indices of the A sample")
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=VARIANTS)
    parser.add_argument("--root", type=Path, default=Path("runs/ost_digits"))
    args = parser.parse_args()
    # the classifier and phase 1 go where the configs put them, which is where phase 2's config looks
    classifier = Path("runs/one_shot_translation/textured_classifier/checkpoints/last.ckpt")
    if not classifier.is_file():
        fit("textured_classifier.yaml", classifier.parents[1])
    test = build_cli(["test", "--config", str(CONFIGS / "textured_classifier.yaml"), f"--ckpt_path={classifier}"])
    classifier_accuracy = float(test.trainer.callback_metrics["test/top1"])
    phase_one = Path("runs/one_shot_translation/handwritten_to_textured_phase1/checkpoints/last.ckpt")
    if not phase_one.is_file():
        fit("handwritten_to_textured_phase1.yaml", phase_one.parents[1])

    results: dict[str, dict[int, float]] = {variant: {} for variant in args.variants}
    for sample in args.samples:  # every variant on a sample before the next: a stopped run leaves whole rows
        for variant in args.variants:
            start = time.perf_counter()  # no sanity check: the table reads only the final validation
            cli = fit(
                "handwritten_to_textured_phase2.yaml", args.root / variant / f"sample_{sample}",
                f"--data.sample_index={sample}", "--trainer.num_sanity_val_steps=0", *VARIANTS[variant],
            )  # fmt: skip
            accuracy = float(cli.trainer.callback_metrics["val/translation_accuracy"])
            results[variant][sample] = accuracy
            print(f"{variant} sample {sample}: {accuracy:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
            summary = {"classifier": classifier_accuracy, **results}
            (args.root / "results.json").write_text(json.dumps(summary, indent=1))

    print(f"\nB classifier accuracy on B test digits: {classifier_accuracy:.3f}")
    print(f"translation accuracy of A -> B over A samples {args.samples} (chance 0.10)\n")
    print("| variant | mean ± std | per sample |\n|---|---|---|")
    for variant, per_sample in results.items():
        values = list(per_sample.values())
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        cells = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {variant} | {statistics.mean(values):.3f} ± {spread:.3f} | {cells} |")


if __name__ == "__main__":
    main()
