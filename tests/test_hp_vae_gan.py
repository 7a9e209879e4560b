"""HP-VAE-GAN: losses, 3D networks, the single-video data, and runs through the real CLI and
configs/hp_vae_gan/smoke.yaml."""

from functools import partial
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from callbacks.video_metrics import diversity, video_sifid
from datamodules.single_video import SingleVideoDataModule, build_video_pyramid, frame_strides_of, video_pyramid_shapes
from lightning_modules.hp_vae_gan import HPVAEGAN
from lightning_modules.networks.losses import HPVAEGANLoss, gaussian_kl
from lightning_modules.networks.video import PatchDecoder, PatchEncoder, RefinementStage, VideoCritic
from synthetic import moving_square_clip, write_clip
from tests.helpers import (
    REPO,
    TinySpatialFeatures,
    fit_run,
    logged_columns,
    predict_run,
    run_cli,
)

SMOKE = str(REPO / "configs/hp_vae_gan/smoke.yaml")
fit = partial(fit_run, SMOKE)  # fit(root, *extra) -> last.ckpt
predict = partial(predict_run, SMOKE)  # predict(last, root, *extra) -> predictions folder


# ---------------------------------------------------------------------- losses
def test_kl_is_the_mean_over_latent_elements():
    mu = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    logvar = torch.tensor([[0.0, 0.0], [np.log(4.0), np.log(0.25)]], dtype=torch.float32)
    # -1/2 (1 + log s^2 - mu^2 - s^2) per element: 0, 0.5, 0.5*(4 + 4 - 1 - ln 4), 0.5*(1 + 0.25 - 1 + ln 4)
    by_hand = [0.0, 0.5, 0.5 * (7 - np.log(4.0)), 0.5 * (0.25 + np.log(4.0))]
    assert gaussian_kl(mu, logvar).item() == pytest.approx(np.mean(by_hand), rel=1e-6)
    assert gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0


def test_vae_loss_is_weighted_reconstructions_plus_kl():
    loss = HPVAEGANLoss(rec_weight=10.0, kl_weight=1.0, gp_weight=0.1, adversarial_weight=1.0)
    real, rec = torch.zeros(1, 3, 2, 2, 2), torch.full((1, 3, 2, 2, 2), 0.5)  # MSE 0.25
    real_zero, vae = torch.zeros(1, 3, 2, 1, 1), torch.full((1, 3, 2, 1, 1), -1.0)  # MSE 1
    mu, logvar = torch.ones(1, 4, 2, 1, 1), torch.zeros(1, 4, 2, 1, 1)  # KL 0.5 per element
    terms = loss.vae(rec, real, vae, real_zero, mu, logvar)
    assert terms["reconstruction"].item() == pytest.approx(0.25)
    assert terms["vae_reconstruction"].item() == pytest.approx(1.0)
    assert terms["kl"].item() == pytest.approx(0.5)
    assert terms["loss"].item() == pytest.approx(10 * (0.25 + 1.0) + 0.5)


def test_gan_level_losses_match_a_hand_computation():
    torch.manual_seed(0)
    critic = VideoCritic(width=4, num_blocks=2)
    real, fake = torch.rand(1, 3, 3, 6, 6) * 2 - 1, torch.rand(1, 3, 3, 6, 6) * 2 - 1
    rec = real + 0.1
    loss = HPVAEGANLoss(rec_weight=10.0, kl_weight=1.0, gp_weight=0.1, adversarial_weight=1.0)
    terms = loss.generator(critic, fake, rec, real)
    assert terms["loss"].item() == pytest.approx(-critic(fake).mean().item() + 10 * 0.01, rel=1e-4)
    epsilon = torch.tensor(0.3)
    mixed = (epsilon * real + (1 - epsilon) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed)
    penalty = ((grad.norm(dim=1) - 1) ** 2).mean()  # per-voxel norm over channels
    critic_terms = loss.critic(critic, real, fake, epsilon)
    expected = -critic(real).mean() + critic(fake).mean() + 0.1 * penalty
    assert critic_terms["loss"].item() == pytest.approx(expected.item(), rel=1e-4)


