"""The tiny run of every method, shared by the contract test (tests/test_methods.py) and the
stop/resume matrix (tests/test_runs.py): a copy of the method's smoke config made tiny (a few
iterations per scale, a checkpoint every `PERIOD` iterations named by iteration, no logger), its
generated data, and its uninterrupted run, trained once per test session on first use.

Every run here computes with one thread: tiny networks gain nothing from a second, and a resumed
run is compared bit for bit with an uninterrupted one, whose floating-point sums must have been
made in the same order.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from lightning_modules.cli import config_settings
from synthetic import (
    pattern_image,
    write_cifar,
    write_image,
    write_segmentation_shift,
    write_synthetic_celeba,
)
from tests.helpers import REPO, run_cli

PERIOD = 2  # iterations between periodic checkpoints
PROGRESS_KEYS = ("pyramid_progress", "iteration_progress", "one_shot_progress", "padain_generators")


@dataclass(frozen=True)
class Method:
    smoke: str  # the smoke config the tiny config is made from
    model: dict  # model settings that make it tiny
    data: dict = field(default_factory=dict)
    trainer: dict = field(default_factory=dict)
    boundary: int = 0  # a stop after this many iterations ends a scale, level, epoch or validation period
    middle: int = 0  # ... and this one does not
    predictions: tuple[str, ...] = ()  # some of the files `predict` writes into its folder
    vae_iterations: int = 0  # HP-VAE-GAN: its first iterations make 1 optimizer step
    steps_per_iteration: int = 1

    def steps(self, iterations: int) -> int:
        """Optimizer steps (what `trainer.max_steps` counts) after `iterations` iterations."""
        vae = min(iterations, self.vae_iterations)
        return vae + (iterations - vae) * self.steps_per_iteration


TINY_CLASSIFIER = {"class_path": "tests.helpers.TinyClassifierNet"}
# fmt: off
METHODS = {
    # 3 scales of 2 iterations; 6 optimizer steps per iteration (3 critic, 3 generator)
    "singan": Method(
        "singan/smoke.yaml", {"iters_per_scale": 2}, {"max_size": 20, "num_samples": 2}, boundary=4, middle=5,
        steps_per_iteration=6, predictions=("sample_00000.png", "sample_00001.png", "reconstruction.png", "grid.png"),
    ),
    # 4 scales of 2 iterations; a critic step and a generator step per iteration
    "analogy": Method(
        "structural_analogy/smoke.yaml", {"iters_per_scale": 2}, {"image_size": 20, "num_samples": 2},
        boundary=4, middle=5, steps_per_iteration=2,
        predictions=("a_sample_00000.png", "ab_00000.png", "b_sample_00001.png", "ba_00001.png", "ab_real.png",
                     "ba_real.png", "grid.png"),
    ),
    # 2 VAE levels (1 step per iteration) then 3 GAN levels (critic, generator), 2 iterations each, on
    # random 5-frame windows of a 7-frame clip
    "hp_vae_gan": Method(
        "hp_vae_gan/smoke.yaml", {"iters_per_scale": 2}, {"num_frames": 7, "window_frames": 5, "num_samples": 1},
        boundary=4, middle=5, vae_iterations=4, steps_per_iteration=2,
        predictions=("sample_00000.gif", "sample_00000.mp4", "sample_00000_frames.png"),
    ),
    # 6 iterations (autoencoder step, critic step), validation every 3 on 4 pairs
    "domain_intersection": Method(
        "domain_intersection/smoke.yaml", {"iterations": 6}, {"num_eval": 4}, {"val_check_interval": 3},
        boundary=3, middle=5, steps_per_iteration=2,
        predictions=tuple(f"00003_{kind}.png" for kind in ("a_to_b", "b_to_a", "a_intersection", "b_union",
                                                           "a_part", "b_part")) + ("interpolation_fixed_common.png",),
    ),
    # the same on drawn faces with glasses masks
    "content_transfer": Method(
        "content_transfer/smoke.yaml", {"iterations": 6, "code_channels": 32, "separate_channels": 4}, {},
        {"val_check_interval": 3}, boundary=3, middle=5, steps_per_iteration=2,
        predictions=tuple(f"00007_{kind}.png" for kind in ("transfer", "transfer_mask", "replacement", "removal",
                                                           "b_mask")) + ("interpolation.png", "grid.png"),
    ),
    # phase 1: 6 iterations of B's autoencoder (critic on the real, critic on the fake, autoencoder)
    "one_shot_phase1": Method(
        "one_shot_translation/smoke_phase1.yaml", {"iterations": 6}, {"num_eval": 2}, boundary=4, middle=5,
        steps_per_iteration=3,
        predictions=("test_00000_b.png", "test_00000_bb.png", "test_00001_b.png", "test_00001_bb.png", "grid.png"),
    ),
    # phase 2 from the phase-1 run: 6 iterations on the one sample (2 critic, sample, B steps),
    # validation every 3
    "one_shot_phase2": Method(
        "one_shot_translation/smoke_phase2.yaml", {"iterations": 6}, {"num_eval": 2}, {"val_check_interval": 3},
        boundary=3, middle=5, steps_per_iteration=4,
        predictions=("sample_a.png", "sample_ab.png", "sample_aba.png", "test_00000_aa.png", "grid.png"),
    ),
    # 2 epochs of 3 batches of 8, pAdaIN firing at p = 0.5 in a tiny network
    "classifier": Method(
        "padain/smoke.yaml", {"padain_p": 0.5, "milestones": [1], "network": TINY_CLASSIFIER}, {"batch_size": 8},
        boundary=3, middle=5, predictions=("predictions.csv",),  # of the images of `predict_arguments`
    ),
    # 6 iterations of 2 source images on a narrow backbone, pAdaIN at p = 0.5, validation every 3
    "segmenter": Method(
        "padain_segmentation/smoke.yaml",
        {"backbone": "resnet14_narrow", "frozen_batch_norm": False, "padain_p": 0.5, "poly_iterations": 6},
        {"num_eval": 2}, {"max_steps": 6, "val_check_interval": 3}, boundary=3, middle=5,
        predictions=("train_ids/aachen_000000_000019.png", "color/aachen_000000_000019.png"),
    ),
}
# fmt: on


@contextmanager
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit(config: Path, root: Path, *extra: str) -> object:
    """`fit` of a tiny config into `root`, with one thread."""
    with one_thread():
        return run_cli("fit", "--config", str(config), f"--trainer.default_root_dir={root}", *extra)


def predict(config: Path, checkpoint: Path, root: Path, *extra: str) -> Path:
    """`predict` from `checkpoint` into `root`; returns the predictions folder."""
    with one_thread():
        run_cli("predict", "--config", str(config), f"--ckpt_path={checkpoint}",
                f"--trainer.default_root_dir={root}", *extra)  # fmt: skip
    return root / "predictions"


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)  # a checkpoint these tests wrote


def iterations_of(checkpoint: dict) -> int:
    for key in ("pyramid_progress", "iteration_progress"):
        if key in checkpoint:
            return checkpoint[key]["iteration"]
    return checkpoint["global_step"]  # the classifier and the segmenter: one optimizer step per iteration


def assert_same(expected: object, actual: object, where: str) -> None:
    """Bit-for-bit equality of nested checkpoint contents."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor) and expected.dtype == actual.dtype, where
        assert torch.equal(expected, actual), where
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and expected.keys() == actual.keys(), where
        for key in expected:
            assert_same(expected[key], actual[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)) and len(expected) == len(actual), where
        for index, (e, a) in enumerate(zip(expected, actual)):
            assert_same(e, a, f"{where}[{index}]")
    else:
        assert expected == actual, where


