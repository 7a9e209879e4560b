"""The method contract (dfgen/contract.py): every method provides what the callbacks of its
configs need, and a callback given a module or DataModule without it fails at setup with one
line that names the callback, the class and the missing member; steps that return some of a
callback's keys but not all fail naming the missing key."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import torch
import yaml
from jsonargparse import ArgumentParser
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DataLoader

import callbacks
from dfgen.contract import (
    ClassNames,
    ContractError,
    CountsIterations,
    ShowsProgress,
    TranslationOutputs,
    provides,
    require,
    step_outputs,
)
from lightning_modules.cli import config_settings
from tests.helpers import REPO, TinyClassifierNet, TinyFeatures, TinySpatialFeatures, TinyStyleFeatures, ToyImages

# Callbacks that the README and the tests add on the command line (`--trainer.callbacks+=...`)
# to methods whose configs do not list them.
ADDED_ON_THE_COMMAND_LINE = {
    "lightning_modules.SinGAN": ["callbacks.SIFID"],
    "lightning_modules.StructuralAnalogy": ["callbacks.SIFID"],
    "lightning_modules.HPVAEGAN": ["callbacks.VideoSIFID"],
}


def resolve(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def listed_callbacks(trainer: dict) -> list[str]:
    listed = trainer.get("callbacks") or []
    listed = listed if isinstance(listed, list) else [listed]
    return [entry["class_path"] for entry in listed if isinstance(entry, dict) and "class_path" in entry]


def config_uses() -> list[tuple[str, str, str, list[str]]]:
    """(config, model class path, data class path, callback class paths) of every config and sweep."""
    uses = []
    for path in sorted((REPO / "configs").rglob("*.yaml")):
        if path.parent.name == "variants" or path.name.startswith("_"):  # variants and bases: not runs
            continue
        config = config_settings(path)
        if path.parent.name == "sweeps":  # the sweep's program runs a config with callbacks added
            command = config["command"]
            path = REPO / command[command.index("--config") + 1]
            added = [arg.split("=", 1)[1] for arg in command if arg.startswith("--trainer.callbacks+=")]
            config = config_settings(path)
        else:
            added = []
        model, data = config["model"]["class_path"], config["data"]["class_path"]
        names = listed_callbacks(config.get("trainer", {})) + added + ADDED_ON_THE_COMMAND_LINE.get(model, [])
        uses.append((str(path.relative_to(REPO)), model, data, names))
    return uses


USES = config_uses()
METHODS = sorted({model for _, model, _, _ in USES})


@pytest.fixture(scope="module")
def smoke_models() -> dict[str, LightningModule]:
    """Every method's model, built by the CLI's parser from its smoke config (no data is read)."""
    models = {}
    for path in sorted((REPO / "configs").glob("*/smoke*.yaml")):
        section = yaml.safe_load(path.read_text())["model"]
        if section["class_path"] in models:
            continue
        parser = ArgumentParser(parser_mode="omegaconf", exit_on_error=False)
        parser.add_subclass_arguments(LightningModule, "model", required=True, fail_untyped=False)
        models[section["class_path"]] = parser.instantiate(parser.parse_object({"model": section})).model
    return models


def test_every_method_has_a_smoke_config(smoke_models):
    assert set(METHODS) <= set(smoke_models)
    assert len(METHODS) == 8


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.rpartition(".")[2])
def test_method_provides_what_the_callbacks_of_its_configs_need(method, smoke_models):
    """`require` raises the contract's own line, which names the config's callback and the missing member."""
    model = smoke_models[method]
    for config, model_path, data_path, names in USES:
        if model_path != method:
            continue
        datamodule_class = resolve(data_path)
        for callback in map(resolve, names):
            for protocol in getattr(callback, "module_needs", ()):
                require(model, protocol, f"{callback.__name__} of {config}")
            for protocol in getattr(callback, "datamodule_needs", ()):  # methods only: checked on the class
                require(datamodule_class, protocol, f"{callback.__name__} of {config}", role="DataModule")
            if callback is callbacks.IterationProgressBar:  # else the config's bar is Lightning's
                assert provides(model, ShowsProgress), (
                    f"{config}: IterationProgressBar, but {method} counts no iterations"
                )


def test_the_configs_exercise_every_protocol_a_callback_needs():
    """The table above is not vacuous: together, the configs need each of these of some method."""
    needed = {
        protocol.__name__
        for _, _, _, names in USES
        for callback in map(resolve, names)
        for protocol in (*getattr(callback, "module_needs", ()), *getattr(callback, "datamodule_needs", ()))
    }
    expected = {"Previews", "SetFidelity", "SingleImageFidelity", "VideoClips", "StyleReferences"}
    assert needed == expected


# ---------------------------------------------------------------------- a callback without its piece
class Bare(LightningModule):
    """A module that provides nothing of the contract; its steps return `outputs`."""

    def __init__(self, outputs: object = None) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.outputs = outputs

    def validation_step(self, batch, batch_idx):
        return self.outputs

    def predict_step(self, batch, batch_idx):
        return self.outputs

    def training_step(self, batch, batch_idx):
        return self.weight.sum() * 0

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(range(2), batch_size=1)


def validate_with(callback, module: LightningModule, tmp_path: Path) -> Trainer:
    trainer = Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[callback], default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.validate(module, ToyImages(num_images=4))
    return trainer


SETUP_FAILURES = [
    (
        lambda: callbacks.SampleGrid(),
        "SampleGrid needs the module to provide Previews (dfgen/contract.py): "
        "preview_images(num_samples: int, seed: int) -> dict[str, Tensor]; Bare has no preview_images",
    ),
    (
        lambda: callbacks.FIDKID(TinyFeatures(), max_samples=4, kid_subset_size=2),
        "FIDKID needs the module to provide SetFidelity (dfgen/contract.py): "
        "fidelity_images(batch: Any, batch_idx: int) -> tuple[Tensor, Tensor]; Bare has no fidelity_images",
    ),
    (
        lambda: callbacks.SIFID(feature_extractor=TinySpatialFeatures()),
        "SIFID needs the module to provide SingleImageFidelity (dfgen/contract.py): "
        "sifid_images(num_samples: int) -> dict[str, tuple[Tensor, Tensor]]; Bare has no sifid_images",
    ),
    (
        lambda: callbacks.VideoDiversity(),
        "VideoDiversity needs the module to provide VideoClips (dfgen/contract.py): "
        "video_metric_clips(num_samples: int) -> tuple[Tensor, Tensor]; Bare has no video_metric_clips",
    ),
    (
        lambda: callbacks.VideoSIFID(feature_extractor=TinySpatialFeatures()),
        "VideoSIFID needs the module to provide VideoClips (dfgen/contract.py): "
        "video_metric_clips(num_samples: int) -> tuple[Tensor, Tensor]; Bare has no video_metric_clips",
    ),
    (
        lambda: callbacks.ContentStyleDistances(TinyStyleFeatures()),
        "ContentStyleDistances needs the DataModule to provide StyleReferences (dfgen/contract.py): "
        "style_references() -> Tensor; ToyImages has no style_references",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("make", "line"), SETUP_FAILURES, ids=[line.split()[0] for _, line in SETUP_FAILURES])
def test_a_callback_without_its_piece_fails_at_setup_naming_it(make, line, tmp_path):
    callback = make()
    with pytest.raises(ContractError) as error:
        validate_with(callback, Bare(), tmp_path)
    assert str(error.value) == line
    assert "\n" not in str(error.value)
    assert error.traceback[-1].name == "require"  # raised by the setup check, not later in a hook


def test_every_callback_that_needs_something_is_in_the_setup_failure_table():
    classes = {name: getattr(callbacks, name) for name in callbacks.__all__}
    needy = {
        name
        for name, cls in classes.items()
        if getattr(cls, "module_needs", ()) or getattr(cls, "datamodule_needs", ())
    }
    tested = {line.split()[0] for _, line in SETUP_FAILURES}
    assert needy == tested


@pytest.mark.parametrize(
    ("callback", "outputs", "line"),
    [
        (
            lambda: callbacks.MeanIoU(num_classes=4), None,
            "MeanIoU needs validation_step to return SegmentationOutputs {'preds', 'target'} (dfgen/contract.py); "
            "Bare.validation_step's result is NoneType",
        ),
        (
            lambda: callbacks.TranslationAccuracy(TinyClassifierNet()), {"translations": torch.zeros(2, 3, 8, 8)},
            "TranslationAccuracy needs validation_step to return TranslationOutputs {'labels', 'translations'} "
            "(dfgen/contract.py); Bare.validation_step's result has no 'labels'",
        ),
        (
            lambda: callbacks.MaskIoU(), {"masks": torch.zeros(2, 1, 8, 8)},
            "MaskIoU needs validation_step to return MaskOutputs {'masks', 'target_masks'} (dfgen/contract.py); "
            "Bare.validation_step's result has no 'target_masks'",
        ),
    ],
    ids=["MeanIoU", "TranslationAccuracy", "MaskIoU"],
)  # fmt: skip
def test_a_step_that_returns_part_of_a_callbacks_keys_fails_naming_the_missing_one(callback, outputs, line, tmp_path):
    with pytest.raises(ContractError) as error:
        validate_with(callback(), Bare(outputs), tmp_path)
    assert str(error.value) == line


def test_a_step_without_any_of_a_callbacks_keys_has_nothing_for_it(tmp_path):
    """One-shot translation's phase 1 returns {}: the accuracy has nothing to measure and logs nothing."""
    callback = callbacks.TranslationAccuracy(TinyClassifierNet())
    validate_with(callback, Bare({}), tmp_path)
    assert callback.last == {}
    outputs = {"sources": torch.zeros(1), "translations": torch.zeros(1), "labels": torch.zeros(1)}
    assert step_outputs(outputs, TranslationOutputs, "x", Bare(), "validation_step") == {
        "translations": outputs["translations"], "labels": outputs["labels"],
    }  # fmt: skip


