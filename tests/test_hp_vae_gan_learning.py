"""HP-VAE-GAN learns a clip with a known answer, both halves of it: the VAE levels give diverse
samples, the GAN levels make them realistic, and the noise amplitudes are the paper's.

The clip: a yellow 3x3 square crossing a still, dim textured 12x12 background one pixel per
frame to the right, 9 frames; 5 levels (3x6x6 to 9x12x12), M = 2 VAE levels, 8 channels, an
8-d latent, 4 blocks per network, 80 iterations per level. The bars, on 8 samples:
- motion: every sample's square moves 1 +- 0.2 px per frame (from the centroid of its yellow pixels);
- realism: the video SIFID (`callbacks.video_metrics.video_sifid` with a small fixed random
  feature network) of the samples at each of the two finest levels against the real clip is at
  most 0.04, and the samples hold on average at least 0.6 of the clip's yellow mass;
- diversity: the per-pixel std across samples over the clip's std (`diversity`), at least 0.12;
- sigma: every GAN level's noise amplitude equals 0.1 RMSE(real, upsampled reconstruction),
  recomputed by hand (tests/test_hp_vae_gan.py) from the posterior draw of its first iteration;
- noise: samples sharing one latent map but not the GAN levels' noise differ (diversity >= 0.01).

Measured on CPU, 1 thread (seed 0 is the test's, seeds 1 and 2 check the margins; 2 threads give
the same numbers at seed 0):
                          |v - 1| max  SIFID  yellow mass  diversity  noise diversity  sigma error
  seed 0                  0.079        0.0095  0.75        0.165      0.032            0
  seed 1                  0.074        0.0163  0.74        0.180      0.029            0
  seed 2                  0.028        0.0070  0.84        0.176      0.037            0
Mutants, seeds 0 / 1 / 2 (each must miss the bar in brackets; the test runs seed 0):
  adversarial_weight=0    [realism] SIFID 0.108 / 0.065 / 0.032, yellow mass 0.14 / 0.21 / 0.47
                          (motion missed too at seeds 0 and 1: |v - 1| 1.18, 1.14)
  noise_amp_factor=0      [sigma] error 1 (sigma 0 at every level), noise diversity 0 (seed 0)
  kl_weight=0             [diversity] 0.074 / 0.091 / 0.090
Removing the VAE levels altogether (`num_vae_levels=0`, the all-GAN baseline) is not a mutant
here: at this size and budget the baseline's samples are as diverse (0.185 at seed 0), and the
paper's claim is about long training on real clips.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, Trainer, seed_everything

from callbacks.video_metrics import diversity, video_sifid
from datamodules.single_video import SingleVideoDataModule
from lightning_modules.hp_vae_gan import HPVAEGAN
from lightning_modules.networks.pyramid import eval_mode
from synthetic import moving_square_clip, write_clip
from tests.helpers import TinySpatialFeatures
from tests.test_hp_vae_gan import reconstruction_by_hand

pytestmark = pytest.mark.slow  # minutes of training: `make test` runs it, `make test-fast` does not

SETTINGS = dict(iters_per_scale=80, num_vae_levels=2, width=8, latent_dim=8, num_blocks=4)
MUTANTS = {  # name -> (settings, the bar it must miss)
    "adversarial_weight_0": ({"adversarial_weight": 0.0}, "realism"),
    "noise_amp_factor_0": ({"noise_amp_factor": 0.0}, "sigma"),
    "kl_weight_0": ({"kl_weight": 0.0}, "diversity"),
}
SAMPLE_SEEDS = list(range(100, 108))


class NoiseStateAtLevelStarts(Callback):
    """The state of the training-noise generator at the first iteration of every level."""

    def __init__(self) -> None:
        self.states: dict[int, torch.Tensor] = {}

    def on_train_batch_start(self, trainer: Trainer, pl_module: HPVAEGAN, batch, batch_idx: int) -> None:
        if pl_module.iteration % pl_module.hparams.iters_per_scale == 0:
            self.states[pl_module.current_scale] = pl_module.noise_rng().get_state()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> SingleVideoDataModule:
    clip = moving_square_clip(num_frames=9, size=(12, 12), square=3, speed=1)
    path = write_clip(tmp_path_factory.mktemp("square") / "square", clip)
    data = SingleVideoDataModule(str(path), num_frames=9, max_width=12, min_width=6)
    data.setup("fit")
    return data


def train(data: SingleVideoDataModule, **settings) -> tuple[HPVAEGAN, dict[int, torch.Tensor]]:
    seed_everything(0)
    model = HPVAEGAN(pyramid_shapes=data.pyramid_shapes, **(SETTINGS | settings))
    noise_states = NoiseStateAtLevelStarts()
    trainer = Trainer(
        accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[noise_states],
    )  # fmt: skip
    trainer.fit(model, data)
    return model, noise_states.states


def square_motion(clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean horizontal velocity (px/frame) and mean yellow mass of the square in each clip [N, 3, T, H, W]."""
    yellow = torch.relu(clips[:, 0] + clips[:, 1] - clips[:, 2] - 1)  # [N, T, H, W]; 0 on the dim background
    mass = yellow.sum(dim=(2, 3))  # [N, T]
    columns = torch.arange(clips.shape[-1], dtype=clips.dtype)
    centre = (yellow.sum(dim=2) * columns).sum(dim=-1) / mass.clamp_min(1e-6)  # [N, T]
    return (centre[:, 1:] - centre[:, :-1]).mean(dim=1), mass.mean(dim=1)