def assert_same_run(expected: dict, actual: dict) -> None:
    """Weights and buffers, optimizer and LR-schedule states, iteration counters and random states."""
    for key in ("state_dict", "optimizer_states", "lr_schedulers", *PROGRESS_KEYS):
        assert (key in expected) == (key in actual), key
        if key in expected:
            assert_same(expected[key], actual[key], key)


def model_class(config: Path) -> type:
    """The LightningModule class a config names."""
    module, _, name = config_settings(config)["model"]["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)


class TinyRuns:
    """Each method's tiny config and uninterrupted run, made on first use under `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._configs: dict[str, Path] = {}
        self._references: dict[str, Path] = {}

    def config(self, name: str) -> Path:
        if name not in self._configs:
            self._configs[name] = self._write_config(name)
        return self._configs[name]

    def reference(self, name: str) -> Path:
        """The last.ckpt of the method's uninterrupted run."""
        if name not in self._references:
            root = self.folder / f"{name}_uninterrupted"
            fit(self.config(name), root)
            self._references[name] = root / "checkpoints" / "last.ckpt"
        return self._references[name]

    def predict_arguments(self, name: str) -> list[str]:
        """What `predict` needs besides the config: the classifier, a folder of images to classify."""
        if name != "classifier":
            return []
        folder = self.folder / "data" / "images_to_classify"
        for index in range(2):
            write_image(folder / f"{index}.png", pattern_image(36, 40, seed=index))
        return [f"--data.predict_dir={folder}"]

    def _generated_data(self, name: str) -> dict:
        """Data settings that point the config at generated files."""
        data = self.folder / "data"
        if name == "classifier":
            return {"data_dir": str(write_cifar(data / "cifar", "cifar10", train=24, test=8))}
        if name == "content_transfer":
            faces = write_synthetic_celeba(data / "faces", count=80, seed=0)
            return {"data_dir": str(faces), "mask_dir": str(faces / "masks" / "Eyeglasses")}
        if name == "segmenter":
            gtav, cityscapes = write_segmentation_shift(data / "scenes", count_source=12, count_target=6)
            return {"source_root": str(gtav), "target_root": str(cityscapes)}
        return {}

    def _write_config(self, name: str) -> Path:
        method = METHODS[name]
        config = config_settings(REPO / "configs" / method.smoke)
        config["model"]["init_args"] |= method.model
        if name == "one_shot_phase2":
            config["model"]["init_args"]["phase_one_checkpoint"] = str(self.reference("one_shot_phase1"))
        config["data"]["init_args"] |= method.data | self._generated_data(name)
        for key in ("path", "path_a", "path_b"):  # the assets, wherever the tests run from
            if key in config["data"]["init_args"]:
                config["data"]["init_args"][key] = str(REPO / config["data"]["init_args"][key])
        checkpoint = {"every_n_iterations": PERIOD, "save_top_k": -1, "filename": "{iteration}"}
        writers = [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("PredictionWriter")]
        config["trainer"] |= method.trainer | {"logger": False, "enable_progress_bar": False, "num_sanity_val_steps": 0}
        resumable = {"class_path": "callbacks.ResumableCheckpoint", "init_args": checkpoint}
        config["trainer"]["callbacks"] = [resumable, *writers]  # `--trainer.callbacks.<option>` sets the last
        path = self.folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path