# ---------------------------------------------------------------------- networks
def test_patch_encoder_and_decoder_keep_the_spatio_temporal_size():
    clip = torch.rand(2, 3, 4, 6, 9) * 2 - 1
    mu, logvar = PatchEncoder(width=8, latent_dim=5, num_blocks=3)(clip)
    assert mu.shape == logvar.shape == (2, 5, 4, 6, 9)  # one latent per (t, y, x)
    decoded = PatchDecoder(width=8, latent_dim=5, num_blocks=6)(mu)
    assert decoded.shape == clip.shape and decoded.abs().max() <= 1
    stage, critic = RefinementStage(width=8), VideoCritic(width=8)
    assert stage(torch.randn_like(clip), clip).shape == clip.shape
    assert critic(clip).shape == (2, 1, 4, 6, 9)


def test_encoder_patches_are_local():
    """A latent vector sees a 9^3 patch: three 3^3 feature blocks and the 3^3 mean/log-variance heads."""
    encoder = PatchEncoder(width=4, latent_dim=2, num_blocks=3)
    clip = torch.zeros(1, 3, 11, 11, 11, requires_grad=True)
    mu, _ = encoder(clip)
    (grad,) = torch.autograd.grad(mu[0, :, 5, 5, 5].sum(), clip)
    touched = grad.abs().sum(dim=(0, 1)).nonzero()
    assert touched.min().item() == 1 and touched.max().item() == 9


def test_gan_levels_send_no_gradient_to_the_vae():
    shapes = [(2, 6, 6), (2, 8, 8), (3, 10, 10)]
    model = HPVAEGAN(num_vae_levels=2, width=4, latent_dim=4, pyramid_shapes=shapes)
    real_zero = torch.rand(1, 3, 2, 6, 6)
    draw = partial(torch.randn)
    output = model._generate(2, model.shapes, draw, real_zero=real_zero)["output"]
    output.mean().backward()
    assert all(p.grad is None for p in model.decoder.parameters())
    assert all(p.grad is None for p in model.stage(1).parameters())
    assert all(p.grad is not None for p in model.stage(2).parameters())
    model.zero_grad()
    vae_level = model._generate(1, model.shapes, draw, real_zero=real_zero)["output"]
    vae_level.mean().backward()  # VAE levels train the encoder and decoder through the stage
    assert all(p.grad is not None for p in model.encoder.parameters())


def test_all_gan_baseline_has_no_vae_and_a_stage_per_level():
    model = HPVAEGAN(num_vae_levels=0, width=4, pyramid_shapes=[(2, 6, 6), (3, 8, 8)])
    assert model.encoder is None and model.decoder is None and len(model.stages) == 2
    assert model.sample([0, 1]).shape == (2, 3, 3, 8, 8)
    assert model.rec_noise.shape == (1, 3, 2, 6, 6)


# ---------------------------------------------------------------------- the official code's behaviour
TINY_SHAPES = [(2, 6, 6), (2, 7, 7), (2, 8, 8), (3, 9, 9)]


def tiny_pyramid(seed: int = 1) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, *shape, generator=generator) * 2 - 1 for shape in TINY_SHAPES]


def reconstruction_by_hand(model: HPVAEGAN, real_zero: torch.Tensor, level: int, eps: torch.Tensor) -> torch.Tensor:
    """The official rec mode written out (`GeneratorHPVAEGAN.forward` / `GeneratorSG.forward`): level 0 is
    tanh(decoder(mu + exp(logvar / 2) eps)), or tanh(stage_0(z*)) without a VAE; then at every level k
    x_up = trilinear resize (align_corners=True) and x = tanh(stage_k(x_up) + x_up), with no noise."""
    if model.num_vae_levels > 0:
        mu, logvar = model.encoder(real_zero)
        x = torch.tanh(model.decoder.body(mu + torch.exp(0.5 * logvar) * eps))
    else:
        x = torch.tanh(model.stage(0).body(model.rec_noise))
    for k in range(1, level + 1):
        upsampled = F.interpolate(x, size=model.shapes[k], mode="trilinear", align_corners=True)
        x = torch.tanh(model.stage(k).body(upsampled) + upsampled)
    return x


