"""Shared test utilities: running the real CLI in-process or as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from lightning_modules.cli import build_cli

REPO = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_model_summary=false"]


def run_cli(*args: str) -> object:
    """Run `lightning <args>` in this process (fast); returns the CLI object."""
    return build_cli(list(args) + QUIET)


def run_cli_subprocess(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m lightning_modules.cli <args>` from the repository root, as a user would."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "lightning_modules.cli", *args, *QUIET]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


class SaveRankWeights(Callback):
    """Writes each rank's final state_dict to `<directory>/rank_<r>.pt` (for DDP tests)."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        torch.save(pl_module.state_dict(), self.directory / f"rank_{trainer.global_rank}.pt")
