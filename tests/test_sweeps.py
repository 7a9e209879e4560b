"""W&B sweep files: every swept value parses, and one trial runs end to end offline."""

import importlib
from pathlib import Path

import pytest
import yaml
from lightning.pytorch import LightningDataModule, LightningModule

from lightning_modules.cli import DFGenCLI
from tests.helpers import REPO, run_cli_subprocess

SWEEPS = sorted((REPO / "configs" / "sweeps").glob("*.yaml"))


class ParsedModelOnly(DFGenCLI):
    """The real CLI's parsing; then only the model is built (its constructor checks the values),
    not the DataModule, whose dataset need not exist here, nor the trainer."""

    def instantiate_classes(self) -> None:
        module, _, name = self.config["model"]["class_path"].rpartition(".")
        getattr(importlib.import_module(module), name)(**self.config["model"]["init_args"].as_dict())


def trial_args(sweep: dict, values: dict) -> list[str]:
    """The command a W&B agent runs, after `fit`, with `${args}` expanded as the agent does."""
    command = sweep["command"]
    args = command[command.index("fit") + 1 :]
    expanded = []
    for arg in args:
        expanded += [f"--{name}={value}" for name, value in values.items()] if arg == "${args}" else [arg]
    return expanded


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_every_swept_value_is_accepted_by_the_cli(path, monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    sweep = yaml.safe_load(path.read_text())
    assert "${args}" in sweep["command"] and "${args_no_hyphens}" not in sweep["command"]
    for name, spec in sweep["parameters"].items():
        for value in spec["values"]:
            cli = ParsedModelOnly(
                LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                auto_configure_optimizers=False, run=False,
                args=[*trial_args(sweep, {name: value}), f"--trainer.default_root_dir={tmp_path}"],
            )  # fmt: skip
            section, key = name.split(".", 1)
            assert cli.config[section]["init_args"][key] == value, (name, value)


@pytest.mark.slow  # two command-line runs in interpreters of their own
def test_a_sweep_trial_runs_end_to_end_with_wandb_offline(tmp_path):
    sweep = yaml.safe_load((REPO / "configs" / "sweeps" / "singan.yaml").read_text())
    values = {name: spec["values"][0] for name, spec in sweep["parameters"].items()}
    values["data.max_size"] = 32  # tiny: the rest of the trial is the sweep's own command line
    tiny = [
        "--model.iters_per_scale=3", "--model.base_width=8", "--model.max_width=8", "--data.min_size=12",
        "--trainer.accelerator=cpu", "--trainer.callbacks.feature_extractor=tests.helpers.TinySpatialFeatures",
        "--trainer.callbacks.num_samples=3", f"--trainer.default_root_dir={tmp_path}",
        "--trainer.logger.offline=true",
    ]  # fmt: skip
    for _ in range(2):  # a second run in the same folder must not collide with the first's config
        result = run_cli_subprocess("fit", *trial_args(sweep, values), *tiny, env={"WANDB_MODE": "offline"})
        assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(Path(tmp_path, "wandb").glob("offline-run-*"))
    assert len(runs) == 2
    history = next(runs[-1].glob("*.wandb")).read_bytes()  # the offline run's record
    assert b"train/sifid_mean" in history and b"samples/reconstruction" in history


@pytest.mark.slow  # two command-line runs in interpreters of their own
def test_resuming_continues_the_same_wandb_run(tiny_runs, tmp_path):
    common = [
        "--config", str(tiny_runs.config("singan")), "--trainer.logger=WandbLogger",
        "--trainer.logger.offline=true", f"--trainer.default_root_dir={tmp_path}",
    ]  # fmt: skip
    first = run_cli_subprocess("fit", *common, "--trainer.max_steps=24", env={"WANDB_MODE": "offline"})
    assert first.returncode == 0, first.stderr[-3000:]
    run_id = (tmp_path / "wandb_run_id").read_text()
    second = run_cli_subprocess("fit", *common, "--ckpt_path=last", env={"WANDB_MODE": "offline"})
    assert second.returncode == 0, second.stderr[-3000:]
    runs = sorted(Path(tmp_path, "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(run.name.endswith(run_id) for run in runs)