def test_a_prediction_without_its_keys_fails_before_anything_is_written(tmp_path):
    writer = callbacks.ImagePredictionWriter(output_dir=str(tmp_path / "predictions"))
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[writer])
    expected = (
        r"ImagePredictionWriter needs predict_step to return ImagePrediction \{'images', 'names'\} .*has no 'names'"
    )
    with pytest.raises(ContractError, match=expected):
        trainer.predict(Bare({"images": torch.zeros(1, 3, 4, 4)}), DataLoader(range(1)))
    assert not (tmp_path / "predictions").exists()


def test_sifid_images_must_be_a_dict_of_named_pairs():
    class TupleSIFID(Bare):
        def sifid_images(self, num_samples):
            return torch.zeros(1, 3, 8, 8), torch.zeros(num_samples, 3, 8, 8)

    callback = callbacks.SIFID(num_samples=2, feature_extractor=TinySpatialFeatures())
    with pytest.raises(
        ContractError, match=r"SIFID needs TupleSIFID.sifid_images to return \{name: \(real, generated\)\}"
    ):
        callback.measure(TupleSIFID())


# ---------------------------------------------------------------------- fallbacks, decided at setup
class Counting(Bare):
    """Counts its own iterations and shows its progress."""

    def __init__(self) -> None:
        super().__init__()
        self.iteration = 0
        self.total_iterations = 5
        self.progress_description = "step 0/5"


