"""Many images, one run: SinGAN trains one pyramid per image of a folder, all of them at once.

The promise is that model k is the model a run of image k alone with seed + k trains. It is
checked in float64, where it holds to about 1e-6 after four iterations per scale: in float32
the weights of a tiny pyramid follow their rounding chaotically (a single image's run in float32
and in float64 end 0.6-0.8 apart in their reconstructions), so no float32 tolerance separates a
right implementation from a wrong one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer

from datamodules import SingleImageDataModule
from lightning_modules import SinGAN
from lightning_modules.networks.grouped import split_state_dict
from synthetic import pattern_image, write_image
from tests.helpers import run_cli
from tests.methods import assert_same_run, fit, load, predict

NUM_IMAGES = 3
TOLERANCE = 1e-5  # float64; measured 1.03e-6 at most over the three models


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for k in range(NUM_IMAGES):
        write_image(folder / f"image_{k}.png", pattern_image(28, 36, seed=k))
    return folder


def train(path: str, seed: int) -> SinGAN:
    """Four iterations per scale of a 3-scale pyramid (24 px), in float64, one thread."""
    data = SingleImageDataModule(path, max_size=24, min_size=14)
    model = SinGAN(iters_per_scale=4, base_width=4, max_width=8, seed=seed)
    trainer = Trainer(accelerator="cpu", max_epochs=1, precision="64-true", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer.fit(model, data)
    finally:
        torch.set_num_threads(threads)
    return model


def largest_difference(together: SinGAN, k: int, alone: SinGAN) -> float:
    """The largest difference between model k of `together` and the single model `alone`: weights,
    BatchNorm statistics, noise amplitudes and z*."""
    differences = [(together.noise_amps[:, k] - alone.noise_amps[:, 0]).abs().max()]
    differences.append((together.rec_noise[:, 3 * k : 3 * k + 3] - alone.rec_noise).abs().max())
    for stack in ("generators", "critics"):
        for grouped_network, single in zip(getattr(together, stack), getattr(alone, stack)):
            split = split_state_dict(grouped_network.state_dict(), together.num_models)[k]
            differences += [(split[name] - value).abs().max() for name, value in single.state_dict().items()]
    return max(difference.item() for difference in differences)


def differences_from_single_runs(folder: Path) -> list[float]:
    together = train(str(folder), seed=0)
    assert together.num_models == NUM_IMAGES and together.noise_amps.shape == (together.num_scales, NUM_IMAGES)
    files = sorted(folder.glob("*.png"))
    return [largest_difference(together, k, train(str(file), seed=k)) for k, file in enumerate(files)]


def test_images_trained_together_are_the_single_image_runs(image_folder):
    assert max(differences_from_single_runs(image_folder)) < TOLERANCE


def same_seed_for_every_model(self):  # the models' noise streams all seeded as model 0's
    return [self.rng(f"noise_{k}" if k else "noise") for k in range(self.num_models)]


def pooled_mean(x):  # the noise amplitudes pooled over the models
    return x.mean()


def coupled_penalty_weight(values, channels, spatial_dims):  # model 0's interpolation weight for every model
    return values.reshape(-1)[0]


MUTANTS = {
    "one noise stream seed": ("lightning_modules.singan.SinGAN.noise_rngs", same_seed_for_every_model),
    "pooled noise amplitudes": ("lightning_modules.singan.per_model_mean", pooled_mean),
    "one penalty weight": ("lightning_modules.networks.losses.per_model", coupled_penalty_weight),
}


@pytest.mark.slow
@pytest.mark.parametrize("mutant", MUTANTS)
def test_the_equality_fails_when_the_models_are_coupled(mutant, image_folder, monkeypatch):
    monkeypatch.setattr(*MUTANTS[mutant])
    assert max(differences_from_single_runs(image_folder)) > 100 * TOLERANCE


# ---------------------------------------------------------------------- the folder as data
def test_a_bad_image_in_the_folder_is_named_before_anything_is_written(tiny_runs, image_folder, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for file in image_folder.glob("*.png"):
        (folder / file.name).write_bytes(file.read_bytes())
    (folder / "image_1.png").write_bytes(b"not a png")
    root = tmp_path / "run"
    with pytest.raises(Exception, match="image_1.png"):
        fit(tiny_runs.config("singan"), root, f"--data.path={folder}")
    assert not root.exists()


def test_images_of_other_sizes_need_one_shape(image_folder, tmp_path):
    folder = tmp_path / "images"
    write_image(folder / "a.png", pattern_image(28, 36))
    write_image(folder / "b.png", pattern_image(40, 30, seed=1))
    with pytest.raises(ValueError, match=r"b.png: its pyramid .* data.image_shape"):
        SingleImageDataModule(str(folder), max_size=24, min_size=14)
    data = SingleImageDataModule(str(folder), image_shape=(28, 36), max_size=24, min_size=14)
    data.setup("fit")
    assert data.image_names == ["a", "b"] and data.pyramid[-1].shape == (1, 6, 19, 24)


def test_names_must_differ_and_injection_takes_one_image(image_folder, tmp_path):
    write_image(tmp_path / "image_0.jpg", pattern_image(28, 36))
    with pytest.raises(ValueError, match="data.path: .* image_0 repeat"):
        SingleImageDataModule(
            [str(image_folder / "image_0.png"), str(tmp_path / "image_0.jpg")], max_size=24, min_size=14
        )
    with pytest.raises(ValueError, match="data.inject_path: .* holds 3 images"):
        SingleImageDataModule(
            str(image_folder), max_size=24, min_size=14, inject_path=str(image_folder / "image_0.png")
        )


def test_one_image_listed_three_times_trains_three_seeds_of_it(image_folder):
    image = str(image_folder / "image_0.png")
    data = SingleImageDataModule([image, str(image_folder / "image_1.png"), image], max_size=24, min_size=14)
    assert data.image_names == ["image_0_0", "image_1", "image_0_2"]
    data.setup("fit")
    assert torch.equal(data.pyramid[-1][:, :3], data.pyramid[-1][:, 6:])


# ---------------------------------------------------------------------- one run, end to end
@pytest.fixture(scope="module")
def folder_run(tiny_runs, image_folder, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("folder_run")
    fit(tiny_runs.config("singan"), root, f"--data.path={image_folder}")
    return root, root / "checkpoints" / "last.ckpt"


def test_predict_writes_each_images_samples_in_its_own_folder(tiny_runs, folder_run, image_folder, tmp_path):
    _, last = folder_run
    written = predict(tiny_runs.config("singan"), last, tmp_path, f"--data.path={image_folder}")
    for k in range(NUM_IMAGES):
        assert {path.name for path in (written / f"image_{k}").iterdir()} == {
            "sample_00000.png", "sample_00001.png", "reconstruction.png"
        }  # fmt: skip
    model = SinGAN.load_from_checkpoint(last, weights_only=True)
    assert model.hparams.image_names == [f"image_{k}" for k in range(NUM_IMAGES)]


def test_test_reports_sifid_per_image_and_over_the_images(tiny_runs, folder_run, image_folder, tmp_path):
    _, last = folder_run
    cli = run_cli(
        "test", "--config", str(tiny_runs.config("singan")), f"--ckpt_path={last}", f"--data.path={image_folder}",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.callbacks+=callbacks.SIFID",
        "--trainer.callbacks.num_samples=3", "--trainer.callbacks.feature_extractor=tests.helpers.TinySpatialFeatures",
    )  # fmt: skip
    sifid = next(cb for cb in cli.trainer.callbacks if type(cb).__name__ == "SIFID").last
    means = [sifid[f"test/sifid_images/image_{k}_mean"] for k in range(NUM_IMAGES)]
    assert sifid["test/sifid_images_mean"] == pytest.approx(sum(means) / NUM_IMAGES)
    assert sifid["test/sifid_images_std"] == pytest.approx(torch.tensor(means).std().item())
    assert cli.trainer.callback_metrics["test/rec_psnr_scale_0"] > 10


def test_a_stopped_folder_run_resumes_bit_identically(tiny_runs, folder_run, image_folder, tmp_path):
    _, reference = folder_run
    config, folder = tiny_runs.config("singan"), f"--data.path={image_folder}"
    fit(config, tmp_path, folder, "--trainer.max_steps=30")  # 5 iterations of 6 optimizer steps
    fit(config, tmp_path, folder, "--ckpt_path=last")
    assert_same_run(load(reference), load(tmp_path / "checkpoints" / "last.ckpt"))


def test_a_single_image_checkpoint_saved_before_several_images_loads(tiny_runs, tmp_path):
    checkpoint = load(tiny_runs.reference("singan"))
    checkpoint["state_dict"]["noise_amps"] = checkpoint["state_dict"]["noise_amps"][:, 0]  # as it was saved
    checkpoint["hyper_parameters"].pop("image_names")
    torch.save(checkpoint, tmp_path / "before.ckpt")
    model = SinGAN.load_from_checkpoint(tmp_path / "before.ckpt", weights_only=True)
    assert model.num_models == 1 and model.noise_amps.shape == (model.num_scales, 1)
