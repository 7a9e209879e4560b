"""Structural analogy: networks, losses, the pair DataModule, and the method through the real CLI."""

from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.image_pair import ImagePairDataModule
from datamodules.single_image import load_image
from dfgen.resize import resize
from lightning_modules.networks.losses import StructuralAnalogyLoss
from lightning_modules.networks.pyramid import ScaleGenerator
from lightning_modules.structural_analogy import StructuralAnalogy
from synthetic import pattern_image, write_image
from tests.helpers import (
    REPO,
    fit_run,
    logged_columns,
    predict_run,
    run_cli,
)
from tests.test_singan_cli import read_png
from tests.test_singan_networks import linear_critic, reference_imresize

SMOKE = str(REPO / "configs/structural_analogy/smoke.yaml")
PAIR = (str(REPO / "assets/chelsea.png"), str(REPO / "assets/coffee.png"))


# ---------------------------------------------------------------------- networks and losses
def test_generator_with_same_padding_keeps_size_and_drops_the_skip_when_non_residual():
    residual = ScaleGenerator(8, same_padding=True, norm="instance")
    plain = ScaleGenerator(8, residual=False, same_padding=True, norm="instance")
    plain.load_state_dict(residual.state_dict())  # the official copy across the switch works
    x = torch.randn(1, 3, 13, 17)
    assert residual(None, x).shape == x.shape
    assert torch.allclose(residual(None, x) - x, plain(None, x), atol=1e-6)
    assert plain(None, x).abs().max() <= 1  # a bare tanh


def test_instance_norm_generator_samples_a_batch_as_one_image_at_a_time():
    generator = ScaleGenerator(8, same_padding=True, norm="instance")
    x = torch.randn(3, 3, 12, 12)
    one_at_a_time = torch.cat([generator(None, x[i : i + 1]) for i in range(3)])
    assert torch.allclose(generator(None, x), one_at_a_time, atol=1e-6)


def test_structural_analogy_losses_by_hand():
    weights = {"a": [0.5, -1.0, 2.0], "b": [1.0, 0.2, -0.3]}
    critics = {domain: linear_critic(w) for domain, w in weights.items()}
    torch.manual_seed(0)
    reals = {domain: torch.randn(1, 3, 4, 4) for domain in "ab"}
    outputs = {
        domain: {name: torch.randn(1, 3, 4, 4) for name in ("fake", "reconstruction", "translation", "cycle")}
        for domain in "ab"
    }
    loss = StructuralAnalogyLoss(
        gp_weight=0.1, rec_weight=2.0, cycle_weight=10.0, b_adversarial_weight=0.1, adversarial_weight=0.5
    )

    def score(domain, name):
        return critics[domain](outputs[domain][name]).mean()

    eps = {"fake": torch.tensor(0.3), "translation": torch.tensor(0.7)}
    terms = loss.critic(critics["a"], reals["a"], outputs["a"], eps)
    gp = (torch.tensor(weights["a"]).norm() - 1) ** 2  # a linear critic's penalty, per fake
    d_real = critics["a"](reals["a"]).mean()
    expected = -2 * d_real + score("a", "translation") + score("a", "fake") + 0.1 * 2 * gp
    assert torch.allclose(terms["loss"], expected, atol=1e-6)

    terms = loss.generator(critics, reals, outputs)
    expected = 0.0
    for domain, adversarial_weight in (("a", 0.5), ("b", 0.5 * 0.1)):
        out = outputs[domain]
        expected += adversarial_weight * (-score(domain, "translation") - score(domain, "fake"))
        expected += 2.0 * ((out["reconstruction"] - reals[domain]) ** 2).mean()
        expected += 10.0 * ((out["cycle"] - out["fake"]) ** 2).mean()  # the cycle's target is the sample
    assert torch.allclose(terms["loss"], expected, atol=1e-5)


# ---------------------------------------------------------------------- data
def test_pair_pyramid_follows_the_official_sizes():
    data = ImagePairDataModule(*PAIR)  # both images squashed to 220x220, min_size 18
    assert [h for h, w in data.pyramid_shapes] == [19, 24, 30, 39, 49, 63, 81, 104, 134, 172, 220]
    assert all(h == w for h, w in data.pyramid_shapes)
    data = ImagePairDataModule(*PAIR, image_size=(60, 90), min_size=25)
    data.setup("fit")
    assert data.pyramid_shapes[-1] == (60, 90)
    assert [p.shape[-2:] for p in data.pyramids["a"]] == [p.shape[-2:] for p in data.pyramids["b"]]