@pytest.mark.parametrize(
    ("module", "own", "total"), [(Bare, False, 2), (Counting, True, 5)], ids=["lightning_bar", "own_bar"]
)
def test_the_progress_bar_decides_at_setup_whose_progress_it_shows(module, own, total, tmp_path):
    bar = callbacks.IterationProgressBar()
    trainer = Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_model_summary=False, max_epochs=1,
        callbacks=[bar], default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module())
    assert bar._own_progress is own
    assert bar.train_progress_bar.total == total  # the module's own total, or Lightning's count of batches


def test_protocols_are_checked_without_running_properties():
    class Lazy:
        iteration = 0

        @property
        def class_names(self) -> list[str]:
            raise RuntimeError("needs a running trainer")

    assert provides(Lazy(), ClassNames) and provides(Lazy(), CountsIterations)
    assert not provides(None, CountsIterations)
    with pytest.raises(ContractError, match=r"X needs the module to provide ShowsProgress .*; Lazy has no "
                                            r"total_iterations, progress_description$"):  # fmt: skip
        require(Lazy(), ShowsProgress, "X")


def test_callbacks_reach_the_module_and_data_only_through_the_contract():
    """No hasattr/getattr on `pl_module`, `trainer.lightning_module` or `trainer.datamodule` in callbacks/."""
    probes = []
    for path in sorted((REPO / "callbacks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("hasattr", "getattr") and node.args:
                target = ast.unparse(node.args[0])
                if target in ("pl_module", "trainer.lightning_module", "trainer.datamodule"):
                    probes.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    assert not probes
