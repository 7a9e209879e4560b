"""HP-VAE-GAN: diverse videos from a single video (Gur, Benaim, Wolf, NeurIPS 2020;
official code: shirgur/hp-vae-gan).

A pyramid of levels trained coarse to fine in one `fit`. The first `num_vae_levels` levels
form a patch VAE: an encoder gives one Gaussian latent per spatio-temporal location of the
coarsest clip, a decoder maps the latent map back to a clip, and a residual refinement stage
per level upsamples it; they learn from reconstruction + KL only. The remaining levels are
patch GAN levels: one refinement stage each, with injected noise, trained with WGAN-GP and
reconstruction. `num_vae_levels=0` gives the all-GAN 3D SinGAN-style baseline of the official
`train_video_baselines.py`.

Every network and optimizer exists from the start (checkpoints keep one structure); the
iteration counter of `ProgressiveModule` decides which level trains.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.optim import Adam

from dfgen.contract import VideoPrediction
from dfgen.resize import VideoShape
from dfgen.settings import AT_LEAST_1, BETAS, NON_NEGATIVE, POSITIVE, Each, OneOf, check_settings
from dfgen.tensors import draw_per_sample, psnr, seeded_generators
from lightning_modules.distributed import broadcast_buffers
from lightning_modules.networks.losses import HPVAEGANLoss
from lightning_modules.networks.pyramid import NORMS, eval_mode, init_weights
from lightning_modules.networks.video import (
    PatchDecoder,
    PatchEncoder,
    RefinementStage,
    VideoCritic,
    reparameterise,
    upsample_clip,
)
from lightning_modules.progressive import ADAM_IMPLEMENTATION, ProgressiveModule, pyramid_adam

Draw = Callable[[tuple[int, ...]], torch.Tensor]  # shape -> unit Gaussian noise of that shape


class HPVAEGAN(ProgressiveModule):
    """Hierarchical patch VAE-GAN on one video clip (3D convolutions).

    Args:
        iters_per_scale: training iterations of every level (paper: 50,000).
        num_vae_levels: M, the coarse levels trained as a patch VAE (paper: 3); 0 = all-GAN baseline.
        lr_generator: Adam learning rate of the newest stage (5e-4).
        lr_critic: Adam learning rate of the critic (5e-4).
        betas: Adam betas of both players.
        lr_decay: the encoder/decoder train at lr_generator * lr_decay^s at VAE level s, and a
            stage k levels below the newest (see `train_depth`) at lr_generator * lr_decay^k (0.2).
        train_depth: how many of the newest stages train at each level (official default 1;
            more stages is the official `--train-all` / ConSinGAN's concurrent training). At GAN
            levels the trained stages never reach below level M.
        rec_weight: alpha, weight of the reconstruction terms (10).
        kl_weight: beta, weight of the KL term (1).
        gp_weight: lambda, weight of the per-voxel gradient penalty (0.1).
        adversarial_weight: weight of the generator's adversarial term (1).
        noise_amp_factor: sigma_s = factor * RMSE(real_s, reconstruction) at the start of level s (0.1).
        clip_norm: max L2 norm of the generator gradients at every generator step (5, as the official
            `train_video.py`); None does not clip (the official baseline script `train_video_baselines.py`).
            The norm is taken over every generator parameter that received a gradient, as the official
            `clip_grad_norm_(G.parameters())`: at VAE levels that includes the lower VAE stages, which
            are in no optimizer but pass the gradient on to the decoder.
        normal_init: initialise the convolutions of the decoder and the refinement stages with N(0, 0.02)
            and their norm weights with N(1, 0.02), as the official baseline script's generators do;
            False (default) keeps PyTorch's initialisation, as the official HP-VAE-GAN code.
        width: hidden channels of every 3D network (64, constant over levels).
        latent_dim: channels of the latent map (128).
        encoder_blocks: spectrally normalised feature blocks of the encoder (3 = enc_blocks + 1).
        num_blocks: ConvBlocks of the decoder, the stages and the critic before their tail (6).
        norm: "batch" (frozen levels and sampling use running statistics) or "instance" (every
            clip normalised by its own statistics: what the official code does by never leaving
            train mode at batch size 1, sampling included).
        sigma_with_new_stage: compute sigma_s from the reconstruction through the freshly copied
            stage s, as the official code; False (default) uses the upsampled reconstruction of
            level s - 1, as SinGAN defines it.
        backprop_lower_stages: let gradients flow through the frozen GAN stages below the current
            level, so their (unused) gradients count in the clipping norm, as the official code;
            False (default) runs them without autograd, which is faster.
        seed: seed of the training noise (rank r of a multi-process run uses seed + r).
        pyramid_shapes: (frames, height, width) of every level, coarse to fine; taken from the
            DataModule when None and stored in the checkpoint's hyper-parameters.
        adam_implementation: how Adam updates the weights: "default" (torch's choice, as the official
            code), "for-loop", "foreach" or "fused" (fewer kernel launches; the same weights up to rounding).
    """

    setting_rules = {
        "adam_implementation": ADAM_IMPLEMENTATION,
        "iters_per_scale": AT_LEAST_1, "num_vae_levels": NON_NEGATIVE, "lr_generator": POSITIVE, "lr_critic": POSITIVE,
        "betas": BETAS, "lr_decay": POSITIVE, "train_depth": AT_LEAST_1, "rec_weight": NON_NEGATIVE,
        "kl_weight": NON_NEGATIVE, "gp_weight": NON_NEGATIVE, "adversarial_weight": NON_NEGATIVE,
        "noise_amp_factor": NON_NEGATIVE, "clip_norm": POSITIVE, "width": AT_LEAST_1, "latent_dim": AT_LEAST_1,
        "encoder_blocks": AT_LEAST_1, "num_blocks": AT_LEAST_1, "norm": OneOf(tuple(NORMS)),
        "pyramid_shapes": Each(Each(AT_LEAST_1, length=3)),
    }  # fmt: skip

    def __init__(
        self,
        iters_per_scale: int = 50000,
        num_vae_levels: int = 3,
        lr_generator: float = 5e-4,
        lr_critic: float = 5e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        lr_decay: float = 0.2,
        train_depth: int = 1,
        rec_weight: float = 10.0,
        kl_weight: float = 1.0,
        gp_weight: float = 0.1,
        adversarial_weight: float = 1.0,
        noise_amp_factor: float = 0.1,
        clip_norm: float | None = 5.0,
        normal_init: bool = False,
        width: int = 64,
        latent_dim: int = 128,
        encoder_blocks: int = 3,
        num_blocks: int = 6,
        norm: str = "batch",
        sigma_with_new_stage: bool = False,
        backprop_lower_stages: bool = False,
        seed: int = 0,
        pyramid_shapes: list[tuple[int, int, int]] | None = None,
        adam_implementation: str = "default",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        self.loss = HPVAEGANLoss(rec_weight, kl_weight, gp_weight, adversarial_weight)
        self.encoder: PatchEncoder | None = None
        self.decoder: PatchDecoder | None = None
        self.critic: VideoCritic | None = None
        self.stages = nn.ModuleList()
        if pyramid_shapes is not None:
            self._build([tuple(shape) for shape in pyramid_shapes])

    # ------------------------------------------------------------------ structure
    @property
    def num_vae_levels(self) -> int:
        return self.hparams.num_vae_levels

    @property
    def first_stage_level(self) -> int:
        """Level of stages[0]: 1 when the VAE decoder produces level 0, else 0."""
        return 1 if self.num_vae_levels > 0 else 0

    @property
    def progress_description(self) -> str:
        level = self.current_scale
        kind = "VAE" if level < self.num_vae_levels else "GAN"
        step = self.iteration - level * self.hparams.iters_per_scale
        return f"level {level + 1}/{self.num_scales} ({kind}) step {step}/{self.hparams.iters_per_scale}"

    def stage(self, level: int) -> RefinementStage:
        return self.stages[level - self.first_stage_level]

    def _build(self, shapes: list[VideoShape]) -> None:
        hp = self.hparams
        if not 0 <= hp.num_vae_levels <= len(shapes):
            raise ValueError(
                f"num_vae_levels={hp.num_vae_levels} must be in [0, {len(shapes)}] for {len(shapes)} levels"
            )
        self.shapes = shapes
        if hp.num_vae_levels > 0:
            self.encoder = PatchEncoder(hp.width, hp.latent_dim, hp.encoder_blocks)
            self.decoder = PatchDecoder(hp.width, hp.latent_dim, hp.num_blocks, norm=hp.norm)
        else:  # fixed reconstruction noise z* of the all-GAN baseline, identical on every rank
            z_star = torch.randn(1, 3, *shapes[0], generator=torch.Generator().manual_seed(hp.seed))
            self.register_buffer("rec_noise", z_star)
        levels = range(self.first_stage_level, len(shapes))
        self.stages.extend(RefinementStage(hp.width, hp.num_blocks, norm=hp.norm) for _ in levels)
        if hp.normal_init:
            for module in (self.decoder, *self.stages):
                if module is not None:
                    init_weights(module)
        if hp.num_vae_levels < len(shapes):
            self.critic = VideoCritic(hp.width, hp.num_blocks)
        self.register_buffer("noise_amps", torch.ones(len(shapes)))

    def _trained_stage_levels(self, level: int) -> range:
        """Levels of the stages that train at `level`: the newest `train_depth`, not below level M at GAN levels."""
        floor = self.num_vae_levels if level >= self.num_vae_levels else 0
        return range(max(level - self.hparams.train_depth + 1, self.first_stage_level, floor), level + 1)

    def _trained_modules(self, level: int) -> list[nn.Module]:
        modules = [self.encoder, self.decoder] if level < self.num_vae_levels else [self.critic]
        return modules + [self.stage(k) for k in self._trained_stage_levels(level)]

    def _generator_modules(self) -> list[nn.Module]:
        return [m for m in (self.encoder, self.decoder) if m is not None] + list(self.stages)

    def configure_optimizers(self) -> list[Adam]:
        """One generator Adam per level, then one critic Adam per GAN level (as the official `train_video.py`)."""
        hp = self.hparams
        betas = tuple(hp.betas)
        optimizers = []
        for level in range(self.num_scales):
            groups = []
            if level < self.num_vae_levels:
                vae_params = [*self.encoder.parameters(), *self.decoder.parameters()]
                groups.append({"params": vae_params, "lr": hp.lr_generator * hp.lr_decay**level})
            for k in self._trained_stage_levels(level):
                groups.append(
                    {"params": self.stage(k).parameters(), "lr": hp.lr_generator * hp.lr_decay ** (level - k)}
                )
            optimizers.append(pyramid_adam(groups, hp.adam_implementation, betas=betas))
        for _ in range(self.num_vae_levels, self.num_scales):
            optimizers.append(
                pyramid_adam(self.critic.parameters(), hp.adam_implementation, lr=hp.lr_critic, betas=betas)
            )
        return optimizers

    def _clipped_frozen_stage_levels(self, level: int) -> range:
        """Levels of the frozen stages below `level` whose gradients enter the clipping norm.

        The official code computes gradients for every generator parameter the loss reaches and
        clips over all of them. At VAE levels that is every lower stage (the decoder trains through
        them); at GAN levels the chain is detached at level M, so it is the lower GAN stages, which
        run with autograd only with `backprop_lower_stages`.
        """
        if level < self.num_vae_levels:
            return range(self.first_stage_level, level)
        if self.hparams.backprop_lower_stages:
            return range(max(self.num_vae_levels, self.first_stage_level), level)
        return range(0)

    def _set_level_modes(self, level: int) -> None:
        """Only `level`'s modules train (train mode, gradients on); the rest are frozen and in eval mode.

        The frozen stages that the clipping norm counts keep their gradients switched on (they are
        in no optimizer, so they do not change).
        """
        trained = {id(m) for m in self._trained_modules(level)}
        for module in [*self._generator_modules(), self.critic]:
            if module is not None:
                module.train(id(module) in trained).requires_grad_(id(module) in trained)
        for k in self._clipped_frozen_stage_levels(level):
            self.stage(k).requires_grad_(True)

    # ------------------------------------------------------------------ generation
    def _generate(
        self,
        level: int,
        shapes: list[VideoShape],
        draw: Draw,
        batch: int = 1,
        real_zero: torch.Tensor | None = None,
        grad_from: int = 0,
    ) -> dict[str, torch.Tensor]:
        """Run levels 0..`level`; returns "output" [B, 3, T, H, W] and, with a VAE, "vae" (level 0).

        As the official `GeneratorHPVAEGAN.forward`: in rand mode (`real_zero` None) z ~ N(0, I)
        and noise sigma_k * n at the GAN levels k >= M; in rec mode z ~ q(z | real_zero)
        (reparameterised) and no noise; the all-GAN baseline uses its fixed z* instead. Levels
        below `grad_from` run without autograd; the clip entering level M is always detached (no
        GAN gradient reaches the VAE).
        """
        rand, outputs = real_zero is None, {}
        grad = torch.is_grad_enabled()
        with torch.set_grad_enabled(grad and grad_from <= 0):
            if self.num_vae_levels > 0:
                if rand:
                    latent = draw((batch, self.hparams.latent_dim, *shapes[0]))
                else:
                    outputs["mu"], outputs["logvar"] = self.encoder(real_zero)
                    mu, logvar = outputs["mu"], outputs["logvar"]  # [B, latent_dim, T_0, H_0, W_0]
                    latent = reparameterise(mu, logvar, draw(mu.shape))
                x = outputs["vae"] = self.decoder(latent)  # [B, 3, T_0, H_0, W_0]
            else:
                noise = draw((batch, 3, *shapes[0])) if rand else self.rec_noise.expand(batch, -1, -1, -1, -1)
                x = self.stage(0)(self.noise_amps[0] * noise, torch.zeros_like(noise))
        for k in range(1, level + 1):
            with torch.set_grad_enabled(grad and k >= grad_from):
                upsampled = upsample_clip(x, shapes[k])  # [B, 3, T_k, H_k, W_k]
                if k == self.num_vae_levels:
                    upsampled = upsampled.detach()  # VAE -> GAN switch, as the official `refinement_layers`
                noise = self.noise_amps[k] * draw(upsampled.shape) if rand and k >= self.num_vae_levels else None
                x = self.stage(k)(noise, upsampled)
        outputs["output"] = x
        return outputs

    def _training_draw(self) -> Draw:
        rng = self.noise_rng()
        return lambda shape: torch.randn(shape, generator=rng, device=rng.device)

    @staticmethod
    def _seeded_draw(seeds: list[int], device: torch.device) -> Draw:
        """Noise whose row i comes from its own generator seeded with seeds[i] (a sample depends on its seed only)."""
        generators = seeded_generators(seeds)
        return lambda shape: draw_per_sample(generators, lambda g: torch.randn((1, *shape[1:]), generator=g)).to(device)

    @torch.no_grad()
    def sample(
        self, seeds: list[int], shapes: list[VideoShape] | None = None, last_level: int | None = None
    ) -> torch.Tensor:
        """One random clip per seed [len(seeds), 3, T, H, W] in [-1, 1]; larger `shapes` give larger/longer clips."""
        shapes = shapes or self.shapes
        last_level = self.num_scales - 1 if last_level is None else last_level
        with eval_mode(self):
            outputs = self._generate(last_level, shapes, self._seeded_draw(seeds, self.device), batch=len(seeds))
        return outputs["output"].clamp(-1, 1)

    @torch.no_grad()
    def reconstruct(self, real_zero: torch.Tensor, last_level: int | None = None, seed: int = 0) -> torch.Tensor:
        """Reconstruction [1, 3, T, H, W] of the clip whose coarsest level is `real_zero` (rec mode).

        The latent is a posterior sample z ~ q(z | real_zero) drawn with `seed`, as in training:
        with batch statistics frozen, the posterior mean can lie off the decoder's training inputs.
        """
        last_level = self.num_scales - 1 if last_level is None else last_level
        with eval_mode(self):
            draw = self._seeded_draw([seed], self.device)
            outputs = self._generate(last_level, self.shapes, draw, real_zero=real_zero)
        return outputs["output"].clamp(-1, 1)

    def preview_images(self, num_samples: int, seed: int = 0) -> dict[str, torch.Tensor]:
        """Clips [B, T, 3, H, W] for the sample callback: random samples and the reconstruction so far."""
        level = self.latest_scale
        real_zero = self.trainer.datamodule.pyramid[0].to(self.device)
        samples = self.sample(list(range(seed, seed + num_samples)), last_level=level)
        reconstruction = self.reconstruct(real_zero, level)
        return {"samples": samples.transpose(1, 2), "reconstruction": reconstruction.transpose(1, 2)}

    def video_metric_clips(self, num_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The video metrics' hook: the real clip [1, 3, T, H, W] of the latest level and `num_samples` samples."""
        level = self.latest_scale
        real = self.trainer.datamodule.pyramid[level].to(self.device)
        return real, self.sample(list(range(num_samples)), last_level=level)

    def test_step(self, pyramid: list[torch.Tensor], batch_idx: int) -> None:
        """Reconstruction PSNR (dB, clips in [-1, 1]) of every level, from a posterior sample."""
        for level, real in enumerate(pyramid):
            self.log(f"test/rec_psnr_level_{level}", psnr(self.reconstruct(pyramid[0], level), real))

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> VideoPrediction:
        """Clips for a `SampleRequests` batch: {"videos": [B, 3, T, H, W], "names", "fps"}."""
        shapes = [tuple(shape) for shape in batch["shapes"][0].tolist()]
        videos = self.sample(batch["seed"].tolist(), shapes)
        names = [f"sample_{int(i):05d}" for i in batch["index"]]
        return {"videos": videos, "names": names, "fps": float(batch["fps"][0])}

    # ------------------------------------------------------------------ training
    @torch.no_grad()
    def _begin_level(self, level: int, pyramid: list[torch.Tensor]) -> None:
        """Copy the previous stage into this level's stage, and set sigma_s (official `train_video.py`, iteration 0)."""
        index = level - self.first_stage_level
        if index >= 1:
            self.stages[index].load_state_dict(self.stages[index - 1].state_dict())
        if level == 0:
            return
        draw, real_zero = self._training_draw(), pyramid[0]
        with eval_mode(self):  # no BatchNorm statistics change, whichever modes a resumed run starts in
            if self.hparams.sigma_with_new_stage:
                self.noise_amps[level] = 0.0
                reconstruction = self._generate(level, self.shapes, draw, real_zero=real_zero)["output"]
            else:
                below = self._generate(level - 1, self.shapes, draw, real_zero=real_zero)["output"]
                reconstruction = upsample_clip(below, self.shapes[level])
        rmse = torch.sqrt(torch.mean((pyramid[level] - reconstruction) ** 2))
        self.noise_amps[level] = self.hparams.noise_amp_factor * rmse
        broadcast_buffers(self)  # the posterior sample differs between ranks: rank 0's sigma wins

    def training_step(self, pyramid: list[torch.Tensor], batch_idx: int) -> None:
        level, step = divmod(self.iteration, self.hparams.iters_per_scale)
        real, real_zero = pyramid[level], pyramid[0]  # [1, 3, T_s, H_s, W_s], [1, 3, T_0, H_0, W_0]
        if step == 0:
            self._begin_level(level, pyramid)
        self._set_level_modes(level)
        optimizers = self.optimizers()
        if level < self.num_vae_levels:
            terms = self._vae_step(level, real, real_zero, optimizers[level])
        else:
            opt_critic = optimizers[self.num_scales + level - self.num_vae_levels]
            terms = self._gan_step(level, real, real_zero, opt_critic, optimizers[level])
        self._finish_iteration(self._trained_modules(level))
        metrics = {f"level_{level}/{k}": v for k, v in terms.items()}
        self._log_terms(metrics | {f"level_{level}/noise_amp": self.noise_amps[level], "scale": level})

    def _vae_step(self, level: int, real: torch.Tensor, real_zero: torch.Tensor, opt: Adam) -> dict:
        """One VAE update: reconstruction of the level and of the VAE output, plus KL (official `train_video.py`)."""
        outputs = self._generate(level, self.shapes, self._training_draw(), real_zero=real_zero)
        terms = self.loss.vae(outputs["output"], real, outputs["vae"], real_zero, outputs["mu"], outputs["logvar"])
        self._generator_update(terms["loss"], opt)
        return {("vae_loss" if k == "loss" else k): v for k, v in terms.items()}

    def _gan_step(self, level: int, real: torch.Tensor, real_zero: torch.Tensor, opt_critic: Adam, opt: Adam) -> dict:
        """One critic update, then one generator update on the same random sample (official `train_video.py`)."""
        rng, draw = self.noise_rng(), self._training_draw()
        grad_from = self.num_vae_levels if self.hparams.backprop_lower_stages else level
        fake = self._generate(level, self.shapes, draw, grad_from=grad_from)["output"]  # [1, 3, T_s, H_s, W_s]
        epsilon = torch.rand((), generator=rng, device=rng.device)
        critic_terms = self.loss.critic(self.critic, real, fake, epsilon)
        self.update(opt_critic, critic_terms["loss"])

        with self.frozen(self.critic):
            reconstruction = self._generate(level, self.shapes, draw, real_zero=real_zero, grad_from=grad_from)
            generator_terms = self.loss.generator(self.critic, fake, reconstruction["output"], real)
            self._generator_update(generator_terms["loss"], opt)
        critic_terms = {("critic_loss" if k == "loss" else k): v for k, v in critic_terms.items()}
        return critic_terms | {("generator_loss" if k == "loss" else k): v for k, v in generator_terms.items()}

    def _generator_update(self, loss: torch.Tensor, opt: Adam) -> None:
        """Backward, clip the norm of every generator gradient to `clip_norm` (unless None), step."""
        parameters = [p for module in self._generator_modules() for p in module.parameters()]
        for p in parameters:
            p.grad = None
        self.manual_backward(loss)
        if self.hparams.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_([p for p in parameters if p.grad is not None], self.hparams.clip_norm)
        opt.step()
