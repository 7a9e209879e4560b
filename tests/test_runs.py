"""Runs stopped in every way a run stops, resumed with `--ckpt_path last`, end bit-identical to an
uninterrupted run: SinGAN, structural analogy, HP-VAE-GAN, domain intersection and the classifier.

Each method runs a tiny copy of its smoke config (a few iterations per scale, a checkpoint every
2 iterations named by iteration). A run is stopped after iteration S, at a scale/level boundary (an
epoch's end for the classifier, a validation point for domain intersection) or in the middle of one:
by `--trainer.max_steps`, by setting `trainer.should_stop` as `max_time`'s Timer does, by SIGINT and
SIGTERM sent to the process in the middle of iteration S (before its last optimizer step) and by
kill -9. The stopped run's last.ckpt must hold exactly S iterations (never half of one); the run
resumed from `last` must end with the weights, buffers (noise amplitudes, BatchNorm statistics),
optimizer and LR-schedule states and random-generator states of the uninterrupted run, and every
periodic checkpoint must be there, the resumed run keeping the period's phase. A representative
pair per method is in the fast tier, the whole matrix in the slow one.
"""

from __future__ import annotations

import csv
import importlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import lightning
import pytest
import torch
import yaml

from datamodules.cifar import CLASS_NAMES
from lightning_modules import HPVAEGAN, DomainIntersectionDifference, ImageClassifier, SinGAN, StructuralAnalogy
from lightning_modules.cli import RunLock, cli_main
from synthetic import pattern_image, write_cifar, write_image
from tests.helpers import REPO, TinyClassifierNet, run_cli, run_cli_subprocess

PERIOD = 2  # iterations between periodic checkpoints


@dataclass(frozen=True)
class Method:
    smoke: str  # the smoke config the tiny config is made from
    model: dict  # model settings that make it tiny
    data: dict
    trainer: dict
    boundary: int  # a stop after this many iterations ends a scale, level, epoch or validation period
    middle: int  # ... and this one does not
    vae_iterations: int = 0  # HP-VAE-GAN: its first iterations make 1 optimizer step
    steps_per_iteration: int = 1

    def steps(self, iterations: int) -> int:
        """Optimizer steps (what `trainer.max_steps` counts) after `iterations` iterations."""
        vae = min(iterations, self.vae_iterations)
        return vae + (iterations - vae) * self.steps_per_iteration


# fmt: off
METHODS = {
    # 3 scales of 2 iterations; 6 optimizer steps per iteration (3 critic, 3 generator)
    "singan": Method(
        "singan/smoke.yaml", {"iters_per_scale": 2}, {"max_size": 20}, {}, boundary=4, middle=5, steps_per_iteration=6
    ),
    # 4 scales of 2 iterations; a critic step and a generator step per iteration
    "analogy": Method(
        "structural_analogy/smoke.yaml", {"iters_per_scale": 2}, {"image_size": 20}, {}, boundary=4, middle=5,
        steps_per_iteration=2,
    ),
    # 2 VAE levels (1 step per iteration) then 3 GAN levels (critic, generator), 2 iterations each
    "hp_vae_gan": Method(
        "hp_vae_gan/smoke.yaml", {"iters_per_scale": 2}, {}, {}, boundary=4, middle=5, vae_iterations=4,
        steps_per_iteration=2,
    ),
    # 6 iterations (autoencoder step, critic step), validation every 3
    "domain_intersection": Method(
        "domain_intersection/smoke.yaml", {"iterations": 6}, {}, {"val_check_interval": 3}, boundary=3, middle=5,
        steps_per_iteration=2,
    ),
    # 2 epochs of 3 batches of 8, pAdaIN firing at p = 0.5 in a tiny network
    "classifier": Method(
        "padain/smoke.yaml",
        {"padain_p": 0.5, "milestones": [1], "network": {"class_path": "tests.helpers.TinyClassifierNet"}},
        {"batch_size": 8}, {}, boundary=3, middle=5,
    ),
}
# fmt: on
STOPS = ("max_steps", "max_time", "SIGINT", "SIGTERM")
FAST = {("singan", "SIGINT", "middle"), ("singan", "max_steps", "boundary"), ("analogy", "SIGTERM", "boundary"),
        ("hp_vae_gan", "max_time", "boundary"), ("hp_vae_gan", "SIGINT", "middle"),
        ("domain_intersection", "SIGTERM", "middle"), ("classifier", "SIGINT", "middle"),
        ("classifier", "max_steps", "boundary")}  # fmt: skip
