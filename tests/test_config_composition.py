"""A config file builds on others through a top-level `base:` (lightning_modules/cli.py,
`composed_config`): one `--config` gives the base's settings with the file's own on top,
mappings merged key by key and lists replaced, paths relative to the including file, and
every error names the file at fault."""

from pathlib import Path

import pytest
import yaml

from lightning_modules.cli import BASE_KEY, cli_main, config_settings, merged_settings
from tests.helpers import run_cli
from tests.test_configs import resolved_config

BASE = """\
seed_everything: 0
model:
  class_path: lightning_modules.SinGAN
  init_args: {iters_per_scale: 10, base_width: 8, max_width: 16}
data:
  class_path: datamodules.SingleImageDataModule
  init_args: {path: assets/hubble_deep_field.jpg, max_size: 32, min_size: 12}
trainer:
  default_root_dir: runs/base
  callbacks:
    - class_path: callbacks.SampleGrid
      init_args: {every_n_steps: 0, num_samples: 4}
    - class_path: callbacks.ResumableCheckpoint
      init_args: {every_n_iterations: 10, dirpath: "${trainer.default_root_dir}/kept"}
"""
CHECKPOINT = "callbacks.ResumableCheckpoint"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def base(tmp_path) -> Path:
    return write(tmp_path / "shared" / "_base.yaml", BASE)


def test_a_task_inherits_its_base_and_overrides_single_keys(base, tmp_path, capsys):
    task = write(
        tmp_path / "method" / "task.yaml",
        "base: ../shared/_base.yaml\nmodel:\n  init_args: {iters_per_scale: 3}\n"
        "trainer: {default_root_dir: runs/task}\n",
    )
    resolved = resolved_config(capsys, task)
    model = resolved["model"]["init_args"]
    assert (model["iters_per_scale"], model["base_width"], model["max_width"]) == (3, 8, 16)
    assert resolved["data"]["init_args"]["max_size"] == 32
    assert resolved["trainer"]["default_root_dir"] == "runs/task"
    callbacks = resolved["trainer"]["callbacks"]
    assert [callback["class_path"] for callback in callbacks] == ["callbacks.SampleGrid", CHECKPOINT]
    # an interpolation in the base sees the task's value: it resolves after the merge
    assert callbacks[1]["init_args"]["dirpath"] == "runs/task/kept"


def test_a_script_reads_a_task_with_its_base(base, tmp_path, capsys):
    """config_settings, for benchmarks and scripts that read a config themselves: the settings the
    CLI resolves (a task's file alone lacks its base's; a benchmark that read it so evaluated the
    wrong test pairs)."""
    task = write(tmp_path / "method" / "task.yaml", "base: ../shared/_base.yaml\ndata:\n  init_args: {max_size: 20}\n")
    data = config_settings(task)["data"]["init_args"]
    assert data == {"path": "assets/hubble_deep_field.jpg", "max_size": 20, "min_size": 12}
    resolved = resolved_config(capsys, task)["data"]["init_args"]
    assert {key: resolved[key] for key in data} == data
    assert config_settings(base) == yaml.safe_load(BASE)  # a file without a base, as it is


def test_lists_are_replaced_and_later_bases_win(base, tmp_path, capsys):
    write(tmp_path / "shared" / "_short.yaml", "base: _base.yaml\nmodel:\n  init_args: {iters_per_scale: 5}\n")
    write(tmp_path / "shared" / "_wide.yaml", "model:\n  init_args: {iters_per_scale: 7, max_width: 32}\n")
    task = write(
        tmp_path / "task.yaml",
        "base: [shared/_short.yaml, shared/_wide.yaml]\n"
        "trainer:\n  callbacks:\n    - class_path: callbacks.ResumableCheckpoint\n",
    )
    resolved = resolved_config(capsys, task)
    model = resolved["model"]["init_args"]
    assert (model["iters_per_scale"], model["max_width"], model["base_width"]) == (7, 32, 8)
    assert [callback["class_path"] for callback in resolved["trainer"]["callbacks"]] == [CHECKPOINT]


def test_a_file_without_base_and_a_second_config_read_as_before(base, tmp_path, capsys):
    variant = write(tmp_path / "variant.yaml", "model:\n  init_args: {base_width: 4}\n")
    resolved = resolved_config(capsys, base, variant)
    assert resolved["model"]["init_args"]["base_width"] == 4
    assert resolved["trainer"]["callbacks"][1]["init_args"]["dirpath"] == "runs/base/kept"


def test_merged_settings_merges_mappings_and_replaces_other_values():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert merged_settings(base, {"a": {"c": [3]}, "d": None}) == {"a": {"b": 1, "c": [3]}, "d": None}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # the base is left as it was


@pytest.mark.parametrize(
    "files, at_fault, expected",
    [
        ({"task.yaml": "base: missing.yaml\n"}, "task.yaml", "missing.yaml is not a file"),
        ({"task.yaml": "base: a.yaml\n", "a.yaml": "base: [b.yaml]\n", "b.yaml": "base: a.yaml\n"}, "b.yaml", "cycle"),
        ({"task.yaml": "base: task.yaml\n"}, "task.yaml", "cycle"),
        ({"task.yaml": "base: {file: a.yaml}\n"}, "task.yaml", "must be a config file's path"),
        ({"task.yaml": "base: a.yaml\n", "a.yaml": "model: [unclosed\n"}, "task.yaml", "a.yaml cannot be read"),
        ({"task.yaml": "base: a.yaml\n", "a.yaml": "- a list\n"}, "task.yaml", "is not a mapping"),
    ],
    ids=["missing", "cycle", "self", "not_a_path", "bad_yaml", "not_a_mapping"],
)
def test_a_bad_base_is_one_line_naming_the_file(files, at_fault, expected, tmp_path, capsys):
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--config", str(tmp_path / "task.yaml"), "--print_config"])
    assert exit_info.value.code in (1, 2)
    message = capsys.readouterr().err.strip()
    assert message.startswith(f"error: {tmp_path / at_fault}: "), message
    assert expected in message and "\n" not in message, message


def test_a_composed_config_trains_and_saves_its_merged_settings(base, tmp_path):
    root = tmp_path / "run"
    task = write(
        tmp_path / "task.yaml",
        f"base: shared/_base.yaml\nmodel:\n  init_args: {{iters_per_scale: 2}}\ndata:\n  init_args: {{max_size: 16}}\n"
        f"trainer: {{accelerator: cpu, logger: false, default_root_dir: {root}}}\n",
    )
    run_cli("fit", "--config", str(task))
    assert (root / "kept" / "last.ckpt").is_file()  # the base's checkpoint folder, in the task's run folder
    saved = yaml.safe_load(next(root.rglob("config.yaml")).read_text())
    assert BASE_KEY not in saved and saved["model"]["init_args"]["iters_per_scale"] == 2
    assert saved["trainer"]["callbacks"][1]["init_args"]["dirpath"] == f"{root}/kept"
