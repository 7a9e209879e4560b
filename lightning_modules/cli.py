"""The command line: `lightning`, `dfgen` and `python -m lightning_modules.cli` all run this.

    lightning fit --config configs/singan/hubble.yaml --model.iters_per_scale=500
    lightning predict --config configs/singan/hubble.yaml --ckpt_path runs/singan/hubble/checkpoints/last.ckpt

Everything a run writes goes under `trainer.default_root_dir`: checkpoints in
`checkpoints/` (where `--ckpt_path last` finds them), CSV and TensorBoard logs when
no logger is configured, and predictions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy

import callbacks  # noqa: F401  (registers the project's callbacks for short class names)
import datamodules  # noqa: F401
import lightning_modules  # noqa: F401


class DFGenCLI(LightningCLI):
    """LightningCLI whose runs are resumable and keep all their outputs under one root."""

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self._get(self.config_init, "trainer", default={})
        root = Path(config.get("default_root_dir") or os.getcwd())
        if config.get("strategy") == "ddp" and not self.model.automatic_optimization:
            # Adversarial steps leave the other player's (and other scales') parameters out of
            # each backward, which plain DDP rejects; unused-parameter detection handles it.
            kwargs["strategy"] = DDPStrategy(find_unused_parameters=True)
        if config.get("logger") in (None, True):
            kwargs["logger"] = [TensorBoardLogger(root, name="tensorboard"), CSVLogger(root, name="csv")]
        trainer = super().instantiate_trainer(**kwargs)
        for checkpoint in trainer.checkpoint_callbacks:
            if checkpoint.dirpath is None:  # one fixed folder, so that `--ckpt_path last` finds it
                checkpoint.dirpath = str(root / "checkpoints")
        return trainer


def build_cli(args: list[str] | dict | None = None) -> DFGenCLI:
    """Parse `args` (default: sys.argv), build the objects and run the subcommand."""
    return DFGenCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "omegaconf"},
        args=args,
    )


def cli_main(args: list[str] | dict | None = None) -> None:
    """Console-script entry point (returns None, so the exit status is 0 on success)."""
    build_cli(args)


if __name__ == "__main__":
    cli_main()