def test_pair_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png: no such image file"):
        ImagePairDataModule(PAIR[0], str(tmp_path / "missing.png"))
    small = write_image(tmp_path / "small.png", pattern_image(10, 40))
    with pytest.raises(ValueError, match="small.png: image is 10x40, too small for the pyramid"):
        ImagePairDataModule(PAIR[0], str(small))
    with pytest.raises(ValueError, match="must exceed min_size"):
        ImagePairDataModule(*PAIR, image_size=18)
    with pytest.raises(ValueError, match="inject_domain='c'"):
        ImagePairDataModule(*PAIR, inject_domain="c")


# ---------------------------------------------------------------------- end to end
fit = partial(fit_run, SMOKE)  # fit(root, *extra) -> last.ckpt
predict = partial(predict_run, SMOKE)  # predict(last, root, *extra) -> predictions folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("analogy")
    return root, fit(root)


def test_fit_writes_checkpoint_logs_and_sample_grids(trained):
    root, last = trained
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["iteration_progress"]["iteration"] == 40  # 5 scales x 8 iterations
    assert checkpoint["hyper_parameters"]["pyramid_shapes"] == [(14, 14), (18, 18), (22, 22), (27, 27), (32, 32)]
    logged = logged_columns(root)
    for domain in "ab":
        for term in ("critic_real", "critic_fake", "critic_translation", "gradient_penalty", "noise_amp"):
            assert {f"train/scale_0/{domain}_{term}", f"train/scale_4/{domain}_{term}"} <= logged
        for term in ("adversarial", "reconstruction", "cycle"):
            assert f"train/scale_4/{domain}_{term}" in logged
    media = sorted(p.name for p in root.glob("csv/version_*/media/*.png"))
    assert len(media) == 4 * 5  # samples of A and B and both translations at the end of each scale
    amps = checkpoint["state_dict"]["noise_amps"]
    assert amps.shape == (2, 5) and torch.all(amps[:, 0] == 1) and torch.all(amps[:, 1:] < 1)


def test_predict_writes_samples_translations_and_real_translations(trained, tmp_path):
    _, last = trained
    out = predict(last, tmp_path)
    for name in ("a_sample_00000", "ab_00000", "b_sample_00001", "ba_00001", "ab_real", "ba_real", "grid"):
        assert (out / f"{name}.png").is_file(), name
    assert Image.open(out / "ab_00000.png").size == (32, 32)
    assert Image.open(out / "grid.png").size == (4 * 34 + 2, 2 * 34 + 2)  # a row per seed, 4 columns


@torch.no_grad()
def official_injection(
    model: StructuralAnalogy, domain: str, image: torch.Tensor, scale: int, seed: int
) -> torch.Tensor:
    """`eval.py` of rmokady/structural-analogy, written out: the frozen scales below k = `scale` run
    from noise; at k the generator's convolutions get sigma z + the image at that scale, and the
    generated coarser output stays the residual; the finer scales continue with their noise.
    Transitions as the official imresize2 (`reference_imresize`). Returns [1, 3, H, W], unclamped."""
    shapes, ratio = model.shapes, model.ratio
    noise = torch.Generator().manual_seed(seed)
    x = torch.zeros(1, 3, *shapes[0])
    for s, generator in enumerate(model.generators[domain]):
        z = model.noise_amp(domain, s) * torch.randn(1, 3, *shapes[s], generator=noise)
        if s > 0:
            x = reference_imresize(x, 1 / ratio, shapes[s])
        content = resize(image, shapes[s]).clamp(-1, 1) if s == scale else x
        x = torch.tanh(generator.body(z + content)) + (x if generator.residual else 0)
    return x


def minmax(image: torch.Tensor) -> torch.Tensor:
    return (image - image.min()) / (image.max() - image.min()) * 2 - 1


