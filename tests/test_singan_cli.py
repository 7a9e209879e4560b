"""SinGAN end to end through the real CLI and configs/singan/smoke.yaml."""

from functools import partial
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch import Callback, Trainer
from PIL import Image
from scipy import ndimage
from skimage import filters, morphology

from datamodules.single_image import SingleImageDataModule, load_image
from dfgen.resize import resize
from lightning_modules.cli import cli_main
from lightning_modules.singan import SinGAN
from tests.helpers import (
    REPO,
    fit_run,
    logged_columns,
    predict_run,
    run_cli,
    run_cli_subprocess,
)
from tests.test_singan_networks import reference_imresize

SMOKE = str(REPO / "configs/singan/smoke.yaml")


fit = partial(fit_run, SMOKE)  # fit(root, *extra) -> last.ckpt
predict = partial(predict_run, SMOKE)  # predict(last, root, *extra) -> predictions folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    return root, fit(root)


def test_fit_writes_checkpoint_logs_and_sample_grids(trained):
    root, last = trained
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["iteration_progress"]["iteration"] == 50  # 5 scales x 10 iterations
    assert checkpoint["hyper_parameters"]["pyramid_shapes"] == [(12, 14), (15, 17), (19, 21), (23, 26), (28, 32)]
    logged = logged_columns(root)
    for term in ("critic_real", "critic_fake", "gradient_penalty", "reconstruction", "adversarial", "noise_amp"):
        assert {f"train/scale_0/{term}", f"train/scale_4/{term}"} <= logged
    media = sorted(p.name for p in root.glob("csv/version_*/media/*.png"))
    assert len(media) == 10  # samples and reconstruction at the end of each of 5 scales
    assert list(root.glob("tensorboard/version_*/events.*"))


def test_predict_writes_pngs(trained, tmp_path):
    root, last = trained
    predict(last, tmp_path)
    files = sorted((tmp_path / "predictions").glob("sample_*.png"))
    assert len(files) == 4
    assert Image.open(files[0]).size == (32, 28)
    assert (tmp_path / "predictions" / "grid.png").is_file()
    assert Image.open(tmp_path / "predictions" / "reconstruction.png").size == (32, 28)
    images = [torch.tensor(list(Image.open(f).getdata()), dtype=torch.float) for f in files]
    assert (images[0] - images[1]).abs().mean() > 1  # different seeds, different samples


def test_predict_at_another_size(trained, tmp_path):
    _, last = trained
    predict(last, tmp_path, "--data.sample_scale=[1.0,2.0]", "--data.num_samples=2")
    assert Image.open(tmp_path / "predictions" / "sample_00000.png").size == (64, 28)


def test_predict_from_a_finer_start_scale_follows_the_reconstruction(trained, tmp_path):
    _, last = trained
    predict(last, tmp_path, "--data.gen_start_scale=4", "--data.num_samples=2")
    a, b = (torch.tensor(list(Image.open(tmp_path / f"predictions/sample_0000{i}.png").getdata())) for i in (0, 1))
    # below the start scale both samples share the reconstruction noise: only fine detail differs
    assert (a.float() - b.float()).abs().mean() < 20


def read_png(path: Path) -> torch.Tensor:
    """A written PNG as [1, 3, H, W] in [-1, 1]."""
    return (
        torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)).permute(2, 0, 1)[None] / 127.5
        - 1
    )


def official_feathered_mask(path: Path, shape: tuple[int, int], radius: int) -> torch.Tensor:
    """The official `dilate_mask` (`SinGAN/functions.py` of tamarott/SinGAN) with scikit-image and SciPy:
    the non-black pixels dilated by a disk, a Gaussian of std 5 px, stretched to [0, 1]; [1, 1, H, W]."""
    mask = resize((load_image(path)[:1] * 0.5 + 0.5)[None], shape)[0, 0].numpy()
    dilated = ndimage.binary_dilation(mask > 0.5 / 255, structure=morphology.disk(radius))
    blurred = filters.gaussian(dilated.astype(np.float64), sigma=5, mode="nearest", truncate=4.0)
    blurred = (blurred - blurred.min()) / (blurred.max() - blurred.min())
    return torch.from_numpy(blurred).float()[None, None]


@torch.no_grad()
def official_injection(model: SinGAN, painted: torch.Tensor, scale: int, seed: int) -> torch.Tensor:
    """paint2image / harmonization / editing, written from the official scripts: the painted image
    (at the training size) resized by r^(S - n + 1) to scale n - 1, then by 1/r to scale n, and
    SinGAN_generate from n with fresh noise at every scale (eval mode); [1, 3, H, W]."""
    shapes, ratio = model.shapes, model.ratio
    x = reference_imresize(
        reference_imresize(painted, ratio ** (model.num_scales - scale), shapes[scale - 1]), 1 / ratio, shapes[scale]
    )
    noise = torch.Generator().manual_seed(seed)
    model.eval()
    for s in range(scale, model.num_scales):
        if s > scale:
            x = reference_imresize(x, 1 / ratio, shapes[s])
        x = model.generators[s](model.noise_amps[s] * torch.randn(1, 3, *shapes[s], generator=noise), x)
    return x.clamp(-1, 1)


