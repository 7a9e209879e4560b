"""Every config in configs/ parses with the real CLI (without training or reading data); a variant
config (configs/<method>/variants/) parses given after its method's smoke config and sets what it says;
every base (a `_*.yaml` file, not runnable on its own) is the base of some config."""

import pytest
import yaml

from lightning_modules.cli import BASE_KEY, build_cli
from tests.helpers import REPO

CONFIGS = sorted(
    p
    for p in (REPO / "configs").rglob("*.yaml")
    if p.parent.name not in ("sweeps", "variants") and not p.name.startswith("_")
)
VARIANTS = sorted((REPO / "configs").rglob("variants/*.yaml"))
BASES = sorted((REPO / "configs").rglob("_*.yaml"))


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


def test_every_base_is_the_base_of_a_config():
    named = set()
    for path in CONFIGS + BASES:
        bases = yaml.safe_load(path.read_text()).get(BASE_KEY, [])
        named |= {(path.parent / base).resolve() for base in ([bases] if isinstance(bases, str) else bases)}
    assert BASES and not [base for base in BASES if base.resolve() not in named]
