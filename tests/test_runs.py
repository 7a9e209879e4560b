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

import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from datamodules.synthetic import write_cifar
from tests.helpers import REPO, run_cli, run_cli_subprocess

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
    """The uninterrupted run's last.ckpt of a method, trained on first use."""
    runs = {}

    def last(name: str) -> dict:
        if name not in runs:
            root = tmp_path_factory.mktemp(f"{name}_uninterrupted")
            fit(configs[name], root)
            runs[name] = load(root / "checkpoints" / "last.ckpt")
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
    expected = reference(name)
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
    assert_same_run(reference(name), load(tmp_path / "checkpoints" / "last.ckpt"))