def posterior_eps(model: HPVAEGAN) -> torch.Tensor:
    """The first draw of the model's training noise: the posterior sample's eps [1, latent_dim, T_0, H_0, W_0]."""
    return torch.randn(1, model.hparams.latent_dim, *model.shapes[0], generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    ("num_vae_levels", "new_stage"),
    [(2, False), (2, True), (0, False), (0, True)],
    ids=["vae", "vae-official", "all-gan", "all-gan-official"],
)
def test_sigma_is_a_tenth_of_the_reconstruction_rmse_computed_by_hand(num_vae_levels, new_stage):
    """sigma_s = 0.1 RMSE(x_s, reconstruction): through the copied new stage s with
    `sigma_with_new_stage` (official `train_video.py`), else the upsampled reconstruction of level s - 1."""
    torch.manual_seed(0)
    model = HPVAEGAN(
        num_vae_levels=num_vae_levels, width=4, latent_dim=4, sigma_with_new_stage=new_stage, pyramid_shapes=TINY_SHAPES
    ).eval()
    pyramid, level = tiny_pyramid(), 3
    model._begin_level(level, pyramid)
    assert torch.equal(model.stage(level).body[0][0].weight, model.stage(level - 1).body[0][0].weight)  # copied
    with torch.no_grad():
        if new_stage:
            reconstruction = reconstruction_by_hand(model, pyramid[0], level, posterior_eps(model))
        else:
            below = reconstruction_by_hand(model, pyramid[0], level - 1, posterior_eps(model))
            reconstruction = F.interpolate(below, size=TINY_SHAPES[level], mode="trilinear", align_corners=True)
    expected = 0.1 * torch.sqrt(torch.mean((pyramid[level] - reconstruction) ** 2))
    assert model.noise_amps[level].item() == pytest.approx(expected.item(), rel=1e-5)


class RecordingOptimizer:
    """Stands in for a level's Adam: keeps the (clipped) gradients it is stepped with, changes nothing."""

    def __init__(self, parameters) -> None:
        self.parameters = list(parameters)
        self.grads: list[torch.Tensor] = []

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters:
            p.grad = None

    def step(self) -> None:
        self.grads = [p.grad.clone() for p in self.parameters]


def model_step_gradients(model: HPVAEGAN, level: int, pyramid: list[torch.Tensor]) -> list[torch.Tensor]:
    """The gradients that one training step of `level` hands to the optimizer of its newest stage."""
    model._set_level_modes(level)
    if model.critic is not None:
        model.critic.eval()  # no spectral-norm power iteration: the critic stays the same for both computations
    model._streams.pop("noise", None)  # draws from the start of the training noise
    opt = RecordingOptimizer(model.stage(level).parameters())
    if level < model.num_vae_levels:
        model._vae_step(level, pyramid[level], pyramid[0], opt)
    else:
        model._gan_step(level, pyramid[level], pyramid[0], RecordingOptimizer(model.critic.parameters()), opt)
    return opt.grads


def gradients_by_hand(model: HPVAEGAN, level: int, pyramid: list[torch.Tensor]) -> dict[torch.nn.Parameter, Any]:
    """The same step's loss with every generator parameter requiring a gradient, as in the official code;
    its gradient for every generator parameter (None where the loss does not reach it)."""
    generator = model._generator_modules()
    for module in generator:
        module.requires_grad_(True)
    model._streams.pop("noise", None)
    draw = model._training_draw()
    if level < model.num_vae_levels:  # the same draws in the same order as the model's step
        outputs = model._generate(level, model.shapes, draw, real_zero=pyramid[0])
        terms = (outputs["output"], pyramid[level], outputs["vae"], pyramid[0], outputs["mu"], outputs["logvar"])
        loss = model.loss.vae(*terms)["loss"]
    else:
        fake = model._generate(level, model.shapes, draw)["output"]
        torch.rand((), generator=model.noise_rng())  # the critic's interpolation weight
        reconstruction = model._generate(level, model.shapes, draw, real_zero=pyramid[0])["output"]
        loss = model.loss.generator(model.critic, fake, reconstruction, pyramid[level])["loss"]
    parameters = [p for module in generator for p in module.parameters()]
    return dict(zip(parameters, torch.autograd.grad(loss, parameters, allow_unused=True)))


def norm_of(grads: dict, modules: list[torch.nn.Module]) -> float:
    """L2 norm of the gradients of `modules`' parameters, over all of them (clip_grad_norm_'s total norm)."""
    return torch.linalg.vector_norm(
        torch.cat([grads[p].flatten() for m in modules for p in m.parameters() if grads[p] is not None])
    ).item()


