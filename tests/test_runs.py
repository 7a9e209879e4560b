"""Runs stopped in every way a run stops, resumed with `--ckpt_path last`, end bit-identical to an
uninterrupted run: SinGAN, structural analogy, HP-VAE-GAN, domain intersection and the classifier.

Each method runs its tiny config (tests/methods.py: a few iterations per scale, a checkpoint every
2 iterations named by iteration). A run is stopped after iteration S, at a scale/level boundary (an
epoch's end for the classifier, a validation point for domain intersection) or in the middle of
one: by `--trainer.max_steps`, by setting `trainer.should_stop` as `max_time`'s Timer does, by
SIGINT and SIGTERM sent to the process in the middle of iteration S (before its last optimizer
step) and by kill -9 (SinGAN and the classifier: a module's iterations and epochs). The stopped
run's last.ckpt must hold exactly S iterations (never half of one); the run resumed from `last`
must end with the weights, buffers (noise amplitudes, BatchNorm statistics), optimizer and
LR-schedule states and random-generator states of the uninterrupted run, and every periodic
checkpoint must be there, the resumed run keeping the period's phase. The contract test
(tests/test_methods.py) stops every method by `max_steps` in the middle; the fast tier here adds
each other way of stopping once, the slow tier the whole matrix.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from datamodules.cifar import CLASS_NAMES
from lightning_modules.cli import RunLock, cli_main
from synthetic import pattern_image, write_image
from tests.helpers import run_cli, run_cli_subprocess
from tests.methods import METHODS, PERIOD, Method, assert_same_run, fit, iterations_of, load

MATRIX_METHODS = ("singan", "analogy", "hp_vae_gan", "domain_intersection", "classifier")
STOPS = ("max_steps", "max_time", "SIGINT", "SIGTERM")
FAST = {("singan", "SIGINT", "middle"), ("singan", "max_time", "boundary"), ("classifier", "SIGTERM", "middle")}


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


def stop_resume_and_compare(name: str, stop: str, position: str, tiny_runs, root: Path) -> None:
    method, config = METHODS[name], tiny_runs.config(name)
    iterations = getattr(method, position)
    if stop in ("SIGINT", "SIGTERM"):
        with pytest.raises(SystemExit) as stopped:
            fit(config, root, *stop_arguments(method, stop, iterations))
        assert stopped.value.code == 128 + getattr(signal, stop)  # 130, 143: a scheduler sees the stop
    else:
        fit(config, root, *stop_arguments(method, stop, iterations))
    assert iterations_of(load(root / "checkpoints" / "last.ckpt")) == iterations  # the iteration finished, then saved
    fit(config, root, "--ckpt_path=last")
    expected = load(tiny_runs.reference(name))
    assert_same_run(expected, load(root / "checkpoints" / "last.ckpt"))
    total = iterations_of(expected)
    # every periodic checkpoint is there, the resumed run's in the same phase (validation adds its own)
    assert set(range(PERIOD, total + 1, PERIOD)) <= set(periodic_checkpoints(root))


MATRIX = [
    pytest.param(name, stop, position, marks=() if (name, stop, position) in FAST else pytest.mark.slow)
    for name in MATRIX_METHODS
    for stop in STOPS
    for position in ("boundary", "middle")
]


@pytest.mark.parametrize("name, stop, position", MATRIX)
def test_a_stopped_run_resumes_bit_identically(name, stop, position, tiny_runs, tmp_path):
    stop_resume_and_compare(name, stop, position, tiny_runs, tmp_path)


@pytest.mark.slow  # the killed run has an interpreter of its own
@pytest.mark.parametrize("name", ["singan", "classifier"])  # iterations counted by the module; epochs
def test_kill_9_loses_only_the_iterations_after_the_last_periodic_checkpoint(name, tiny_runs, tmp_path):
    """kill -9 in the middle of an iteration: last.ckpt is the last periodic checkpoint (written
    whole), and resuming from it gives the uninterrupted run."""
    method = METHODS[name]
    killed = run_cli_subprocess(
        "fit", "--config", str(tiny_runs.config(name)), f"--trainer.default_root_dir={tmp_path}",
        *stop_arguments(method, "SIGKILL", method.middle), env={"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    lost_since = method.middle - 1 - (method.middle - 1) % PERIOD  # the last periodic checkpoint before the kill
    assert iterations_of(load(tmp_path / "checkpoints" / "last.ckpt")) == lost_since
    assert not list((tmp_path / "checkpoints").glob("*.partial"))
    fit(tiny_runs.config(name), tmp_path, "--ckpt_path=last")
    assert_same_run(load(tiny_runs.reference(name)), load(tmp_path / "checkpoints" / "last.ckpt"))


def test_a_config_without_a_checkpoint_callback_gets_one_that_resumes(tiny_runs, tmp_path):
    """Lightning's default ModelCheckpoint would save only at the epoch's end, which a streamed run
    reaches only at its very end: the CLI gives such a config a ResumableCheckpoint instead."""
    config = yaml.safe_load(tiny_runs.config("singan").read_text())
    config["trainer"]["callbacks"] = []
    path = tmp_path / "no_checkpoint_callback.yaml"
    path.write_text(yaml.safe_dump(config))
    root, method = tmp_path / "run", METHODS["singan"]
    fit(path, root, *stop_arguments(method, "max_steps", method.middle))
    assert iterations_of(load(root / "checkpoints" / "last.ckpt")) == method.middle
    fit(path, root, "--ckpt_path=last")
    assert_same_run(load(tiny_runs.reference("singan")), load(root / "checkpoints" / "last.ckpt"))


# ---------------------------------------------------------------------- the command around a run
def test_ckpt_path_last_restores_the_files_settings_and_says_which_it_replaced(tiny_runs, tmp_path, capsys):
    config = tiny_runs.config("singan")
    fit(config, tmp_path, "--model.iters_per_scale=3", f"--trainer.max_steps={6 * 4}")  # 4 of 9 iterations
    capsys.readouterr()
    cli = fit(config, tmp_path, "--ckpt_path=last")  # the config says 2 iterations per scale
    assert cli.model.hparams.iters_per_scale == 3 and cli.model.iteration == 9
    said = capsys.readouterr().err
    assert f"--ckpt_path {tmp_path / 'checkpoints' / 'last.ckpt'}: " in said
    assert "the checkpoint's model settings replace the given iters_per_scale=2->3" in said


def test_the_requeue_signal_saves_at_an_iteration_end_requeues_and_the_next_start_resumes(
    tiny_runs, tmp_path, monkeypatch
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
        fit(tiny_runs.config("singan"), root, *stop_arguments(METHODS["singan"], "SIGUSR1", 3))
    assert stopped.value.code == 128 + signal.SIGUSR1
    assert calls.read_text().split() == ["requeue", "4242"]
    assert iterations_of(load(root / "checkpoints" / "last.ckpt")) == 3
    fit(tiny_runs.config("singan"), root, "--ckpt_path=last")
    assert_same_run(load(tiny_runs.reference("singan")), load(root / "checkpoints" / "last.ckpt"))


KILLED_LOCK_HOLDER = """
import fcntl, os, sys
handle = open(os.path.join(sys.argv[1], "fit.lock"), "a+")
fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.kill(os.getpid(), 9)
"""


def test_a_second_fit_into_a_running_fits_folder_refuses_and_a_killed_fit_leaves_no_lock(tiny_runs, tmp_path, capsys):
    root = tmp_path / "run"
    with RunLock(root), pytest.raises(SystemExit) as refused:  # the lock a running fit holds
        cli_main(["fit", "--config", str(tiny_runs.config("singan")), f"--trainer.default_root_dir={root}"])
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
def test_an_expected_error_is_one_line_and_a_nonzero_status(argument, status, start, tiny_runs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        cli_main(["fit", "--config", str(tiny_runs.config("singan")), f"--trainer.default_root_dir={tmp_path}",
                  argument])  # fmt: skip
    assert exited.value.code == status
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and said[0].startswith(start) and "DFGEN_TRACEBACK=1" in said[0]
    assert not list(tmp_path.iterdir())  # nothing written


def test_dfgen_traceback_raises_the_error_itself(tiny_runs, monkeypatch):
    monkeypatch.setenv("DFGEN_TRACEBACK", "1")
    with pytest.raises(ValueError, match="nope.png: no such image file"):
        cli_main(["fit", "--config", str(tiny_runs.config("singan")), "--data.path=nope.png"])


def test_predict_and_test_refuse_to_run_an_untrained_model(tiny_runs, tmp_path, capsys):
    command = ["--config", str(tiny_runs.config("singan")), f"--trainer.default_root_dir={tmp_path}"]
    for arguments in (["predict", *command], ["test", *command], ["predict", *command, "--ckpt_path=last"]):
        with pytest.raises(SystemExit) as exited:
            cli_main(arguments)
        assert exited.value.code == 1
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 3
    assert said[0].startswith("error: predict needs --ckpt_path") and said[1].startswith("error: test needs")
    assert said[2].startswith(f"error: --ckpt_path last: no last*.ckpt under {tmp_path / 'checkpoints'}")
    assert not list(tmp_path.iterdir())


def test_predict_never_writes_beside_an_earlier_predicts_files(tiny_runs, tmp_path, capsys):
    predict = [
        "predict", "--config", str(tiny_runs.config("singan")), f"--ckpt_path={tiny_runs.reference('singan')}",
        f"--trainer.default_root_dir={tmp_path}",
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


def test_classifier_predict_writes_the_classes_and_scores_of_an_image_folder(tiny_runs, tmp_path):
    folder = tmp_path / "images"
    for index, name in enumerate(("a.png", "b.jpg", "more/c.png")):
        write_image(folder / name, pattern_image(40 + index, 36, seed=index))
    run_cli(
        "predict", "--config", str(tiny_runs.config("classifier")), f"--ckpt_path={tiny_runs.reference('classifier')}",
        f"--trainer.default_root_dir={tmp_path}", f"--data.predict_dir={folder}",
        "--trainer.callbacks.top_k=3",
    )  # fmt: skip
    rows = list(csv.DictReader((tmp_path / "predictions" / "predictions.csv").open()))
    assert [row["file"] for row in rows] == ["a.png", "b.jpg", "more/c.png"]
    for row in rows:
        classes = [int(row[f"class_{k}"]) for k in (1, 2, 3)]
        scores = [float(row[f"score_{k}"]) for k in (1, 2, 3)]
        assert len(set(classes)) == 3 and all(0 <= c < 10 for c in classes)
        assert [row[f"name_{k}"] for k in (1, 2, 3)] == [CLASS_NAMES["cifar10"][c] for c in classes]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
