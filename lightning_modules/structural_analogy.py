"""Structural analogy from a single image pair (Benaim et al., CGF 2020; `train.py` and `eval.py`
of rmokady/structural-analogy).

Two SinGAN-like pyramids, one per image, train jointly scale by scale. At every scale
each generator also translates the other image's same-scale sample into its own patch
distribution, with a cycle back, so a translation keeps its source's layout (set by the
source's coarser scales) and takes the target's patches. The two finest scales drop
the residual skip so that they can change colour and texture freely.

Deviations from the official code, each a choice made for a reason:
- BatchNorm at batch size 1 in training mode (the official code never switches) is
  spelled as instance normalisation with an affine: the same computation per image,
  and batched sampling equals one-at-a-time sampling;
- the reals are resized with antialiased bicubic on the tensor's device (official: PIL
  bilinear); a generated image goes to the next scale as the official `imresize2` takes it
  there (clamped to [-1, 1], upsampled by 1/r with the MATLAB-style cubic kernel, cropped),
  in float rather than through uint8;
- the frozen coarsest generator is fed noise of amplitude `frozen_coarsest_noise_amp`,
  1 by default, the amplitude it was trained with; the official image script feeds it
  0.1 (its video script 1);
- under DDP each process draws its own noise and gradients are averaged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim import Adam

from dfgen.contract import ImagePrediction
from dfgen.resize import Shape, resize
from dfgen.settings import AT_LEAST_1, BETAS, NON_NEGATIVE, POSITIVE, Each, Range, check_settings
from dfgen.tensors import draw_per_sample, psnr, seeded_generators
from lightning_modules.distributed import broadcast_buffers
from lightning_modules.networks.losses import StructuralAnalogyLoss
from lightning_modules.networks.pyramid import PatchCritic, ScaleGenerator, rgb_noise, run_pyramid, scale_width
from lightning_modules.progressive import ADAM_IMPLEMENTATION, ImagePyramidModule, pyramid_adam

DOMAINS = ("a", "b")
OTHER = {"a": "b", "b": "a"}
# Unlike SinGAN, every scale, the coarsest included, gets RGB noise (rgb_noise).


class StructuralAnalogy(ImagePyramidModule):
    """Two image pyramids trained jointly; translations A -> B keep A's structure with B's appearance.

    Args:
        iters_per_scale: training iterations at every scale (official: 20,000).
        lr_generator: Adam learning rate of both generators of a scale (official 5e-4).
        lr_critic: Adam learning rate of both critics of a scale (official 1e-4).
        betas: Adam betas of both players.
        gp_weight: lambda of the per-pixel gradient penalty (0.1).
        rec_weight: alpha, weight of the reconstruction terms (1).
        cycle_weight: beta, weight of the cycle terms (official default 1; the README's
            examples use 10).
        adversarial_weight: weight of both domains' adversarial generator terms (1 in the
            official code; 0 trains the generators on reconstruction and cycle alone).
        b_adversarial_weight: lambda_g, weight of B's adversarial terms (1; 0.1 when B is a sketch),
            on top of `adversarial_weight`.
        noise_amp_factor: sigma_s = factor * RMSE(real_s, upsampled reconstruction) (0.1).
        non_residual_scales: how many of the finest scales have no residual skip (2).
        base_width: channels at scales 0-3; doubles every 4 scales.
        max_width: channel cap (128).
        frozen_coarsest_noise_amp: amplitude of the noise fed to the frozen coarsest
            generators when finer scales train and when sampling (1; the official image
            script uses 0.1).
        seed: seed of the training noise (rank r of a multi-process run uses seed + r).
        pyramid_shapes: (height, width) of every scale, coarse to fine; taken from the
            DataModule when None.
        scale_ratio: r, the fitted ratio between consecutive scales; a generated image is
            upsampled by 1/r and cropped to the next scale. Taken from the DataModule's
            `pyramid_ratio` when None.
        adam_implementation: how Adam updates the weights: "default" (torch's choice, as the official
            code), "for-loop", "foreach" or "fused" (fewer kernel launches; the same weights up to rounding).
    """

    setting_rules = {
        "adam_implementation": ADAM_IMPLEMENTATION,
        "iters_per_scale": AT_LEAST_1, "lr_generator": POSITIVE, "lr_critic": POSITIVE, "betas": BETAS,
        "gp_weight": NON_NEGATIVE, "rec_weight": NON_NEGATIVE, "cycle_weight": NON_NEGATIVE,
        "b_adversarial_weight": NON_NEGATIVE, "noise_amp_factor": NON_NEGATIVE, "non_residual_scales": NON_NEGATIVE,
        "base_width": AT_LEAST_1, "max_width": AT_LEAST_1, "frozen_coarsest_noise_amp": NON_NEGATIVE,
        "pyramid_shapes": Each(Each(AT_LEAST_1, length=2)),
        "adversarial_weight": NON_NEGATIVE, "scale_ratio": Range(0, 1, open_low=True, open_high=True),
    }  # fmt: skip

    def __init__(
        self,
        iters_per_scale: int = 20000,
        lr_generator: float = 5e-4,
        lr_critic: float = 1e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        gp_weight: float = 0.1,
        rec_weight: float = 1.0,
        cycle_weight: float = 1.0,
        adversarial_weight: float = 1.0,
        b_adversarial_weight: float = 1.0,
        noise_amp_factor: float = 0.1,
        non_residual_scales: int = 2,
        base_width: int = 32,
        max_width: int = 128,
        frozen_coarsest_noise_amp: float = 1.0,
        seed: int = 0,
        pyramid_shapes: list[tuple[int, int]] | None = None,
        scale_ratio: float | None = None,
        adam_implementation: str = "default",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        self.loss = StructuralAnalogyLoss(gp_weight, rec_weight, cycle_weight, b_adversarial_weight, adversarial_weight)
        self.generators = nn.ModuleDict({domain: nn.ModuleList() for domain in DOMAINS})
        self.critics = nn.ModuleDict({domain: nn.ModuleList() for domain in DOMAINS})
        if pyramid_shapes is not None:
            self._build([tuple(shape) for shape in pyramid_shapes])

    # ------------------------------------------------------------------ structure
    def _build(self, shapes: list[Shape]) -> None:
        hp = self.hparams
        if not 0 <= hp.non_residual_scales <= len(shapes):
            raise ValueError(f"non_residual_scales={hp.non_residual_scales} must be in [0, {len(shapes)}]")
        self.shapes = shapes
        self.widths = [scale_width(s, hp.base_width, hp.max_width) for s in range(len(shapes))]
        first_non_residual = len(shapes) - hp.non_residual_scales
        for domain in DOMAINS:
            self.generators[domain].extend(
                ScaleGenerator(width, residual=s < first_non_residual, same_padding=True, norm="instance")
                for s, width in enumerate(self.widths)
            )
            self.critics[domain].extend(PatchCritic(width, norm="instance") for width in self.widths)
        amps = torch.ones(len(DOMAINS), len(shapes))
        amps[:, 0] = hp.frozen_coarsest_noise_amp
        self.register_buffer("noise_amps", amps)  # [domain, scale]

    def configure_optimizers(self) -> list[Adam]:
        """Per scale, one Adam for both critics and one for both generators: [critics_0, generators_0, ...]."""
        hp = self.hparams
        optimizers = []
        for s in range(self.num_scales):
            critics = [p for domain in DOMAINS for p in self.critics[domain][s].parameters()]
            generators = [p for domain in DOMAINS for p in self.generators[domain][s].parameters()]
            optimizers.append(pyramid_adam(critics, hp.adam_implementation, lr=hp.lr_critic, betas=tuple(hp.betas)))
            optimizers.append(
                pyramid_adam(generators, hp.adam_implementation, lr=hp.lr_generator, betas=tuple(hp.betas))
            )
        return optimizers

    def noise_amp(self, domain: str, scale: int) -> torch.Tensor:
        return self.noise_amps[DOMAINS.index(domain), scale]

    # ------------------------------------------------------------------ chains of frozen scales
    @torch.no_grad()
    def _random_prev(self, domain: str, scale: int, rng: torch.Generator) -> torch.Tensor:
        """Upsampled output of the domain's frozen scales below `scale`, from fresh noise (zeros at 0)."""
        if scale == 0:
            return torch.zeros(1, 3, *self.shapes[0], device=self.device)
        inputs = [self.noise_amp(domain, s) * rgb_noise(1, self.shapes[s], rng) for s in range(scale)]
        chain = run_pyramid(self.generators[domain], inputs, self.shapes, self.ratio)
        return self.to_next_scale(chain, self.shapes[scale])

    @torch.no_grad()
    def _rec_prev(self, domain: str, scale: int, rng: torch.Generator) -> torch.Tensor:
        """The reconstruction's input at `scale`: fresh unit noise z at scale 0, mapped by the frozen
        scales without added noise (G(x, x) in the official code), upsampled."""
        z = rgb_noise(1, self.shapes[0], rng)
        if scale == 0:
            return z
        chain = run_pyramid(self.generators[domain], [None] * scale, self.shapes, self.ratio, prev=z)
        return self.to_next_scale(chain, self.shapes[scale])

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def sample(
        self,
        domain: str,
        seeds: list[int],
        last_scale: int | None = None,
        inject: torch.Tensor | None = None,
        inject_scale: int = 0,
    ) -> torch.Tensor:
        """One sample of `domain` per seed [len(seeds), 3, H, W], unclamped.

        With `inject` [B, 3, h, w], as the official `eval.py` does: the frozen scales below
        k = `inject_scale` still run from noise; at scale k the injected image resized to that
        scale, plus the scale's noise, enters the convolutions while the generated coarser
        output stays the residual (G_k(sigma z + image, coarser)); the finer scales continue
        from there with their noise.
        """
        last_scale = self.num_scales - 1 if last_scale is None else last_scale
        generators = seeded_generators(seeds)
        stack = self.generators[domain]
        inputs = [
            self.noise_amp(domain, s) * draw_per_sample(generators, rgb_noise, 1, self.shapes[s]).to(self.device)
            for s in range(last_scale + 1)
        ]
        if inject is None:
            return run_pyramid(stack, inputs, self.shapes, self.ratio)
        k = inject_scale
        coarser = self.to_next_scale(run_pyramid(stack, inputs[:k], self.shapes, self.ratio), self.shapes[k])
        image = resize(inject.to(self.device), self.shapes[k]).clamp(-1, 1)
        injected = stack[k](inputs[k], coarser, content=image)
        if k == last_scale:
            return injected
        prev = self.to_next_scale(injected, self.shapes[k + 1])
        return run_pyramid(stack, inputs[k + 1 :], self.shapes, self.ratio, first_scale=k + 1, prev=prev)

    @torch.no_grad()
    def translate(self, images: torch.Tensor, target: str, scale: int | None = None) -> torch.Tensor:
        """Render `images` [B, 3, H, W] with `target`'s patches by its generator at `scale` (default finest)."""
        scale = self.num_scales - 1 if scale is None else scale
        return self.generators[target][scale](None, images.to(self.device))

    def preview_images(self, num_samples: int, seed: int = 0) -> dict[str, torch.Tensor]:
        """Samples of both domains at the latest trained scale and their translations at that scale."""
        scale, seeds = self.latest_scale, list(range(seed, seed + num_samples))
        previews = {}
        for domain in DOMAINS:
            samples = self.sample(domain, seeds, last_scale=scale)
            previews[f"{domain}_samples"] = samples.clamp(-1, 1)
            previews[domain + OTHER[domain]] = self.translate(samples, OTHER[domain], scale).clamp(-1, 1)
        return previews

    def sifid_images(self, num_samples: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each output against the real image whose appearance it should carry (hook of callbacks.SIFID)."""
        reals = {domain: pyramid[-1].to(self.device) for domain, pyramid in self.trainer.datamodule.pyramids.items()}
        previews = self.preview_images(num_samples)
        pairs = {}
        for domain in DOMAINS:
            pairs[f"{domain}_samples"] = (reals[domain], previews[f"{domain}_samples"])
            pairs[OTHER[domain] + domain] = (reals[domain], previews[OTHER[domain] + domain])
        return pairs

    def test_step(self, pyramids: dict[str, list[torch.Tensor]], batch_idx: int) -> None:
        """Round-trip PSNR (dB) of each real image translated to the other domain and back."""
        for domain in DOMAINS:
            real = pyramids[domain][-1]
            round_trip = self.translate(self.translate(real, OTHER[domain]), domain).clamp(-1, 1)
            self.log(f"test/cycle_psnr_{domain}", psnr(round_trip, real))

    # ------------------------------------------------------------------ training
    def _begin_scale(self, scale: int, reals: dict[str, torch.Tensor], rng: torch.Generator) -> None:
        """Copy-initialise from the scale below when widths match, and set each
        sigma_s = noise_amp_factor * RMSE(real_s, upsampled random reconstruction)."""
        if scale == 0:
            return
        for domain in DOMAINS:
            if self.widths[scale] == self.widths[scale - 1]:
                for stack in (self.generators[domain], self.critics[domain]):
                    stack[scale].load_state_dict(stack[scale - 1].state_dict())
            rmse = torch.sqrt(torch.mean((reals[domain] - self._rec_prev(domain, scale, rng)) ** 2))
            self.noise_amps[DOMAINS.index(domain), scale] = self.hparams.noise_amp_factor * rmse
        broadcast_buffers(self)  # sigma comes from a random reconstruction: take rank 0's

    def _scale_outputs(self, scale: int, rng: torch.Generator) -> dict[str, dict[str, torch.Tensor]]:
        """Per domain d: "fake" x~_d, "reconstruction" x^_d, "translation" G_d(x~_other) and
        "cycle" G_d(G_other(x~_d)), all at `scale`."""
        generators = {domain: self.generators[domain][scale] for domain in DOMAINS}
        outputs = {}
        for domain, generator in generators.items():
            amp = 1.0 if scale == 0 else self.noise_amp(domain, scale)  # scale 0 trains on unit noise
            noise = amp * rgb_noise(1, self.shapes[scale], rng)
            fake = generator(noise, self._random_prev(domain, scale, rng))
            outputs[domain] = {"fake": fake, "reconstruction": generator(None, self._rec_prev(domain, scale, rng))}
        for domain, generator in generators.items():
            outputs[domain]["translation"] = generator(None, outputs[OTHER[domain]]["fake"])
        for domain, generator in generators.items():
            outputs[domain]["cycle"] = generator(None, outputs[OTHER[domain]]["translation"])
        return outputs

    def training_step(self, pyramids: dict[str, list[torch.Tensor]], batch_idx: int) -> None:
        scale, step = divmod(self.iteration, self.hparams.iters_per_scale)
        reals = {domain: pyramids[domain][scale] for domain in DOMAINS}  # [1, 3, h_s, w_s]
        rng = self.noise_rng()
        self._set_trainable(scale, [*self.generators.values(), *self.critics.values()])  # before sigma_s, as SinGAN
        if step == 0:
            self._begin_scale(scale, reals, rng)
        opt_critic, opt_generator = self._scale_optimizers(scale)
        critics = {domain: self.critics[domain][scale] for domain in DOMAINS}

        outputs = self._scale_outputs(scale, rng)
        critic_terms = {}
        for domain, critic in critics.items():  # one critic step, then one generator step
            epsilons = {name: torch.rand((), generator=rng, device=rng.device) for name in ("fake", "translation")}
            critic_terms[domain] = self.loss.critic(critic, reals[domain], outputs[domain], epsilons)
        self.update(opt_critic, critic_terms["a"]["loss"] + critic_terms["b"]["loss"])

        with self.frozen(*critics.values()):
            generator_terms = self.loss.generator(critics, reals, outputs)
            self.update(opt_generator, generator_terms["loss"])

        self._finish_iteration([self.generators[domain][scale] for domain in DOMAINS])
        self._log_terms(self._scale_terms(scale, critic_terms, generator_terms))

    def _scale_terms(self, scale: int, critic_terms: dict[str, dict], generator_terms: dict) -> dict:
        """The scale's losses and noise amplitudes, named scale_<s>/<domain>_<term>."""
        metrics = {}
        for domain, terms in critic_terms.items():
            metrics |= {f"{domain}_{'critic_loss' if k == 'loss' else k}": v for k, v in terms.items()}
            metrics[f"{domain}_noise_amp"] = self.noise_amp(domain, scale)
        metrics |= {("generator_loss" if k == "loss" else k): v for k, v in generator_terms.items()}
        return {f"scale_{scale}/{k}": v for k, v in metrics.items()} | {"scale": scale}

    # ------------------------------------------------------------------ predict
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> ImagePrediction:
        """Samples of both domains and their translations, or translations of an injected image.

        Random samples come as rows [A sample, its translation to B, B sample, its translation
        to A]; the first batch also returns each real image translated at the finest scale.
        With an injected image, rows are [the injected domain's output, its translation].
        With the batch's "minmax" set, each image is stretched to [-1, 1] by its own minimum
        and maximum, as the official code saves its outputs; otherwise it is clamped.
        """
        seeds, indices = batch["seed"].tolist(), [int(i) for i in batch["index"]]
        inject_scale = int(batch["inject_scale"][0])
        if inject_scale >= 0:
            source = DOMAINS[int(batch["inject_domain"][0])]
            target = OTHER[source]
            generated = self.sample(source, seeds, inject=batch["inject"], inject_scale=inject_scale)
            columns = {f"{source}_injected": generated, f"{source}{target}_injected": self.translate(generated, target)}
            extras = {}
        else:
            columns = {}
            for domain in DOMAINS:
                samples = self.sample(domain, seeds)
                columns[f"{domain}_sample"] = samples
                columns[domain + OTHER[domain]] = self.translate(samples, OTHER[domain])
            extras = self._real_translations() if batch_idx == 0 else {}
        to_range = minmax_normalise if bool(batch["minmax"][0]) else torch.clamp
        images = to_range(torch.stack(list(columns.values()), dim=1).flatten(0, 1), -1, 1)  # row-major grid
        names = [f"{column}_{i:05d}" for i in indices for column in columns]
        extras = {name: to_range(image[None], -1, 1)[0] for name, image in extras.items()}
        return {"images": images, "names": names, "extras": extras}

    def _real_translations(self) -> dict[str, torch.Tensor]:
        """Each real image translated at the finest scale ("ab_real", "ba_real"), unclamped [3, H, W]."""
        pyramids = self.trainer.datamodule.pyramids
        return {f"{d}{OTHER[d]}_real": self.translate(pyramids[d][-1], OTHER[d])[0] for d in DOMAINS}


def minmax_normalise(images: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Each image of [B, C, H, W] mapped linearly so that its minimum is `low` and its maximum `high`
    (torchvision's `save_image(..., normalize=True)` for one image); a constant image becomes `low`."""
    lowest = images.amin(dim=(1, 2, 3), keepdim=True)
    span = (images.amax(dim=(1, 2, 3), keepdim=True) - lowest).clamp_min(1e-5)
    return low + (high - low) * (images - lowest) / span