def test_predict_injects_and_composites_as_the_official_scripts(trained, tmp_path, tiny_image):
    _, last = trained
    model = SinGAN.load_from_checkpoint(last, weights_only=False)
    mask_path = tmp_path / "mask.png"
    mask = Image.new("L", (36, 28), 0)
    mask.paste(255, (0, 0, 12, 28))  # regenerate the left third
    mask.save(mask_path)
    painted = resize(load_image(tiny_image)[None], model.shapes[-1]).clamp(-1, 1)  # fitted to the training size
    expected = official_injection(model, painted, scale=2, seed=0)

    paint = predict(last, tmp_path / "paint", f"--data.inject_path={tiny_image}", "--data.inject_scale=2",
                    "--data.num_samples=1")  # fmt: skip
    assert (read_png(paint / "sample_00000.png") - expected).abs().max() < 2.5 / 255  # 8-bit PNG rounding

    harmonized = predict(
        last, tmp_path / "harmonize", f"--data.inject_path={tiny_image}", "--data.inject_scale=2",
        f"--data.inject_mask_path={mask_path}", "--data.inject_mask_dilation=3", "--data.num_samples=1",
    )  # fmt: skip
    feathered = official_feathered_mask(mask_path, model.shapes[-1], radius=3)
    training_image = SingleImageDataModule(str(REPO / "assets/hubble_deep_field.jpg"), max_size=32, min_size=12)
    training_image.setup("predict")
    composite = feathered * expected + (1 - feathered) * training_image.pyramid[-1]
    assert (read_png(harmonized / "sample_00000.png") - composite).abs().max() < 2.5 / 255
    assert 0 < feathered[..., 16].mean() < 1  # the feathered edge lies inside the image


class RecNoiseRecorder(Callback):
    """Keeps the reconstruction noise z* after every training iteration."""

    def __init__(self) -> None:
        self.rec_noise: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer: Trainer, pl_module: SinGAN, *args) -> None:
        self.rec_noise.append(pl_module.rec_noise.clone())


@pytest.mark.parametrize("resample", [False, True])
def test_resample_rec_noise_redraws_z_star_at_every_coarsest_iteration(resample):
    """resample_rec_noise=true is the official `train_single_scale`: a new z* at every iteration of
    scale 0 (the first draw of the iteration), the last one kept; false keeps the first z*."""
    data = SingleImageDataModule(str(REPO / "assets/hubble_deep_field.jpg"), max_size=24, min_size=14)
    model = SinGAN(iters_per_scale=3, base_width=8, max_width=8, resample_rec_noise=resample)
    recorder = RecNoiseRecorder()
    trainer = Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, callbacks=[recorder])  # fmt: skip
    trainer.fit(model, data)
    initial = recorder.rec_noise[0]
    coarsest, finer = recorder.rec_noise[:3], recorder.rec_noise[3:]
    assert all(torch.equal(z, coarsest[-1]) for z in finer)  # fixed once scale 0 is trained
    if not resample:
        assert all(torch.equal(z, initial) for z in coarsest)
        return
    draws = torch.Generator().manual_seed(model.hparams.seed)  # the training noise, replayed
    for z_star in coarsest:
        expected = torch.randn(1, 1, *model.shapes[0], generator=draws).expand(-1, 3, -1, -1)
        torch.randn(1, 1, *model.shapes[0], generator=draws)  # the iteration's sample noise
        torch.rand(3, generator=draws)  # the gradient penalty's interpolation weights
        assert torch.equal(z_star, expected)
    assert not torch.equal(coarsest[0], coarsest[1])


def test_test_reports_reconstruction_psnr_and_sifid(trained, tmp_path):
    _, last = trained
    cli = run_cli(
        "test", "--config", SMOKE, f"--ckpt_path={last}", f"--trainer.default_root_dir={tmp_path}",
        "--trainer.callbacks+=callbacks.SIFID", "--trainer.callbacks.num_samples=4",
        "--trainer.callbacks.feature_extractor=tests.helpers.TinySpatialFeatures",
    )  # fmt: skip
    metrics = cli.trainer.callback_metrics
    assert metrics["test/rec_psnr_scale_4"] > 10
    sifid = next(cb for cb in cli.trainer.callbacks if type(cb).__name__ == "SIFID").last
    assert sifid["test/sifid_mean"] > 0 and sifid["test/sifid_std"] > 0


def test_help_lists_every_method_and_the_printed_config_takes_the_command_line(capsys):
    with pytest.raises(SystemExit) as exited:
        cli_main(["fit", "--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    assert "SinGAN" in help_text and "SingleImageDataModule" in help_text
    with pytest.raises(SystemExit) as exited:
        cli_main(["fit", "--model.help", "SinGAN"])
    assert exited.value.code == 0 and "--model.resample_rec_noise" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        cli_main(["fit", "--config", SMOKE, "--model.iters_per_scale=500", "--print_config"])
    assert exited.value.code == 0
    assert yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]["iters_per_scale"] == 500


@pytest.mark.slow  # an interpreter of its own
def test_entry_points_share_one_cli():
    """The installed `lightning` and `dfgen` are the same console script, and `python -m
    lightning_modules.cli` runs it too."""
    scripts = {e.name: e.value for e in entry_points(group="console_scripts") if e.name in ("lightning", "dfgen")}
    assert scripts == {"lightning": "lightning_modules.cli:cli_main", "dfgen": "lightning_modules.cli:cli_main"}
    help_text = run_cli_subprocess("fit", "--help")
    assert help_text.returncode == 0 and "SinGAN" in help_text.stdout


def test_disabling_the_progress_bar_overrides_the_configs_bar(tmp_path):
    cli = run_cli("fit", "--config", SMOKE, f"--trainer.default_root_dir={tmp_path}", "--trainer.max_steps=6",
                  "--trainer.enable_progress_bar=false")  # fmt: skip
    assert cli.trainer.progress_bar_callback is None
