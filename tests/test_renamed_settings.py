"""Settings renamed since earlier versions (dfgen.settings.RENAMED_SETTINGS, REPLACED_SETTINGS):
a checkpoint that saved an old name resumes and loads under the new one, and an old name given
in a config or on the command line is one line that says what replaced it."""

from __future__ import annotations

import pytest
import torch
import yaml

from dfgen.settings import RENAMED_SETTINGS, renamed_settings
from lightning_modules import DomainIntersectionDifference
from lightning_modules.cli import cli_main
from tests.helpers import REPO
from tests.methods import METHODS, fit, load


def test_every_renamed_setting_is_a_setting_of_some_method_now():
    from lightning_modules import HPVAEGAN, SemanticSegmenter

    settings = set()
    for method in (DomainIntersectionDifference, HPVAEGAN, SemanticSegmenter):
        settings |= set(method.__init__.__code__.co_varnames)
    assert set(RENAMED_SETTINGS.values()) <= settings
    assert not set(RENAMED_SETTINGS) & settings
    assert renamed_settings({"critic_lr": 1.0, "lr": 2.0}) == {"lr_critic": 1.0, "lr": 2.0}


@pytest.mark.slow
def test_a_checkpoint_with_an_old_name_resumes_and_loads_under_the_new_one(tiny_runs, tmp_path):
    config = tiny_runs.config("domain_intersection")
    checkpoint = load(tiny_runs.reference("domain_intersection"))
    assert checkpoint["hyper_parameters"]["lr_critic"] != 3e-4
    checkpoint["hyper_parameters"]["critic_lr"] = 3e-4  # as an earlier version saved it
    del checkpoint["hyper_parameters"]["lr_critic"]
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)

    assert DomainIntersectionDifference.load_from_checkpoint(old, map_location="cpu").hparams.lr_critic == 3e-4
    root = tmp_path / "resumed"
    more = METHODS["domain_intersection"].steps(checkpoint["iteration_progress"]["iteration"] + 1)
    fit(config, root, f"--ckpt_path={old}", f"--trainer.max_steps={more}")
    resumed = load(root / "checkpoints" / "last.ckpt")
    assert resumed["hyper_parameters"]["lr_critic"] == 3e-4  # (the optimizers' states are the checkpoint's)


@pytest.mark.parametrize(
    "config, setting, says",
    [
        ("domain_intersection/smoke.yaml", "--model.critic_lr=1e-3", "`critic_lr` is now lr_critic"),
        ("singan/smoke.yaml", "--data.sample_seed=1", "predict_seed (the first predicted sample)"),
        ("padain_segmentation/smoke.yaml", "--data.test_size=[64,32]", "test_shape, as (height, width)"),
    ],
)
def test_an_old_name_on_the_command_line_says_what_replaced_it(config, setting, says, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as exited:
        cli_main(["fit", "--config", f"configs/{config}", setting, f"--trainer.default_root_dir={tmp_path}"])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], lines


def test_an_old_class_in_a_config_file_says_what_replaced_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    config = yaml.safe_load((REPO / "configs" / "singan" / "smoke.yaml").read_text())
    for callback in config["trainer"]["callbacks"]:
        callback["class_path"] = callback["class_path"].replace("IterationProgressBar", "PyramidProgressBar")
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit):
        cli_main(["fit", "--config", str(path), f"--trainer.default_root_dir={tmp_path / 'run'}"])
    assert "now callbacks.IterationProgressBar" in capsys.readouterr().err
