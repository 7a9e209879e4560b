"""SinGAN: a GAN pyramid learned from a single image, trained coarse to fine (Shaham et al.,
ICCV 2019, section 2; `SinGAN/training.py` of tamarott/SinGAN).

One `fit` trains the whole pyramid. Every scale's generator, critic, optimizers and LR
schedule exist from the start (so checkpoints always have the same structure); the
iteration counter of `ProgressiveModule` decides which scale trains. Between scales a
generated image goes through `ImagePyramidModule.to_next_scale`: clamped to [-1, 1],
upsampled by 1/r and cropped, as the official `imresize` round trip through uint8 does, in
the random chain, the reconstruction chain (and so sigma) and sampling alike.

Many images, one run. With a DataModule of K images (`--data.path=folder/`) the module trains
K independent pyramids at once: every scale's K generators run as one grouped network, and so
do its K critics (networks/grouped.py), each model with its own noise amplitudes,
reconstruction noise, noise stream, BatchNorm statistics and Adam moments. Model k is the
model that a run of image k alone with `seed + k` trains, up to float rounding (tested): its
initial weights, its z* and its training noise are drawn from that seed. Under DDP every
process trains all K models with its own noise (model k in rank r draws from seed + k + r),
as a single image's run does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import MultiStepLR

from dfgen.contract import ImagePrediction
from dfgen.resize import Shape, rescale
from dfgen.settings import (
    AT_LEAST_1,
    BETAS,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    Each,
    Range,
    check_settings,
)
from dfgen.tensors import draw_per_sample, psnr, seeded_generators
from lightning_modules.networks.grouped import (
    model_view,
    per_model,
    per_model_mean,
    split_models,
    stack_models,
    stack_state_dicts,
)
from lightning_modules.networks.losses import SinGANLoss
from lightning_modules.networks.pyramid import (
    PatchCritic,
    ScaleGenerator,
    coarsest_noise,
    eval_mode,
    run_pyramid,
    scale_noise,
    scale_width,
)
from lightning_modules.progressive import ADAM_IMPLEMENTATION, ImagePyramidModule, pyramid_adam


class SinGAN(ImagePyramidModule):
    """Single-image GAN pyramid (Shaham et al., ICCV 2019).

    Args:
        iters_per_scale: training iterations at every scale (paper: 2000).
        critic_steps: critic updates per iteration (paper: 3).
        generator_steps: generator updates per iteration (paper: 3). Each step recomputes
            the fake from the same noise and `prev` (the official code reuses a stale graph,
            which current PyTorch rejects).
        lr_generator: Adam learning rate of every generator.
        lr_critic: Adam learning rate of every critic.
        betas: Adam betas of both players.
        lr_milestone: fraction of a scale's iterations after which both LRs are multiplied
            by `lr_gamma` (paper: 0.8, i.e. iteration 1600 of 2000).
        lr_gamma: LR decay factor at the milestone.
        gp_weight: weight lambda of the per-pixel gradient penalty (paper: 0.1).
        rec_weight: weight alpha of the reconstruction loss (paper: 10).
        adversarial_weight: weight of the generator's adversarial term (1 in the official
            code; 0 trains the generators on the reconstruction alone).
        noise_amp_factor: sigma_s = factor * RMSE(real_s, upsampled reconstruction) (0.1).
        base_width: channels at scales 0-3; doubles every 4 scales.
        max_width: channel cap (128).
        resample_rec_noise: draw a new coarsest reconstruction noise z* every iteration, as
            the official code does; False keeps one fixed z*, as the paper describes.
        seed: seed of the initial weights, z* and the training noise (rank r of a multi-process
            run draws its noise from seed + r; image k of several from seed + k).
        pyramid_shapes: (height, width) of every scale, coarse to fine. Taken from the
            DataModule when None; stored in the checkpoint's hyper-parameters.
        scale_ratio: r, the fitted ratio between consecutive scales; a generated image is
            upsampled by 1/r and cropped to the next scale. Taken from the DataModule's
            `pyramid_ratio` when None; stored in the checkpoint's hyper-parameters.
        image_names: the training images, one model each (K = their number). Taken from the
            DataModule's `image_names` when None; stored in the checkpoint's hyper-parameters.
        adam_implementation: how Adam updates the weights: "default" (torch's choice, as the official
            code), "for-loop", "foreach" or "fused" (fewer kernel launches; the same weights up to rounding).
    """

    setting_rules = {
        "adam_implementation": ADAM_IMPLEMENTATION,
        "iters_per_scale": AT_LEAST_1, "critic_steps": AT_LEAST_1, "generator_steps": AT_LEAST_1,
        "lr_generator": POSITIVE, "lr_critic": POSITIVE, "betas": BETAS, "lr_milestone": PROBABILITY,
        "lr_gamma": POSITIVE, "gp_weight": NON_NEGATIVE, "rec_weight": NON_NEGATIVE, "noise_amp_factor": NON_NEGATIVE,
        "base_width": AT_LEAST_1, "max_width": AT_LEAST_1, "pyramid_shapes": Each(Each(AT_LEAST_1, length=2)),
        "adversarial_weight": NON_NEGATIVE, "scale_ratio": Range(0, 1, open_low=True, open_high=True),
    }  # fmt: skip

    def __init__(
        self,
        iters_per_scale: int = 2000,
        critic_steps: int = 3,
        generator_steps: int = 3,
        lr_generator: float = 5e-4,
        lr_critic: float = 5e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        lr_milestone: float = 0.8,
        lr_gamma: float = 0.1,
        gp_weight: float = 0.1,
        rec_weight: float = 10.0,
        adversarial_weight: float = 1.0,
        noise_amp_factor: float = 0.1,
        base_width: int = 32,
        max_width: int = 128,
        resample_rec_noise: bool = False,
        seed: int = 0,
        pyramid_shapes: list[tuple[int, int]] | None = None,
        scale_ratio: float | None = None,
        image_names: list[str] | None = None,
        adam_implementation: str = "default",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        self.loss = SinGANLoss(gp_weight, rec_weight, adversarial_weight)
        self.generators = nn.ModuleList()
        self.critics = nn.ModuleList()
        self._rec_prev_cache: dict[int, torch.Tensor] = {}
        if pyramid_shapes is not None:
            self._build([tuple(shape) for shape in pyramid_shapes])

    # ------------------------------------------------------------------ structure
    @property
    def num_models(self) -> int:
        """K, the number of training images, one model each."""
        return len(self.hparams.image_names) if self.hparams.image_names else 1

    def configure_model(self) -> None:
        """Take the DataModule's image names before the networks are built (see ProgressiveModule)."""
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        names = list(datamodule.image_names) if datamodule is not None else None
        if self.hparams.image_names is None and not self.shapes:
            self.hparams.image_names = names
        elif names is not None and self._trainer.state.fn == "fit" and len(names) != self.num_models:
            raise ValueError(f"the model holds {self.num_models} images' pyramids, the data has {len(names)} images")
        super().configure_model()

    def _build(self, shapes: list[Shape]) -> None:
        """Every scale's networks, the noise amplitudes [S, K] and z* [1, K*3, h_0, w_0]. Model k
        is drawn as a run of its image alone draws it, from seed + k."""
        self.shapes = shapes
        self.widths = [scale_width(s, self.hparams.base_width, self.hparams.max_width) for s in range(len(shapes))]
        # Lightning builds the networks on the training device; its generator, and the CPU's, are
        # seeded below and given back as they were
        device = torch.get_default_device()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            singles = [self._seeded_single_model(self.hparams.seed + k) for k in range(self.num_models)]
            if self.num_models == 1:
                generators, critics, rec_noise = singles[0]
            else:
                generators = [ScaleGenerator(width, num_models=self.num_models) for width in self.widths]
                critics = [PatchCritic(width, num_models=self.num_models) for width in self.widths]
                for s, (generator, critic) in enumerate(zip(generators, critics)):
                    generator.load_state_dict(stack_state_dicts([single[0][s].state_dict() for single in singles]))
                    critic.load_state_dict(stack_state_dicts([single[1][s].state_dict() for single in singles]))
                rec_noise = stack_models([single[2] for single in singles])
        self.generators.extend(generators)
        self.critics.extend(critics)
        self.register_buffer("noise_amps", torch.ones(len(shapes), self.num_models))
        self.register_buffer("rec_noise", rec_noise)

    def _seeded_single_model(self, seed: int) -> tuple[list[nn.Module], list[nn.Module], torch.Tensor]:
        """One image's generators, critics and z* [1, 3, h_0, w_0], drawn in this order after seeding
        the global generator with `seed`."""
        torch.manual_seed(seed)
        generators = [ScaleGenerator(width) for width in self.widths]
        critics = [PatchCritic(width) for width in self.widths]
        return generators, critics, coarsest_noise(1, self.shapes[0], generator=None)

    def configure_optimizers(self) -> tuple[list, list]:
        """One Adam per player and scale, ordered [critic_0, generator_0, critic_1, ...]."""
        hp = self.hparams
        milestone = int(hp.lr_milestone * hp.iters_per_scale)
        optimizers = []
        for critic, generator in zip(self.critics, self.generators):
            optimizers.append(
                pyramid_adam(critic.parameters(), hp.adam_implementation, lr=hp.lr_critic, betas=tuple(hp.betas))
            )
            optimizers.append(
                pyramid_adam(generator.parameters(), hp.adam_implementation, lr=hp.lr_generator, betas=tuple(hp.betas))
            )
        schedulers = [MultiStepLR(opt, milestones=[milestone], gamma=hp.lr_gamma) for opt in optimizers]
        return optimizers, schedulers

    # ------------------------------------------------------------------ noise
    def _amplitude(self, scale: int) -> torch.Tensor:
        """sigma_s of every model, as a factor of stacked images: [1] for one model, [1, K*3, 1, 1]."""
        return per_model(self.noise_amps[scale], 3, 2)

    def _rec_input(self, scale: int, batch: int, shape: Shape) -> torch.Tensor:
        """Scaled reconstruction noise [B, K*3, h, w]: sigma_0 * z* at the coarsest scale, zeros above."""
        if scale == 0:
            if tuple(shape) != tuple(self.rec_noise.shape[-2:]):
                raise ValueError(f"the reconstruction noise is {tuple(self.rec_noise.shape[-2:])}, not {shape}")
            return self._amplitude(0) * self.rec_noise.expand(batch, -1, -1, -1)
        return torch.zeros(batch, 3 * self.num_models, *shape, device=self.device)

    def noise_rngs(self) -> list[torch.Generator]:
        """The training-noise stream of every model; model k's is the stream of a run of its image
        alone seeded seed + k (model 0's keeps the single-image name, "noise")."""
        return [self.rng(f"noise_{k}" if k else "noise", seed_offset=k) for k in range(self.num_models)]

    def _scale_noise(self, scale: int, rngs: list[torch.Generator]) -> torch.Tensor:
        """sigma_s * z of every model [1, K*3, h_s, w_s], model k's z from its own stream."""
        return self._amplitude(scale) * stack_models([scale_noise(scale, 1, self.shapes[scale], rng) for rng in rngs])

    def _images_of_models(self, images: torch.Tensor) -> torch.Tensor:
        """Stacked images [N, K*3, H, W] -> [K*N, 3, H, W], model 0's N images first."""
        return model_view(images, self.num_models).transpose(0, 1).flatten(0, 1)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def _random_prev(self, scale: int) -> torch.Tensor:
        """Upsampled output of the frozen scales below `scale`, from fresh noise ("rand" mode)."""
        if scale == 0:
            return torch.zeros(1, 3 * self.num_models, *self.shapes[0], device=self.device)
        rngs = self.noise_rngs()
        inputs = [self._scale_noise(s, rngs) for s in range(scale)]
        return self.to_next_scale(run_pyramid(self.generators, inputs, self.shapes, self.ratio), self.shapes[scale])

    @torch.no_grad()
    def _rec_prev(self, scale: int) -> torch.Tensor:
        """Upsampled reconstruction of the frozen scales below `scale` (deterministic, cached)."""
        if scale == 0:
            return torch.zeros(1, 3 * self.num_models, *self.shapes[0], device=self.device)
        if scale not in self._rec_prev_cache:
            inputs = [self._rec_input(s, 1, self.shapes[s]) for s in range(scale)]
            chain = run_pyramid(self.generators, inputs, self.shapes, self.ratio)
            self._rec_prev_cache = {scale: self.to_next_scale(chain, self.shapes[scale])}
        return self._rec_prev_cache[scale]

    @torch.no_grad()
    def sample(
        self,
        seeds: list[int],
        shapes: list[Shape] | None = None,
        gen_start_scale: int = 0,
        last_scale: int | None = None,
        inject: torch.Tensor | None = None,
        inject_scale: int = 0,
    ) -> torch.Tensor:
        """Draw one image per seed and model [len(seeds), K*3, H, W] in [-1, 1], all scales in eval
        mode; every model draws seed i's noise, as a run of its image alone would.

        Scales below `gen_start_scale` use the reconstruction noise. With `inject` [B, 3, H, W]
        (an image at the training size) generation starts at scale n = `inject_scale` from
        the injected image shrunk to scale n - 1 and upsampled back to n, so that G_n sees the
        blur it was trained on, as the official `paint2image.py`, `harmonization.py` and
        `editing.py` prepare it; scales n and above add their noise.
        """
        shapes = shapes or self.shapes
        if inject is not None and (list(shapes) != self.shapes or tuple(inject.shape[-2:]) != self.shapes[-1]):
            raise ValueError(f"an injected image is generated at the training size {self.shapes[-1]}")
        last_scale = self.num_scales - 1 if last_scale is None else last_scale
        generators = seeded_generators(seeds)
        first_scale = inject_scale if inject is not None else 0
        inputs = []
        for s in range(first_scale, last_scale + 1):
            if s < gen_start_scale:
                inputs.append(self._rec_input(s, len(seeds), shapes[s]))
            else:
                noise = draw_per_sample(generators, scale_noise, s, 1, shapes[s]).to(self.device)
                inputs.append(self._amplitude(s) * noise.repeat(1, self.num_models, 1, 1))
        if inject is not None:  # every model starts from the same injected image
            inject = inject.to(self.device).repeat(1, self.num_models, 1, 1)
        prev = self._injected_input(inject, inject_scale) if inject is not None else None
        with eval_mode(self.generators):
            return run_pyramid(self.generators, inputs, shapes, self.ratio, first_scale, prev).clamp(-1, 1)

    def _injected_input(self, image: torch.Tensor, scale: int) -> torch.Tensor:
        """The image [B, 3, H, W] entering G_scale: resized by r^(S - scale + 1) to scale - 1, then by 1/r."""
        shrink = self.ratio ** (self.num_scales - scale)
        return self.to_next_scale(rescale(image, shrink, self.shapes[scale - 1]), self.shapes[scale])

    @torch.no_grad()
    def reconstruct(self, last_scale: int | None = None) -> torch.Tensor:
        """The fixed-noise reconstruction of the training image at `last_scale` (default finest)."""
        last_scale = self.num_scales - 1 if last_scale is None else last_scale
        inputs = [self._rec_input(s, 1, self.shapes[s]) for s in range(last_scale + 1)]
        with eval_mode(self.generators):
            return run_pyramid(self.generators, inputs, self.shapes, self.ratio).clamp(-1, 1)

    def preview_images(self, num_samples: int, seed: int = 0) -> dict[str, torch.Tensor]:
        """Images for the sample-grid callback: random samples and the reconstruction so far
        (every model's, model after model)."""
        scale = self.latest_scale
        seeds = list(range(seed, seed + num_samples))
        samples, reconstruction = self.sample(seeds, last_scale=scale), self.reconstruct(scale)
        return {"samples": self._images_of_models(samples), "reconstruction": self._images_of_models(reconstruction)}

    def sifid_images(self, num_samples: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The SIFID callback's hook: the finest real image and `num_samples` random samples, as
        one unnamed set (logged as "<stage>/sifid_mean"); with several images, one set per image
        in the group "images" ("<stage>/sifid_images/<name>_mean", and the mean and std over the
        images as "<stage>/sifid_images_mean" and "_std")."""
        real = self.trainer.datamodule.pyramid[-1].to(self.device)
        samples = self.sample(list(range(num_samples)))
        if self.num_models == 1:
            return {"": (real, samples)}
        pairs = zip(split_models(real, self.num_models), split_models(samples, self.num_models))
        return {f"images/{name}": pair for name, pair in zip(self.hparams.image_names, pairs)}

    def test_step(self, pyramid: list[torch.Tensor], batch_idx: int) -> None:
        """Reconstruction PSNR (dB, images in [-1, 1]) of every scale's real image; with several
        images, the mean over the images of each one's PSNR."""
        for scale, real in enumerate(pyramid):
            pairs = zip(split_models(self.reconstruct(scale), self.num_models), split_models(real, self.num_models))
            self.log(f"test/rec_psnr_scale_{scale}", torch.stack([psnr(rec, image) for rec, image in pairs]).mean())

    # ------------------------------------------------------------------ training
    def _begin_scale(self, scale: int, real: torch.Tensor) -> None:
        """Copy-initialise from the scale below when widths match, and set
        sigma_s = noise_amp_factor * RMSE(real_s, upsampled reconstruction of the scales below)."""
        if scale > 0:
            if self.widths[scale] == self.widths[scale - 1]:
                self.generators[scale].load_state_dict(self.generators[scale - 1].state_dict())
                self.critics[scale].load_state_dict(self.critics[scale - 1].state_dict())
            squared_error = model_view((real - self._rec_prev(scale)) ** 2, self.num_models)  # [1, K, 3, h, w]
            self.noise_amps[scale] = self.hparams.noise_amp_factor * torch.sqrt(per_model_mean(squared_error))

    def training_step(self, pyramid: list[torch.Tensor], batch_idx: int) -> None:
        scale, step = divmod(self.iteration, self.hparams.iters_per_scale)
        real = pyramid[scale]  # [1, K*3, h_s, w_s]
        # frozen scales in eval mode before sigma_s runs them: their BatchNorm statistics must not
        # move, also when a resumed run starts here with every module in train mode
        self._set_trainable(scale, [self.generators, self.critics])
        if step == 0:
            self._begin_scale(scale, real)
        generator, critic = self.generators[scale], self.critics[scale]
        opt_critic, opt_generator = self._scale_optimizers(scale)
        rngs = self.noise_rngs()

        if self.hparams.resample_rec_noise and scale == 0:
            self.rec_noise.copy_(stack_models([coarsest_noise(1, self.shapes[0], rng) for rng in rngs]))
        noise = self._scale_noise(scale, rngs)

        for _ in range(self.hparams.critic_steps):  # maximise D(real) - D(G(z, prev))
            prev = self._random_prev(scale)
            with torch.no_grad():
                fake = generator(noise, prev)
            epsilon = stack_models([torch.rand((), generator=rng, device=rng.device) for rng in rngs])  # [K] or []
            critic_terms = self.loss.critic(critic, real, fake, epsilon)
            self.update(opt_critic, critic_terms["loss"])

        rec_input, rec_prev = self._rec_input(scale, 1, self.shapes[scale]), self._rec_prev(scale)
        with self.frozen(critic):
            for _ in range(self.hparams.generator_steps):  # minimise -D(G(z, prev)) + alpha * rec
                fake = generator(noise, prev)
                reconstruction = generator(rec_input, rec_prev)
                generator_terms = self.loss.generator(critic, fake, reconstruction, real)
                self.update(opt_generator, generator_terms["loss"])

        for scheduler in self._scale_schedulers(scale):
            scheduler.step()
        self._finish_iteration([generator])
        self._log_terms(self._scale_terms(scale, critic_terms, generator_terms))

    def _scale_terms(self, scale: int, critic_terms: dict, generator_terms: dict) -> dict:
        """The scale's losses and noise amplitude, named scale_<s>/<term>; with several images,
        the mean over the models (a "loss" is the sum of the models' losses)."""
        critic_terms = {("critic_loss" if k == "loss" else k): v for k, v in critic_terms.items()}
        generator_terms = {("generator_loss" if k == "loss" else k): v for k, v in generator_terms.items()}
        terms = critic_terms | generator_terms | {"noise_amp": self.noise_amps[scale]}
        means = {k: v / self.num_models if k.endswith("_loss") else v.mean() for k, v in terms.items()}
        return {f"scale_{scale}/{k}": v for k, v in means.items()} | {"scale": scale}

    # ------------------------------------------------------------------ predict
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> ImagePrediction:
        """Generate the images a `SampleRequests` batch asks for; returns images and file names.

        With an injected image and a mask (harmonization, editing), the output is composited
        as the official scripts do: the generated image inside the feathered mask, the
        training image outside it. The first batch of random samples also returns the
        fixed-noise reconstruction when the requested size is the training size. With several
        images, image k's files are named "<its name>/sample_<i>" (and "<its name>/reconstruction").
        """
        shapes = [tuple(shape) for shape in batch["shapes"][0].tolist()]
        inject_scale = int(batch["inject_scale"][0])
        inject = batch.get("inject") if inject_scale >= 0 else None
        images = self.sample(
            batch["seed"].tolist(),
            shapes,
            gen_start_scale=int(batch["gen_start_scale"][0]),
            inject=inject,
            inject_scale=max(inject_scale, 0),
        )
        if inject is not None and "inject_mask" in batch:
            mask = batch["inject_mask"]  # [B, 1, H, W] in [0, 1]
            images = mask * images + (1 - mask) * batch["inject_background"]
        extras = {}
        if inject is None and batch_idx == 0 and shapes == self.shapes:
            extras["reconstruction"] = self.reconstruct()
        names = [f"sample_{int(i):05d}" for i in batch["index"]]
        folders = [f"{name}/" for name in self.hparams.image_names] if self.num_models > 1 else [""]
        return {
            "images": self._images_of_models(images),
            "names": [folder + name for folder in folders for name in names],
            "extras": {
                folder + k: image
                for k, v in extras.items()
                for folder, image in zip(folders, self._images_of_models(v))
            },
        }

    # ------------------------------------------------------------------ checkpoint
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("state_dict", {})
        if state.get("noise_amps") is not None and state["noise_amps"].dim() == 1:  # saved before several images
            state["noise_amps"] = state["noise_amps"][:, None]
        self._rec_prev_cache = {}

    def on_fit_start(self) -> None:
        self._rec_prev_cache = {}
