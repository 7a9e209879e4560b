"""The contract every method keeps, one row per method (the rows and their tiny configs are in
tests/methods.py; adding a method means adding its row there), all through the real CLI in this
process:

1. `fit` of the tiny config ends after its iterations with a last.ckpt;
2. `predict` from that checkpoint writes the method's files;
3. the checkpoint loads without a trainer, to the same weights and buffers;
4. a run stopped by `--trainer.max_steps` in the middle of a scale, level, epoch or validation
   period holds exactly the iterations done in its last.ckpt, and resumed with `--ckpt_path last`
   ends bit-identical to the uninterrupted run: weights, buffers (noise amplitudes, BatchNorm
   statistics), optimizer and LR-schedule states, iteration counters and random-generator states,
   with every periodic checkpoint of the run there.

tests/test_runs.py stops the same tiny runs in every other way (a time limit, SIGINT, SIGTERM,
kill -9, on boundaries); the method modules check what is particular to each method.
"""

from __future__ import annotations

import pytest

from lightning_modules.cli import cli_main
from tests.helpers import REPO, TinyClassifierNet
from tests.methods import (
    METHODS,
    PERIOD,
    assert_same,
    assert_same_run,
    fit,
    iterations_of,
    load,
    model_class,
    predict,
)

FAST = ("singan", "classifier")  # the fastest rows; every method has a smoke fit in the fast tier besides


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in METHODS])
def test_fit_predict_load_and_a_stopped_run_resumes_bit_identically(name, tiny_runs, tmp_path):
    method, config = METHODS[name], tiny_runs.config(name)
    reference = tiny_runs.reference(name)
    expected = load(reference)
    total = iterations_of(expected)
    assert total > method.middle

    written = predict(config, reference, tmp_path / "predict", *tiny_runs.predict_arguments(name))
    missing = [file for file in method.predictions if not (written / file).is_file()]
    assert not missing, (missing, sorted(str(p.relative_to(written)) for p in written.rglob("*")))

    network = {"network": TinyClassifierNet()} if name == "classifier" else {}  # a network given by class_path
    loaded = model_class(config).load_from_checkpoint(reference, map_location="cpu", **network)
    assert_same(expected["state_dict"], loaded.state_dict(), "state_dict")

    root = tmp_path / "stopped"
    fit(config, root, f"--trainer.max_steps={method.steps(method.middle)}")
    assert iterations_of(load(root / "checkpoints" / "last.ckpt")) == method.middle
    fit(config, root, "--ckpt_path=last")
    assert_same_run(expected, load(root / "checkpoints" / "last.ckpt"))
    periodic = {int(path.stem.split("=")[1]) for path in (root / "checkpoints").glob("iteration=*.ckpt")}
    assert set(range(PERIOD, total + 1, PERIOD)) <= periodic


@pytest.mark.parametrize(
    "config, argument, message, checked_before_output",
    [
        ("structural_analogy/smoke.yaml", "--data.path_b=nope.png", "nope.png: no such image file", True),
        ("hp_vae_gan/smoke.yaml", "--data.path=nope.mp4", "nope.mp4: no such video file", True),
        # read at the model's setup, after the loggers have made their folders: no checkpoint, though
        (
            "one_shot_translation/smoke_phase2.yaml", "--model.phase_one_checkpoint=none.ckpt",
            "none.ckpt: no checkpoint there; expected the last.ckpt of a phase-1", False,
        ),
    ],
)  # fmt: skip
def test_a_missing_input_is_one_line_naming_it(config, argument, message, checked_before_output, tmp_path, capsys,
                                               monkeypatch):  # fmt: skip
    monkeypatch.chdir(REPO)  # the configs' relative asset paths
    root = tmp_path / "run"
    with pytest.raises(SystemExit) as exited:
        cli_main(["fit", "--config", f"configs/{config}", f"--trainer.default_root_dir={root}", argument])
    assert exited.value.code == 1
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and message in said[0], said
    assert not (root / "checkpoints").exists()
    assert not root.exists() or not checked_before_output