@pytest.mark.parametrize(
    ("num_vae_levels", "level", "settings", "counted"),
    [
        (3, 2, {}, "every generator module"),  # VAE level 2: the lower VAE stage's gradients count
        (1, 3, {"backprop_lower_stages": True}, "every generator module"),  # official GAN level
        (1, 3, {}, "the newest stage"),  # default GAN level: the frozen GAN stages run without autograd
        (0, 3, {"clip_norm": None}, None),  # the official baseline script does not clip
    ],
    ids=["vae-level", "gan-level-official", "gan-level-default", "baseline-unclipped"],
)
def test_generator_gradients_are_clipped_over_the_official_set_of_parameters(
    num_vae_levels, level, settings, counted, monkeypatch
):
    """The official `clip_grad_norm_(G.parameters(), 5)` counts every generator gradient the loss reaches,
    the lower stages' too (they are in no optimizer); the clipping's total norm and the clipped gradients
    of the newest stage equal a computation by hand."""
    torch.manual_seed(0)
    settings = {"clip_norm": 1e-3} | settings  # small enough to clip every step
    model = HPVAEGAN(num_vae_levels=num_vae_levels, width=4, latent_dim=4, pyramid_shapes=TINY_SHAPES, **settings)
    model.manual_backward = lambda loss: loss.backward()
    norms = []  # the total norms the model's clipping computes
    clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *args, **kw: norms.append(clip(*args, **kw).item()))
    pyramid = tiny_pyramid()
    actual = model_step_gradients(model, level, pyramid)
    grads = gradients_by_hand(model, level, pyramid)
    newest = [grads[p] for p in model.stage(level).parameters()]
    if counted is None:
        assert norms == []
        scale = 1.0
    else:
        modules = model._generator_modules() if counted == "every generator module" else [model.stage(level)]
        assert norms == [pytest.approx(norm_of(grads, modules), rel=1e-5)]
        lower = [m for m in modules if m not in (model.encoder, model.decoder, model.stage(level))]
        if lower:  # the lower stages' share of the norm is large enough for the test to tell
            assert norm_of(grads, [m for m in modules if m not in lower]) < norms[0] * (1 - 1e-4)
        scale = min(1.0, 1e-3 / (norms[0] + 1e-6))
    largest = max(g.abs().max().item() for g in newest)  # conv biases before a norm get ~0: compare to the largest
    for a, e in zip(actual, newest, strict=True):
        torch.testing.assert_close(a, e * scale, rtol=1e-3, atol=1e-4 * largest * scale)


def test_instance_norm_is_the_official_train_mode_batchnorm_at_batch_one():
    """The official code never leaves train mode: BatchNorm normalises a batch of one clip by its own statistics."""
    torch.manual_seed(0)
    official = RefinementStage(width=4, norm="batch").train()
    for module in official.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            torch.nn.init.normal_(module.weight, 1.0, 0.3)
            torch.nn.init.normal_(module.bias, 0.0, 0.3)
    ours = RefinementStage(width=4, norm="instance").eval()
    ours.load_state_dict(official.state_dict(), strict=False)  # the same weights; no running statistics
    clip = torch.rand(1, 3, 3, 6, 6) * 2 - 1
    assert torch.allclose(ours(None, clip), official(None, clip), atol=1e-5)