def sigma_errors(model: HPVAEGAN, pyramid: list[torch.Tensor], noise_states: dict[int, torch.Tensor]) -> list[float]:
    """|sigma_s / (0.1 RMSE(x_s, upsampled reconstruction of level s - 1)) - 1| at every GAN level s.

    The reconstruction is computed by hand from the posterior sample of the level's first
    iteration (the first draw of the noise generator then); the levels below s are frozen by then.
    """
    errors = []
    for level in range(model.num_vae_levels, model.num_scales):
        generator = torch.Generator().manual_seed(0)
        generator.set_state(noise_states[level])
        eps = torch.randn(1, model.hparams.latent_dim, *model.shapes[0], generator=generator)
        with torch.no_grad(), eval_mode(model):
            below = reconstruction_by_hand(model, pyramid[0], level - 1, eps)
        upsampled = F.interpolate(below, size=model.shapes[level], mode="trilinear", align_corners=True)
        expected = 0.1 * torch.sqrt(torch.mean((pyramid[level] - upsampled) ** 2))
        errors.append(abs(model.noise_amps[level].item() / expected.item() - 1))
    return errors


def shared_latent_draw(latent: torch.Tensor, seed: int):
    """The model's noise source with a fixed latent map: the first draw is `latent`, the rest fresh noise."""
    pending, generator = [latent], torch.Generator().manual_seed(seed)
    return lambda shape: pending.pop() if pending else torch.randn(shape, generator=generator)


@torch.no_grad()
def noise_diversity(model: HPVAEGAN, real: torch.Tensor, num_samples: int = 6) -> float:
    """Diversity of samples that share one latent map and differ only in the GAN levels' noise."""
    latent = torch.randn(1, model.hparams.latent_dim, *model.shapes[0], generator=torch.Generator().manual_seed(5))
    with eval_mode(model):
        samples = [
            model._generate(model.num_scales - 1, model.shapes, shared_latent_draw(latent, 1000 + i))["output"]
            for i in range(num_samples)
        ]
    return diversity(real, torch.cat(samples).clamp(-1, 1)).item()


def measure(model: HPVAEGAN, pyramid: list[torch.Tensor], noise_states: dict[int, torch.Tensor]) -> dict:
    real = pyramid[-1]  # [1, 3, 9, 12, 12]
    samples = model.sample(SAMPLE_SEEDS)
    velocity, mass = square_motion(samples)
    features = TinySpatialFeatures()
    sifid = [
        video_sifid(features, pyramid[level], model.sample(SAMPLE_SEEDS, last_level=level)).mean().item()
        for level in (model.num_scales - 2, model.num_scales - 1)
    ]
    return {
        "velocity_error": (velocity - square_motion(real)[0]).abs().max().item(),
        "mass_ratio": (mass.mean() / square_motion(real)[1].mean()).item(),
        "sifid": max(sifid),
        "diversity": diversity(real, samples).item(),
        "sigma_error": max(sigma_errors(model, pyramid, noise_states)),
        "noise_diversity": noise_diversity(model, real),
    }


def failed_bars(values: dict) -> list[str]:
    bars = {
        "motion": values["velocity_error"] < 0.2,
        "realism": values["sifid"] <= 0.04 and values["mass_ratio"] >= 0.6,
        "diversity": values["diversity"] >= 0.12,
        "sigma": values["sigma_error"] < 1e-4,
        "noise": values["noise_diversity"] >= 0.01,
    }
    return [name for name, passed in bars.items() if not passed]


@pytest.mark.parametrize("mutant", [None, *(pytest.param(name, marks=pytest.mark.slow) for name in MUTANTS)])
def test_samples_move_like_the_clip_are_realistic_and_diverse_with_the_papers_noise(data, mutant):
    settings, target = MUTANTS.get(mutant, ({}, None))
    model, noise_states = train(data, **settings)
    values = measure(model, data.pyramid, noise_states)
    failed = failed_bars(values)
    if mutant is None:
        assert failed == [], values
    else:
        assert target in failed, values
