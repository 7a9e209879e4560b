"""Two-process DDP on CPU (gloo), once per distinct mechanism: a training run ends with the same
weights and buffers on both ranks, an evaluation gives the single-process result.

- Structural analogy: a pyramid trained scale by scale (ImagePyramidModule, as SinGAN's) with
  fresh per-scale optimizers and alternating critic and generator steps (unused-parameter
  detection), training noise seeded per rank (every rank's stream saved: a stopped run resumes
  bit-identically), each scale's sigma drawn from a random
  reconstruction on each rank and rank 0's broadcast, buffers broadcast at each scale's end.
- SinGAN on a folder of images: K grouped models, each process training all of them with its
  own noise, one stream per model and process, every one of them saved.
- HP-VAE-GAN: the same counting base (ProgressiveModule) with VAE levels (one optimizer, a
  posterior sample per rank, sigma broadcast) before the adversarial levels in one run, and
  random windows of the clip per rank.
- Domain intersection: an iteration-counted module (IterativeModule, as content transfer and
  one-shot translation are) on streamed batches seeded per rank, autoencoder and critic steps with
  gradient clipping, spectral-norm and BatchNorm buffers broadcast at the end.
- Classifier: automatic optimization over an epoch-sharded sampler (EpochShuffle), BatchNorm, and
  the pAdaIN layers' random streams, one per rank, gathered into the checkpoint.
- Segmenter, adversarial stage: manual network and discriminator steps in a module that otherwise
  optimizes automatically, pAdaIN mixing source and target halves, streamed batches per rank.
- Evaluation: FID/KID and mIoU over items split between the processes without padding
  (UnrepeatedDistributedSampler) and synchronised, equal to one process's result.

All of them are in the slow tier: each starts three interpreters.
"""

from __future__ import annotations

import csv

import pytest
import torch

from synthetic import pattern_image, write_image, write_segmentation_shift
from tests.helpers import REPO, assert_ddp_ranks_agree, run_cli, run_two_processes
from tests.methods import METHODS, assert_same_run, load
from tests.test_segmenter import FADA

pytestmark = pytest.mark.slow


def assert_each_rank_saved_its_noise(checkpoint: dict, stream: str = "noise") -> None:
    noise = checkpoint["iteration_progress"]["rng"][stream]["state"]  # [processes, bytes]
    assert noise.shape[0] == 2 and not torch.equal(noise[0], noise[1])


def test_singan_images_ranks_agree_and_every_models_streams_are_saved(tiny_runs, tmp_path):
    for k in range(2):
        write_image(tmp_path / "images" / f"image_{k}.png", pattern_image(28, 36, seed=k))
    data = f"--data.path={tmp_path / 'images'}"
    last = load(assert_ddp_ranks_agree(str(tiny_runs.config("singan")), tmp_path / "run", data))
    for stream in ("noise", "noise_1"):
        assert_each_rank_saved_its_noise(last, stream)


@pytest.mark.parametrize("name", ["hp_vae_gan", "domain_intersection"])  # structural analogy: below
def test_two_processes_end_with_identical_weights(name, tiny_runs, tmp_path):
    last = load(assert_ddp_ranks_agree(str(tiny_runs.config(name)), tmp_path))
    if name == "hp_vae_gan":
        assert_each_rank_saved_its_noise(last)


def test_a_stopped_two_process_run_resumes_bit_identically(tiny_runs, tmp_path):
    """Each process continues its own noise stream (the checkpoint holds both)."""
    config, method = str(tiny_runs.config("analogy")), METHODS["analogy"]
    expected = load(assert_ddp_ranks_agree(config, tmp_path / "uninterrupted"))
    assert_each_rank_saved_its_noise(expected)
    root = tmp_path / "stopped"
    for extra in (f"--trainer.max_steps={method.steps(method.middle)}", "--ckpt_path=last"):
        result = run_two_processes("fit", "--config", config, f"--trainer.default_root_dir={root}", extra)
        assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(expected, load(root / "checkpoints" / "last.ckpt"))


def test_classifier_ranks_agree_and_the_checkpoint_keeps_each_ranks_padain_stream(tiny_runs, tmp_path):
    last = assert_ddp_ranks_agree(str(tiny_runs.config("classifier")), tmp_path)
    streams = torch.load(last, map_location="cpu", weights_only=True)["padain_generators"]
    assert streams.shape[0] == 2 and not torch.equal(streams[0], streams[1])  # [processes, layers, bytes]


def test_segmenter_adversarial_stage_ranks_agree(tmp_path):
    gtav, cityscapes = write_segmentation_shift(tmp_path / "scenes", count_source=12, count_target=6)
    assert_ddp_ranks_agree(
        str(REPO / "configs/padain_segmentation/smoke.yaml"), tmp_path / "run", f"--data.source_root={gtav}",
        f"--data.target_root={cityscapes}", *FADA,
    )  # fmt: skip


def logged(root) -> dict[str, float]:
    rows = list(csv.DictReader(next(root.glob("csv/version_*/metrics.csv")).read_text().splitlines()))
    return {k: float(v) for row in rows for k, v in row.items() if v and k != "step" and k != "epoch"}


@pytest.mark.parametrize(
    ("model", "data", "callback", "keys"),
    [
        (
            "tests.helpers.ToyGenerator", "tests.helpers.ToyImages",
            ["--trainer.callbacks=callbacks.FIDKID", "--trainer.callbacks.feature_extractor=tests.helpers.TinyFeatures",
             "--trainer.callbacks.max_samples=24", "--trainer.callbacks.kid_subset_size=12",
             "--trainer.callbacks.kid_subsets=10"],
            ["val/fid", "val/kid_mean", "val/kid_std"],
        ),
        (
            "tests.helpers.ToySegmenter", "tests.helpers.ToySegmentation",
            ["--trainer.callbacks=callbacks.MeanIoU", "--trainer.callbacks.num_classes=4"],
            ["val/miou"],
        ),
    ],
)  # fmt: skip
def test_two_processes_evaluate_as_one(tmp_path, model, data, callback, keys):
    command = ["validate", f"--model={model}", f"--data={data}", *callback]
    run_cli(
        *command, "--trainer.accelerator=cpu", "--trainer.devices=1", f"--trainer.default_root_dir={tmp_path / 'one'}"
    )
    outcome = run_two_processes(*command, f"--trainer.default_root_dir={tmp_path / 'two'}")
    assert outcome.returncode == 0, outcome.stderr[-3000:]
    one, two = logged(tmp_path / "one"), logged(tmp_path / "two")
    for key in keys:
        assert two[key] == pytest.approx(one[key], rel=1e-6), key
