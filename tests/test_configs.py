"""Every config in configs/ parses with the real CLI (without training or reading data); a variant
config (configs/<method>/variants/) parses given after its method's smoke config and sets what it says."""

import pytest
import yaml

from lightning_modules.cli import build_cli
from tests.helpers import REPO

CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.yaml") if p.parent.name not in ("sweeps", "variants"))
VARIANTS = sorted((REPO / "configs").rglob("variants/*.yaml"))


def resolved_config(capsys, *paths) -> dict:
    arguments = [argument for path in paths for argument in ("--config", str(path))]
    with pytest.raises(SystemExit) as exit_info:
        build_cli(["fit", *arguments, "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_parses(path, capsys):
    resolved = resolved_config(capsys, path)
    assert resolved["model"]["class_path"].startswith("lightning_modules.")
    assert resolved["data"]["class_path"].startswith("datamodules.")


@pytest.mark.parametrize("path", VARIANTS, ids=lambda p: f"{p.parents[1].name}/{p.stem}")
def test_variant_config_sets_its_options_on_top_of_a_task_config(path, capsys):
    resolved = resolved_config(capsys, path.parents[1] / "smoke.yaml", path)
    for name, value in yaml.safe_load(path.read_text())["model"]["init_args"].items():
        assert resolved["model"]["init_args"][name] == value, name