PROGRESS_KEYS = ("pyramid_progress", "iteration_progress", "padain_generators")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks gain nothing from a second thread; every run here, and the killed subprocess
    (OMP_NUM_THREADS), computes with one, so results agree bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def configs(tmp_path_factory) -> dict[str, Path]:
    """The tiny config of every method, with the classifier's generated CIFAR folder."""
    folder = tmp_path_factory.mktemp("configs")
    cifar = write_cifar(folder / "cifar", "cifar10", train=24, test=8)
    paths = {}
    for name, method in METHODS.items():
        config = yaml.safe_load((REPO / "configs" / method.smoke).read_text())
        config["model"]["init_args"] |= method.model
        config["data"]["init_args"] |= method.data | ({"data_dir": str(cifar)} if name == "classifier" else {})
        for key in ("path", "path_a", "path_b"):  # the assets, wherever the tests run from
            if key in config["data"]["init_args"]:
                config["data"]["init_args"][key] = str(REPO / config["data"]["init_args"][key])
        checkpoint = {"every_n_iterations": PERIOD, "save_top_k": -1, "filename": "{iteration}"}
        config["trainer"] |= method.trainer | {"logger": False, "enable_progress_bar": False, "num_sanity_val_steps": 0}
        config["trainer"]["callbacks"] = [{"class_path": "callbacks.ResumableCheckpoint", "init_args": checkpoint}]
        paths[name] = folder / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(config))
    return paths


def fit(config: Path, root: Path, *extra: str) -> object:
    return run_cli("fit", "--config", str(config), f"--trainer.default_root_dir={root}", *extra)


@pytest.fixture(scope="module")
def reference(configs, tmp_path_factory):
    """The path of a method's uninterrupted run's last.ckpt, trained on first use."""
    runs = {}

    def last(name: str) -> Path:
        if name not in runs:
            root = tmp_path_factory.mktemp(f"{name}_uninterrupted")
            fit(configs[name], root)
            runs[name] = root / "checkpoints" / "last.ckpt"
        return runs[name]

    return last


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)  # a checkpoint this test wrote


def iterations_of(checkpoint: dict) -> int:
    for key in ("pyramid_progress", "iteration_progress"):
        if key in checkpoint:
            return checkpoint[key]["iteration"]
    return checkpoint["global_step"]  # the classifier: one optimizer step per iteration