@pytest.mark.parametrize("normal_init", [False, True])
def test_normal_init_draws_the_generator_weights_as_the_official_baseline_script(normal_init):
    """normal_init: every conv weight of the decoder and the stages ~ N(0, 0.02) whatever its fan-in, norm
    weights ~ N(1, 0.02), norm biases 0 (the baseline script's `weights_init`); without it, and for the
    critic in both cases, PyTorch's uniform weights within 1/sqrt(fan_in) (the HP-VAE-GAN code's)."""
    torch.manual_seed(0)
    model = HPVAEGAN(num_vae_levels=1, width=32, latent_dim=8, normal_init=normal_init, pyramid_shapes=TINY_SHAPES)
    convs = [m.weight for m in [*model.decoder.modules(), *model.stages.modules()] if isinstance(m, torch.nn.Conv3d)]
    norms = [m for m in model.stages.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    norm_weights, norm_biases = torch.cat([m.weight for m in norms]), torch.cat([m.bias for m in norms])
    within_default_bound = [w.abs().max().item() <= 1 / np.sqrt(w[0].numel()) for w in convs]
    std_002 = [w.std().item() == pytest.approx(0.02, rel=0.1) for w in convs]
    if normal_init:
        assert all(std_002)
        assert norm_weights.mean().item() == pytest.approx(1.0, abs=0.005)
        assert norm_weights.std().item() == pytest.approx(0.02, rel=0.25)
    else:  # std 1/sqrt(3 fan_in): 0.064 for the stages' first convolutions
        assert all(within_default_bound) and not all(std_002)
        assert torch.equal(norm_weights, torch.ones_like(norm_weights))
    assert torch.equal(norm_biases, torch.zeros_like(norm_biases))
    critic_conv = model.critic.body[1][0].parametrizations.weight.original  # spectral norm's raw weight
    assert critic_conv.abs().max().item() <= 1 / np.sqrt(critic_conv[0].numel())


# ---------------------------------------------------------------------- data
def test_pyramid_follows_the_official_sizes():
    # a 4:3 clip, 13 frames: the sizes `train_video.py` of shirgur/hp-vae-gan builds (coarsest width 33)
    shapes = video_pyramid_shapes(192, 256, 13)
    assert [s[2] for s in shapes] == [33, 41, 51, 65, 81, 102, 129, 162, 204, 256]
    assert [s[1] for s in shapes] == [24, 30, 38, 48, 60, 76, 96, 121, 153, 192]
    assert [s[0] for s in shapes] == [4, 4, 4, 5, 5, 5, 7, 7, 7, 13]
    assert frame_strides_of(10, (4, 3, 2, 1)) == [4, 4, 4, 3, 3, 3, 2, 2, 2, 1]


@pytest.mark.parametrize("kind", ["clip.mp4", "clip.gif", "frames"])
def test_video_files_and_frame_folders_give_the_same_clip(tmp_path, kind):
    frames = moving_square_clip(num_frames=12, size=(16, 24))
    path = write_clip(tmp_path / kind, frames, fps=10)
    data = SingleVideoDataModule(str(path), num_frames=5, stride=2, start_frame=1, max_width=16, min_width=8)
    expected = torch.from_numpy(frames[1:10:2]).permute(3, 0, 1, 2).float() / 127.5 - 1
    tolerance = {"clip.mp4": 0.1, "clip.gif": 0.05, "frames": 1e-6}[kind]  # H.264 and GIF palettes are lossy
    assert (data.clip - expected).abs().mean() < tolerance
    assert data.pyramid_shapes[-1] == (5, 10, 16)  # width 16, height 16 * 16/24
    data.setup("fit")
    assert [tuple(level.shape[2:]) for level in data.pyramid] == data.pyramid_shapes


def test_training_windows_start_at_uniform_frames_of_a_longer_clip(tmp_path):
    frames = np.repeat(np.arange(0, 200, 10, dtype=np.uint8)[:, None, None, None], 3, axis=3)  # frame t is 10 t
    path = write_clip(tmp_path / "frames", np.broadcast_to(frames, (20, 12, 16, 3)).copy())
    data = SingleVideoDataModule(str(path), num_frames=20, window_frames=13, max_width=16, min_width=8)
    assert data.pyramid_shapes[-1][0] == 13 and data.pyramid_shapes[0][0] == 4  # the window's pyramid
    data.setup("fit")
    starts = []
    for seed in range(40):
        pyramid = data.training_batch(torch.Generator().manual_seed(seed))
        finest = (pyramid[-1][0, 0, :, 0, 0] + 1) * 127.5 / 10  # frame numbers of the finest level
        assert torch.allclose(finest, finest[0] + torch.arange(13.0), atol=1e-3)
        assert torch.equal(pyramid[-1], data.training_batch(torch.Generator().manual_seed(seed))[-1])
        starts.append(round(finest[0].item()))
    assert set(starts) == set(range(8))  # every start of a 13-frame window in 20 frames
    with pytest.raises(ValueError, match="window_frames=21; expected 2 to num_frames=20"):
        SingleVideoDataModule(str(path), num_frames=20, window_frames=21, max_width=16, min_width=8)


def test_start_time_is_in_seconds(tmp_path):
    frames = moving_square_clip(num_frames=12, size=(16, 16))
    path = write_clip(tmp_path / "frames", frames)
    data = SingleVideoDataModule(str(path), num_frames=3, start_time=0.5, folder_fps=8, max_width=16, min_width=8)
    expected = torch.from_numpy(frames[4:7]).permute(3, 0, 1, 2).float() / 127.5 - 1
    assert torch.allclose(data.clip, expected)


def test_bad_inputs_are_clear_errors(tmp_path):
    build = partial(SingleVideoDataModule, num_frames=5, max_width=16, min_width=8)
    with pytest.raises(FileNotFoundError, match="nope.mp4: no such video file"):
        build(str(tmp_path / "nope.mp4"))
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="broken.mp4: cannot decode the video"):
        build(str(tmp_path / "broken.mp4"))
    (tmp_path / "clip.txt").write_text("x")
    with pytest.raises(ValueError, match="unsupported video type"):
        build(str(tmp_path / "clip.txt"))
    short = write_clip(tmp_path / "short.gif", moving_square_clip(num_frames=4))
    with pytest.raises(ValueError, match="short.gif: 4 frames .* needs 5"):
        build(str(short))
    folder = write_clip(tmp_path / "frames", moving_square_clip(num_frames=6))
    Image.new("RGB", (20, 16)).save(folder / "frame_0003.png")
    with pytest.raises(ValueError, match="frame_0003.png: frame is 16x20, but .*frame_0000.png is 16x16"):
        build(str(folder))


