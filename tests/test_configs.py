"""Every config in configs/ parses with the real CLI (without training or reading data)."""

import pytest
import yaml

from lightning_modules.cli import build_cli
from tests.helpers import REPO

CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.yaml") if p.parent.name != "sweeps")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_parses(path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_cli(["fit", "--config", str(path), "--print_config"])
    assert exit_info.value.code in (0, None)
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["model"]["class_path"].startswith("lightning_modules.")
    assert resolved["data"]["class_path"].startswith("datamodules.")