def assert_same(expected: object, actual: object, where: str) -> None:
    """Bit-for-bit equality of nested checkpoint contents."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor) and expected.dtype == actual.dtype, where
        assert torch.equal(expected, actual), where
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and expected.keys() == actual.keys(), where
        for key in expected:
            assert_same(expected[key], actual[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)) and len(expected) == len(actual), where
        for index, (e, a) in enumerate(zip(expected, actual)):
            assert_same(e, a, f"{where}[{index}]")
    else:
        assert expected == actual, where


def assert_same_run(expected: dict, actual: dict) -> None:
    """Weights and buffers, optimizer and LR-schedule states, iteration counters and random states."""
    for key in ("state_dict", "optimizer_states", "lr_schedulers", *PROGRESS_KEYS):
        assert (key in expected) == (key in actual), key
        if key in expected:
            assert_same(expected[key], actual[key], key)


def stop_arguments(method: Method, stop: str, iterations: int) -> list[str]:
    """Command-line arguments that stop a run after `iterations` iterations."""
    if stop == "max_steps":
        return [f"--trainer.max_steps={method.steps(iterations)}"]
    if stop == "max_time":
        return ["--trainer.callbacks+=tests.helpers.StopAtIteration", f"--trainer.callbacks.iteration={iterations}"]
    last_step = method.steps(iterations) - method.steps(iterations - 1)  # the signal comes before it
    return [
        "--trainer.callbacks+=tests.helpers.SignalAt", f"--trainer.callbacks.iteration={iterations - 1}",
        f"--trainer.callbacks.signal={stop}", f"--trainer.callbacks.optimizer_step={last_step}",
    ]  # fmt: skip


def periodic_checkpoints(root: Path) -> list[int]:
    return sorted(int(path.stem.split("=")[1]) for path in (root / "checkpoints").glob("iteration=*.ckpt"))


def stop_resume_and_compare(name: str, stop: str, position: str, configs, reference, root: Path) -> None:
    method, config = METHODS[name], configs[name]
    iterations = getattr(method, position)
    if stop in ("SIGINT", "SIGTERM"):
        with pytest.raises(SystemExit) as stopped:
            fit(config, root, *stop_arguments(method, stop, iterations))
        assert stopped.value.code == 128 + getattr(signal, stop)  # 130, 143: a scheduler sees the stop
    else:
        fit(config, root, *stop_arguments(method, stop, iterations))
    assert iterations_of(load(root / "checkpoints" / "last.ckpt")) == iterations  # the iteration finished, then saved
    fit(config, root, "--ckpt_path=last")
    expected = load(reference(name))
    assert_same_run(expected, load(root / "checkpoints" / "last.ckpt"))
    total = iterations_of(expected)
    # every periodic checkpoint is there, the resumed run's in the same phase (validation adds its own)
    assert set(range(PERIOD, total + 1, PERIOD)) <= set(periodic_checkpoints(root))


MATRIX = [
    pytest.param(name, stop, position, marks=() if (name, stop, position) in FAST else pytest.mark.slow)
    for name in METHODS
    for stop in STOPS
    for position in ("boundary", "middle")
]


@pytest.mark.parametrize("name, stop, position", MATRIX)
def test_a_stopped_run_resumes_bit_identically(name, stop, position, configs, reference, tmp_path):
    stop_resume_and_compare(name, stop, position, configs, reference, tmp_path)


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=() if name == "singan" else pytest.mark.slow) for name in METHODS]
)
def test_kill_9_loses_only_the_iterations_after_the_last_periodic_checkpoint(name, configs, reference, tmp_path):
    """kill -9 in the middle of an iteration: last.ckpt is the last periodic checkpoint (written
    whole), and resuming from it gives the uninterrupted run."""
    method = METHODS[name]
    killed = run_cli_subprocess(
        "fit", "--config", str(configs[name]), f"--trainer.default_root_dir={tmp_path}",
        *stop_arguments(method, "SIGKILL", method.middle), env={"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    lost_since = method.middle - 1 - (method.middle - 1) % PERIOD  # the last periodic checkpoint before the kill
    assert iterations_of(load(tmp_path / "checkpoints" / "last.ckpt")) == lost_since
    assert not list((tmp_path / "checkpoints").glob("*.partial"))
    fit(configs[name], tmp_path, "--ckpt_path=last")
    assert_same_run(load(reference(name)), load(tmp_path / "checkpoints" / "last.ckpt"))


def test_a_config_without_a_checkpoint_callback_gets_one_that_resumes(configs, reference, tmp_path):
    """Lightning's default ModelCheckpoint would save only at the epoch's end, which a streamed run
    reaches only at its very end: the CLI gives such a config a ResumableCheckpoint instead."""
    config = yaml.safe_load(configs["singan"].read_text())
    config["trainer"]["callbacks"] = []
    path = tmp_path / "no_checkpoint_callback.yaml"
    path.write_text(yaml.safe_dump(config))
    root, method = tmp_path / "run", METHODS["singan"]
    fit(path, root, *stop_arguments(method, "max_steps", method.middle))
    assert iterations_of(load(root / "checkpoints" / "last.ckpt")) == method.middle
    fit(path, root, "--ckpt_path=last")
    assert_same_run(load(reference("singan")), load(root / "checkpoints" / "last.ckpt"))


# ---------------------------------------------------------------------- the command around a run
def test_ckpt_path_last_restores_the_files_settings_and_says_which_it_replaced(configs, tmp_path, capsys):
    fit(configs["singan"], tmp_path, "--model.iters_per_scale=3", f"--trainer.max_steps={6 * 4}")  # 4 of 9 iterations
    capsys.readouterr()
    cli = fit(configs["singan"], tmp_path, "--ckpt_path=last")  # the config says 2 iterations per scale
    assert cli.model.hparams.iters_per_scale == 3 and cli.model.iteration == 9
    said = capsys.readouterr().err
    assert f"--ckpt_path {tmp_path / 'checkpoints' / 'last.ckpt'}: " in said
    assert "the checkpoint's model settings replace the given iters_per_scale=2->3" in said


def test_the_requeue_signal_saves_at_an_iteration_end_requeues_and_the_next_start_resumes(
    configs, reference, tmp_path, monkeypatch
):
    """SIGUSR1 (SLURM's warning before the time limit): last.ckpt at the end of the iteration, then
    `scontrol requeue <job>`; the requeued job's `--ckpt_path last` continues the same run."""
    scontrol, calls = tmp_path / "bin" / "scontrol", tmp_path / "scontrol_calls"
    scontrol.parent.mkdir()
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{scontrol.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    root = tmp_path / "run"
    with pytest.raises(SystemExit) as stopped:
        fit(configs["singan"], root, *stop_arguments(METHODS["singan"], "SIGUSR1", 3))
    assert stopped.value.code == 128 + signal.SIGUSR1
    assert calls.read_text().split() == ["requeue", "4242"]
    assert iterations_of(load(root / "checkpoints" / "last.ckpt")) == 3
    fit(configs["singan"], root, "--ckpt_path=last")
    assert_same_run(load(reference("singan")), load(root / "checkpoints" / "last.ckpt"))


KILLED_LOCK_HOLDER = """
import fcntl, os, sys
handle = open(os.path.join(sys.argv[1], "fit.lock"), "a+")
fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.kill(os.getpid(), 9)
"""


def test_a_second_fit_into_a_running_fits_folder_refuses_and_a_killed_fit_leaves_no_lock(configs, tmp_path, capsys):
    root = tmp_path / "run"
    with RunLock(root), pytest.raises(SystemExit) as refused:  # the lock a running fit holds
        cli_main(["fit", "--config", str(configs["singan"]), f"--trainer.default_root_dir={root}"])
    assert refused.value.code == 1
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and f"error: {root}: another `fit` is writing into this folder (pid {os.getpid()}" in said[0]
    assert not (root / "checkpoints").exists()
    holder = subprocess.run([sys.executable, "-c", KILLED_LOCK_HOLDER, str(root)], check=False)
    assert holder.returncode == -signal.SIGKILL
    with RunLock(root):  # the killed holder's lock went with it
        pass


@pytest.mark.parametrize(
    "argument, status, start",
    [
        ("--model.iters_per_scale=abc", 2, "error: model.iters_per_scale: Expected a <class 'int'>. Got value: abc"),
        ("--trainer.max_stepz=3", 2, "error: unrecognized arguments: --trainer.max_stepz=3"),
        ("--data.path=nope.png", 1, "error: nope.png: no such image file"),
    ],
)
def test_an_expected_error_is_one_line_and_a_nonzero_status(argument, status, start, configs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        cli_main(["fit", "--config", str(configs["singan"]), f"--trainer.default_root_dir={tmp_path}", argument])
    assert exited.value.code == status
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and said[0].startswith(start) and "DFGEN_TRACEBACK=1" in said[0]
    assert not list(tmp_path.iterdir())  # nothing written


def test_dfgen_traceback_raises_the_error_itself(configs, monkeypatch):
    monkeypatch.setenv("DFGEN_TRACEBACK", "1")
    with pytest.raises(ValueError, match="nope.png: no such image file"):
        cli_main(["fit", "--config", str(configs["singan"]), "--data.path=nope.png"])


def test_predict_and_test_refuse_to_run_an_untrained_model(configs, tmp_path, capsys):
    command = ["--config", str(configs["singan"]), f"--trainer.default_root_dir={tmp_path}"]
    for arguments in (["predict", *command], ["test", *command], ["predict", *command, "--ckpt_path=last"]):
        with pytest.raises(SystemExit) as exited:
            cli_main(arguments)
        assert exited.value.code == 1
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 3
    assert said[0].startswith("error: predict needs --ckpt_path") and said[1].startswith("error: test needs")
    assert said[2].startswith(f"error: --ckpt_path last: no last*.ckpt under {tmp_path / 'checkpoints'}")
    assert not list(tmp_path.iterdir())


def test_predict_never_writes_beside_an_earlier_predicts_files(configs, reference, tmp_path, capsys):
    predict = [
        "predict", "--config", str(configs["singan"]), f"--ckpt_path={reference('singan')}",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.callbacks+=callbacks.ImagePredictionWriter",
    ]  # fmt: skip
    run_cli(*predict, "--data.num_samples=2")
    run_cli(*predict, "--data.num_samples=1")
    first, second = (sorted(p.name for p in (tmp_path / name).iterdir()) for name in ("predictions", "predictions_2"))
    assert first == ["grid.png", "reconstruction.png", "sample_00000.png", "sample_00001.png"]
    assert second == ["grid.png", "reconstruction.png", "sample_00000.png"]
    said = capsys.readouterr().out
    assert (
        f"{tmp_path / 'predictions'} holds an earlier predict's files; writing to {tmp_path / 'predictions_2'}" in said
    )
    with pytest.raises(ValueError, match="predictions: output_dir holds an earlier predict's files"):
        run_cli(*predict, f"--trainer.callbacks.output_dir={tmp_path / 'predictions'}")
    assert sorted(p.name for p in (tmp_path / "predictions").iterdir()) == first  # untouched


def test_classifier_predict_writes_the_classes_and_scores_of_an_image_folder(configs, reference, tmp_path):
    folder = tmp_path / "images"
    for index, name in enumerate(("a.png", "b.jpg", "more/c.png")):
        write_image(folder / name, pattern_image(40 + index, 36, seed=index))
    run_cli(
        "predict", "--config", str(configs["classifier"]), f"--ckpt_path={reference('classifier')}",
        f"--trainer.default_root_dir={tmp_path}", f"--data.predict_dir={folder}",
        "--trainer.callbacks+=callbacks.ClassPredictionWriter", "--trainer.callbacks.top_k=3",
    )  # fmt: skip
    rows = list(csv.DictReader((tmp_path / "predictions" / "predictions.csv").open()))
    assert [row["file"] for row in rows] == ["a.png", "b.jpg", "more/c.png"]
    for row in rows:
        classes = [int(row[f"class_{k}"]) for k in (1, 2, 3)]
        scores = [float(row[f"score_{k}"]) for k in (1, 2, 3)]
        assert len(set(classes)) == 3 and all(0 <= c < 10 for c in classes)
        assert [row[f"name_{k}"] for k in (1, 2, 3)] == [CLASS_NAMES["cifar10"][c] for c in classes]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6


def test_one_shot_translation_phase_one_predict_writes_b_images_and_reconstructions(tmp_path):
    config = str(REPO / "configs" / "one_shot_translation" / "smoke_phase1.yaml")
    fit(config, tmp_path, "--model.iterations=2")
    run_cli("predict", "--config", config, "--ckpt_path=last", f"--trainer.default_root_dir={tmp_path}",
            "--data.num_eval=2")  # fmt: skip
    names = sorted(p.name for p in (tmp_path / "predictions").iterdir())
    assert names == ["grid.png", "test_00000_b.png", "test_00000_bb.png", "test_00001_b.png", "test_00001_bb.png"]


# ---------------------------------------------------------------------- checkpoints outside a run
@pytest.mark.parametrize("name", METHODS)
def test_a_checkpoint_loads_without_a_trainer(name, reference):
    classes = {"singan": SinGAN, "analogy": StructuralAnalogy, "hp_vae_gan": HPVAEGAN,
               "domain_intersection": DomainIntersectionDifference, "classifier": ImageClassifier}  # fmt: skip
    network = {"network": TinyClassifierNet()} if name == "classifier" else {}  # a network given by class_path
    model = classes[name].load_from_checkpoint(reference(name), map_location="cpu", **network)
    assert_same(load(reference(name))["state_dict"], model.state_dict(), name)


@pytest.mark.parametrize(
    "config",
    ["content_transfer/smoke.yaml", "padain_segmentation/smoke.yaml", "one_shot_translation/smoke_phase2.yaml"],
)
def test_the_other_methods_checkpoints_load_without_a_trainer(config, tmp_path):
    settings = yaml.safe_load((REPO / "configs" / config).read_text())["model"]
    module_name, class_name = settings["class_path"].rsplit(".", 1)
    cls = getattr(importlib.import_module(module_name), class_name)
    model = cls(**settings["init_args"])
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": lightning.__version__}, path)  # fmt: skip
    assert_same(model.state_dict(), cls.load_from_checkpoint(path).state_dict(), config)