# ---------------------------------------------------------------------- metrics
def test_diversity_is_the_normalised_per_pixel_std():
    real = torch.tensor([-1.0, 1.0]).repeat(8).reshape(1, 1, 2, 2, 4)  # std of the values: sqrt(16/15)
    same = real.expand(4, -1, -1, -1, -1)
    assert diversity(real, same).item() == 0.0
    two = torch.cat([torch.zeros(1, 1, 2, 2, 4), torch.ones(1, 1, 2, 2, 4)])  # per-pixel std sqrt(1/2)
    assert diversity(real, two).item() == pytest.approx(np.sqrt(0.5) / np.sqrt(16 / 15), rel=1e-5)


def test_video_sifid_is_zero_for_the_real_clip_and_grows_with_distortion():
    features = TinySpatialFeatures()
    real = torch.rand(1, 3, 3, 24, 24) * 2 - 1
    scores = video_sifid(features, real, torch.cat([real, real * 0.5, real * 0.1]))
    assert abs(scores[0].item()) < 1e-6
    assert 0 < scores[1] < scores[2]


# ---------------------------------------------------------------------- CLI runs
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("hp_vae_gan_smoke")
    return root, fit(root)


def test_fit_trains_every_level_and_logs_losses_clips_and_diversity(trained):
    root, last = trained
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["iteration_progress"]["iteration"] == 20  # 5 levels x 4 iterations
    assert checkpoint["hyper_parameters"]["pyramid_shapes"] == [
        (2, 6, 8),
        (2, 7, 10),
        (2, 9, 12),
        (3, 10, 14),
        (5, 12, 16),
    ]
    logged = logged_columns(root)
    vae_terms = {"train/level_0/kl", "train/level_1/vae_reconstruction", "train/level_1/reconstruction"}
    assert vae_terms | {"train/diversity"} <= logged
    for term in ("critic_real", "critic_fake", "gradient_penalty", "adversarial", "reconstruction", "noise_amp"):
        assert {f"train/level_2/{term}", f"train/level_4/{term}"} <= logged
    gifs = sorted(root.glob("csv/version_*/media/samples_samples_*.gif"))
    assert len(gifs) == 5  # one per level
    assert Image.open(gifs[-1]).n_frames == 5


def test_predict_writes_mp4_gif_and_frame_strips_with_a_seed_per_sample(trained, tmp_path):
    _, last = trained
    first = predict(last, tmp_path / "a")
    names = sorted(p.name for p in first.iterdir())
    assert names == [f"sample_0000{i}{suffix}" for i in range(3) for suffix in (".gif", ".mp4", "_frames.png")]
    second = predict(last, tmp_path / "b", "--data.num_samples=2", "--data.batch_size=2")
    # a sample depends on its seed only, not on the batch it was drawn in
    assert (first / "sample_00001_frames.png").read_bytes() == (second / "sample_00001_frames.png").read_bytes()
    assert (first / "sample_00000_frames.png").read_bytes() != (first / "sample_00001_frames.png").read_bytes()
    written = SingleVideoDataModule(str(first / "sample_00000.mp4"), num_frames=5, max_width=16, min_width=8)
    assert written.clip.shape == (3, 5, 12, 16)