def test_predict_injects_as_the_official_eval_and_saves_min_max_normalised(trained, tmp_path):
    _, last = trained
    model = StructuralAnalogy.load_from_checkpoint(last, weights_only=False)
    paint = write_image(tmp_path / "paint.png", pattern_image(40, 40, seed=3))
    extra = (f"--data.inject_path={paint}", "--data.inject_domain=b", "--data.inject_scale=2", "--data.num_samples=1")
    out = predict(last, tmp_path, *extra)
    assert sorted(p.name for p in out.glob("*_injected_*")) == ["b_injected_00000.png", "ba_injected_00000.png"]

    fitted = resize(load_image(paint)[None], model.shapes[-1]).clamp(-1, 1)  # the paint at the training size
    injected = official_injection(model, "b", fitted, scale=2, seed=0)
    translated = model.generators["a"][-1].eval()(None, injected)  # the finest A generator renders it
    for name, expected in (("b_injected", injected), ("ba_injected", translated)):
        written = read_png(out / f"{name}_00000.png")
        assert (written - minmax(expected)).abs().max() < 2.5 / 255, name  # 8-bit PNG rounding
        assert written.min() == -1 and written.max() == 1  # the official save_image(normalize=True)

    clamped = predict(last, tmp_path / "clamped", *extra, "--data.minmax_outputs=false")
    assert (read_png(clamped / "ba_injected_00000.png") - translated.clamp(-1, 1)).abs().max() < 2.5 / 255


@torch.no_grad()
def test_frozen_coarsest_noise_amplitude_of_the_official_image_script():
    """frozen_coarsest_noise_amp=0.1: the frozen coarsest generator gets 0.1 z (official `train.py`, `eval.py`)."""
    shapes, ratio = [(12, 12), (15, 15)], 0.8
    model = StructuralAnalogy(frozen_coarsest_noise_amp=0.1, base_width=8, pyramid_shapes=shapes, scale_ratio=ratio)
    model.noise_amps[:, 1] = 0.05
    rng_state = torch.Generator().manual_seed(3).get_state()
    prev = model._random_prev("a", 1, torch.Generator().set_state(rng_state))
    z = torch.randn(1, 3, *shapes[0], generator=torch.Generator().set_state(rng_state))
    generator = model.generators["a"][0]
    expected = reference_imresize(torch.tanh(generator.body(0.1 * z)), 1 / ratio, shapes[1])
    assert torch.allclose(prev, expected, atol=1e-5)
    sample = model.sample("a", [7], last_scale=0)
    z = torch.randn(1, 3, *shapes[0], generator=torch.Generator().manual_seed(7))
    assert torch.allclose(sample, torch.tanh(generator.body(0.1 * z)), atol=1e-5)


def test_rgba_alpha_is_dropped_as_the_official_code(tmp_path):
    array = np.zeros((20, 20, 4), dtype=np.uint8)
    array[..., 0] = 255  # red, fully transparent
    path = write_image(tmp_path / "a.png", array)
    dropped = ImagePairDataModule(str(path), PAIR[1], image_size=20, min_size=12)
    composited = ImagePairDataModule(str(path), PAIR[1], image_size=20, min_size=12, composite_alpha=True)
    assert torch.allclose(dropped.images["a"][:, 5, 5], torch.tensor([1.0, -1.0, -1.0]))
    assert torch.allclose(composited.images["a"][:, 5, 5], torch.ones(3))


def test_test_reports_round_trip_psnr_and_sifid_per_output(trained, tmp_path):
    _, last = trained
    cli = run_cli(
        "test", "--config", SMOKE, f"--ckpt_path={last}", f"--trainer.default_root_dir={tmp_path}",
        "--trainer.callbacks+=callbacks.SIFID", "--trainer.callbacks.num_samples=3",
        "--trainer.callbacks.feature_extractor=tests.helpers.TinySpatialFeatures",
    )  # fmt: skip
    assert cli.trainer.callback_metrics["test/cycle_psnr_a"] > 0
    sifid = next(cb for cb in cli.trainer.callbacks if type(cb).__name__ == "SIFID").last
    assert set(sifid) == {
        f"test/sifid_{n}_{s}" for n in ("a_samples", "b_samples", "ab", "ba") for s in ("mean", "std")
    }
    assert all(value > 0 for value in sifid.values())
