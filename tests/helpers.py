"""Shared test utilities: running the real CLI in-process or as a subprocess."""

from __future__ import annotations

import csv
import os
import signal as signal_module
import socket
import subprocess
import sys
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer
from torch.utils.data import TensorDataset

from callbacks.checkpoint import iterations_done
from datamodules.loaders import evaluation_loader
from lightning_modules.cli import build_cli

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_model_summary=false"]


def run_cli(*args: str) -> object:
    """Run `lightning <args>` in this process (fast); returns the CLI object."""
    return build_cli(list(args) + QUIET)


def run_cli_subprocess(*args: str, timeout: int | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m lightning_modules.cli <args>` from the repository root, as a user would.

    No time limit by default: how long a run takes depends on the machine's load (on 2 cores
    shared with other work, the 2-thread runs here take several times longer), and whether a
    test passes must not.
    """
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO), **(env or {})}
    command = [sys.executable, "-m", "lightning_modules.cli", *args, *QUIET]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


class SaveRankWeights(Callback):
    """Writes each rank's final state_dict to `<directory>/rank_<r>.pt` (for DDP tests)."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        torch.save(pl_module.state_dict(), self.directory / f"rank_{trainer.global_rank}.pt")


class TinyFeatures(torch.nn.Module):
    """A fixed random feature extractor: uint8 [N, 3, H, W] -> [N, 8] (no weights file needed)."""

    num_features = 8

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, kernel_size=3, stride=2)
        weights = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=weights) * 0.1)
            self.conv.bias.zero_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(images.float() / 127.5 - 1)).mean(dim=(2, 3))


class TinySpatialFeatures(TinyFeatures):
    """uint8 [N, 3, H, W] -> activation maps [N, 8, h, w]."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(images.float() / 127.5 - 1))


class ToyImages(LightningDataModule):
    """Deterministic random images [-1, 1] for validation and test, never padded across processes."""

    def __init__(self, num_images: int = 24, size: int = 16, batch_size: int = 4) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(1)
        self.images = torch.rand(num_images, 3, size, size, generator=generator) * 2 - 1
        self.batch_size = batch_size

    def val_dataloader(self):
        return evaluation_loader(TensorDataset(torch.arange(len(self.images)), self.images), self.batch_size)

    test_dataloader = val_dataloader


class ToyGenerator(LightningModule):
    """'Generates' a fixed distortion of each real image, so FID/KID have a known, nonzero answer."""

    def __init__(self, shift: float = 0.3) -> None:
        super().__init__()
        self.shift = shift
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def validation_step(self, batch, batch_idx):
        return None

    test_step = validation_step

    def fidelity_images(self, batch, batch_idx):
        _, images = batch
        return images, (images * 0.5 + self.shift).clamp(-1, 1)


class ToySegmentation(LightningDataModule):
    """An odd number of small label maps with planted predictions, for mIoU tests."""

    def __init__(self, num_images: int = 7, num_classes: int = 4, batch_size: int = 2) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(2)
        self.target = torch.randint(0, num_classes, (num_images, 6, 5), generator=generator)
        self.target[:, 0, 0] = 255  # ignored pixels
        noise = torch.randint(0, num_classes, self.target.shape, generator=generator)
        flip = torch.rand(self.target.shape, generator=generator) < 0.3
        self.preds = torch.where(flip, noise, self.target.clamp(max=num_classes - 1))
        self.batch_size = batch_size

    def val_dataloader(self):
        return evaluation_loader(TensorDataset(self.preds, self.target), self.batch_size)

    test_dataloader = val_dataloader


class ToySegmenter(LightningModule):
    """Returns the planted predictions of `ToySegmentation`."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def validation_step(self, batch, batch_idx):
        preds, target = batch
        return {"preds": preds, "target": target}

    test_step = validation_step


class TinyStyleFeatures(TinyFeatures):
    """uint8-free stand-in for VGG: images [N, 3, H, W] in [-1, 1] -> {"content": map, "style": [maps]}."""

    def forward(self, images: torch.Tensor) -> dict:
        maps = torch.tanh(self.conv(images))
        return {"content": maps, "style": [maps, maps[:, :4]]}


def fit_run(config: str, root: Path, *extra: str) -> Path:
    """`fit` with `config`, then `extra` (which may hold another --config), into `root`; returns last.ckpt."""
    run_cli("fit", "--config", config, *extra, f"--trainer.default_root_dir={root}")
    return root / "checkpoints" / "last.ckpt"


def logged_columns(root: Path) -> set[str]:
    """The metric names of a run's CSV log."""
    rows = csv.DictReader(next(root.glob("csv/version_*/metrics.csv")).read_text().splitlines())
    return set(rows.fieldnames)


def predict_run(config: str, last: Path, root: Path, *extra: str) -> Path:
    """`predict` from the checkpoint `last` into `root`; returns the predictions folder."""
    run_cli("predict", "--config", config, f"--ckpt_path={last}", f"--trainer.default_root_dir={root}", *extra)
    return root / "predictions"


def free_port() -> int:
    """A TCP port free on this machine now (the system picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_two_processes(*args: str) -> subprocess.CompletedProcess:
    """`run_cli_subprocess` of a 2-process DDP run on CPU (gloo), on a port of its own: two such runs at
    once (parallel test workers) never meet, whatever MASTER_PORT the environment holds."""
    return run_cli_subprocess(
        *args, "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp",
        env={"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())},
    )  # fmt: skip


def assert_ddp_ranks_agree(config: str, root: Path, *extra: str) -> Path:
    """A 2-process DDP fit on CPU ends with identical weights and buffers on both ranks; returns its
    last.ckpt."""
    weights = root / "weights"
    result = run_two_processes(
        "fit", "--config", config, *extra, f"--trainer.default_root_dir={root}",
        "--trainer.callbacks+=tests.helpers.SaveRankWeights", f"--trainer.callbacks.directory={weights}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = torch.load(weights / "rank_0.pt"), torch.load(weights / "rank_1.pt")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    return root / "checkpoints" / "last.ckpt"


def million_parameters(module: torch.nn.Module) -> float:
    """Trainable and frozen parameters, in millions, rounded to 2 decimals (as the specs quote them)."""
    return round(sum(p.numel() for p in module.parameters()) / 1e6, 2)


def train_one_iteration(model: LightningModule, size: int = 32) -> tuple[dict, dict]:
    """One `training_step` of a two-domain module outside a Trainer, on random batches of 4 A and
    4 B images (optimizers stepped directly, no clipping, no logging); parameters before and after."""
    optimizers = model.configure_optimizers()
    model.optimizers = lambda: optimizers
    model.manual_backward = lambda loss: loss.backward()
    model.clip_gradients = lambda optimizer, gradient_clip_val, gradient_clip_algorithm: None
    model._finish_iteration = lambda: None
    model._log_terms = lambda terms: None
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    generator = torch.Generator().manual_seed(0)
    model.training_step({d: torch.randn(4, 3, size, size, generator=generator) for d in "ab"}, 0)
    return before, {name: p.detach().clone() for name, p in model.named_parameters()}


class SignalAt(Callback):
    """Sends `signal` ("SIGINT", "SIGTERM", "SIGUSR1", "SIGKILL") to this very process in the middle of
    the training iteration that follows `iteration` done iterations: before its `optimizer_step`-th
    optimizer step, so a stop that saved there would save half an iteration."""

    def __init__(self, iteration: int, signal: str, optimizer_step: int = 2) -> None:
        self.iteration, self.signum, self.optimizer_step = iteration, getattr(signal_module, signal), optimizer_step
        self._steps, self._sent = 0, False

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int) -> None:
        self._steps = 0

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer) -> None:
        self._steps += 1
        at = iterations_done(trainer, pl_module) == self.iteration and self._steps == self.optimizer_step
        if at and not self._sent:
            self._sent = True
            os.kill(os.getpid(), self.signum)


class StopAtIteration(Callback):
    """Sets `trainer.should_stop` after `iteration` iterations, as Lightning's Timer does when
    `trainer.max_time` runs out (a time limit that does not depend on the machine's speed)."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        if iterations_done(trainer, pl_module) == self.iteration:
            trainer.should_stop = True


class TinyClassifierNet(torch.nn.Module):
    """conv-BN-ReLU twice, pooled, linear: a classifier small enough for many resumed runs (pAdaIN
    goes after both convolutions)."""

    def __init__(self, num_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, stride=2, padding=1), torch.nn.BatchNorm2d(width), torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 3, stride=2, padding=1), torch.nn.BatchNorm2d(width), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        )  # fmt: skip
        self.head = torch.nn.Linear(width, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def assert_mutant_outcome(missed: set[str], mutant: str | None, targets: set[str], scores: object) -> None:
    """The mutant convention of the learning tests: the unmodified run (`mutant` None) misses no
    bar; a mutant misses at least one of the bars it `targets`. `scores` goes into the message."""
    if mutant is None:
        assert not missed, (missed, scores)
    else:
        assert missed & targets, (mutant, missed, scores)
