"""The command line: `lightning`, `dfgen` and `python -m lightning_modules.cli` all run this.

    lightning fit --config configs/singan/hubble.yaml --model.iters_per_scale=500
    lightning predict --config configs/singan/hubble.yaml --ckpt_path runs/singan/hubble/checkpoints/last.ckpt

Everything a run writes goes under `trainer.default_root_dir`: checkpoints in
`checkpoints/` (where `--ckpt_path last` finds them), CSV and TensorBoard logs when
no logger is configured, and predictions.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy

import callbacks  # noqa: F401  (registers the project's callbacks for short class names)
import datamodules  # noqa: F401
import lightning_modules  # noqa: F401


def wandb_run_id(root: Path, resuming: bool) -> str:
    """The W&B run id of the run under `root`: the stored one when resuming, else a new one.

    Only the first process writes the file; Lightning starts the other DDP processes with
    LOCAL_RANK/NODE_RANK set, and only rank 0 talks to W&B.
    """
    path = root / "wandb_run_id"
    if resuming and path.is_file():
        return path.read_text().strip()
    run_id = secrets.token_hex(4)
    if os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0":
        root.mkdir(parents=True, exist_ok=True)
        path.write_text(run_id)
    return run_id


class DFGenCLI(LightningCLI):
    """LightningCLI whose runs are resumable and keep all their outputs under one root."""

    def before_instantiate_classes(self) -> None:
        """A W&B logger without an explicit id resumes the run it logged to when `--ckpt_path` is given."""
        config = self.config.get(self.subcommand) if self.subcommand else self.config
        if config is None or self.subcommand != "fit":
            return
        loggers = config.trainer.logger if isinstance(config.trainer.logger, list) else [config.trainer.logger]
        root = Path(config.trainer.default_root_dir or os.getcwd())
        for logger in loggers:
            is_wandb = getattr(logger, "class_path", "").endswith("WandbLogger")
            if not is_wandb:
                continue
            if logger.init_args.get("save_dir") in (None, "."):
                logger.init_args.save_dir = str(root)
            if logger.init_args.get("id") is None:
                logger.init_args.id = wandb_run_id(root, resuming=bool(config.get("ckpt_path")))

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self._get(self.config_init, "trainer", default={})
        root = Path(config.get("default_root_dir") or os.getcwd())
        if config.get("strategy") == "ddp" and not self.model.automatic_optimization:
            # Adversarial steps leave the other player's (and other scales') parameters out of
            # each backward, which plain DDP rejects; unused-parameter detection handles it.
            kwargs["strategy"] = DDPStrategy(find_unused_parameters=True)
        if config.get("enable_progress_bar") is False and config.get("callbacks"):
            # --trainer.enable_progress_bar=false wins over a progress bar that a config lists
            config["callbacks"] = [c for c in config["callbacks"] if not isinstance(c, ProgressBar)]
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