def test_predict_longer_and_larger_clips(trained, tmp_path):
    _, last = trained
    out = predict(last, tmp_path, "--data.sample_scale=[2.0,1.0,2.0]", "--data.num_samples=1")
    assert Image.open(out / "sample_00000.gif").n_frames == 10
    assert Image.open(out / "sample_00000.gif").size == (32, 12)


def test_test_reports_reconstruction_and_video_sifid(trained, tmp_path):
    _, last = trained
    cli = run_cli(
        "test", "--config", SMOKE, f"--ckpt_path={last}", f"--trainer.default_root_dir={tmp_path}",
        "--trainer.callbacks+=callbacks.VideoSIFID", "--trainer.callbacks.num_samples=3",
        "--trainer.callbacks.feature_extractor=tests.helpers.TinySpatialFeatures",
    )  # fmt: skip
    assert cli.trainer.callback_metrics["test/rec_psnr_level_0"] > 5
    sifid = next(cb for cb in cli.trainer.callbacks if type(cb).__name__ == "VideoSIFID").last
    assert sifid["test/video_sifid_mean"] > 0 and sifid["test/video_sifid_std"] > 0


@pytest.mark.slow  # a smoke fit each: the smoke fit above is the fast tier's
@pytest.mark.parametrize("baseline", ["singan3d", "consingan3d"])
def test_baseline_configs_train_all_gan_levels(baseline, tmp_path):
    settings = yaml.safe_load((REPO / f"configs/hp_vae_gan/{baseline}.yaml").read_text())["model"]["init_args"]
    overrides = [
        f"--model.{name}={'null' if value is None else value}"
        for name, value in settings.items()
        if name != "iters_per_scale"
    ]
    cli = run_cli("fit", "--config", SMOKE, f"--trainer.default_root_dir={tmp_path}", *overrides)
    model = cli.model
    assert model.iteration == 20 and model.encoder is None and len(model.stages) == 5
    # as the official baseline script: no clipping, N(0, 0.02) generators with BatchNorm
    assert model.hparams.clip_norm is None and model.hparams.normal_init and model.hparams.norm == "batch"
    assert "train/diversity" in logged_columns(tmp_path)
    groups = model.configure_optimizers()[4].param_groups  # the generator of the finest level
    decay = settings.get("lr_decay", 0.2)
    expected = [5e-4 * decay**k for k in reversed(range(settings.get("train_depth", 1)))]
    assert [group["lr"] for group in groups] == pytest.approx(expected)


@pytest.mark.slow  # another smoke fit
def test_flags_for_the_official_codes_behaviour_train(tmp_path):
    cli = run_cli(
        "fit", "--config", SMOKE, f"--trainer.default_root_dir={tmp_path}", "--model.norm=instance",
        "--model.sigma_with_new_stage=true", "--model.backprop_lower_stages=true", "--model.train_depth=2",
    )  # fmt: skip
    model = cli.model
    assert model.iteration == 20 and torch.all(model.noise_amps[1:] > 0)
    one, batch = model.sample([7]), model.sample([3, 7])
    assert torch.allclose(one[0], batch[1], atol=1e-5)  # instance statistics: a sample ignores its batch
    assert F.mse_loss(batch[0], batch[1]) > 0


def test_antialias_false_downsamples_as_opencvs_linear_filter():
    """`--data.antialias=false` is the official resize (OpenCV's INTER_LINEAR, no antialiasing): at
    an exact factor 2 every output pixel is the mean of its 2x2 block, every other frame is kept;
    the default antialiased filter also weighs the neighbouring pixels."""
    clip = torch.rand(3, 5, 8, 12) * 2 - 1  # [3, N, H, W]
    official = build_video_pyramid(clip, [(3, 4, 6)], antialias=False)[0]
    blocks = F.avg_pool2d(clip[:, ::2].permute(1, 0, 2, 3), 2).permute(1, 0, 2, 3)[None]  # [1, 3, 3, 4, 6]
    torch.testing.assert_close(official, blocks)
    antialiased = build_video_pyramid(clip, [(3, 4, 6)])[0]
    assert (antialiased - blocks).abs().max() > 0.05
