"""One-shot unsupervised cross-domain translation, OST (Benaim and Wolf, NeurIPS 2018).

Phase 1 trains an autoencoder of domain B (many images). Phase 2, a new run that loads it
through `phase_one_checkpoint`, adds fresh A-specific outer layers and trains on the single
A sample x while B training continues. Selective backpropagation: the losses that involve x
step only the domain-specific outer layers, so the shared core stays anchored to B; a
one-way cycle x -> B -> A ties the translation to x.

Two recipes, chosen by `network`:
- "digits" (official mnist_to_svhn): the 32x32 networks, a critic per domain, MSE reconstructions, critic
  real and fake steps, then the x step (A and B outer layers), then the B step;
- "resnet" (official drawing_and_style_transfer): the CycleGAN ResNet generator split per task, one PatchGAN critic
  for B with an image pool, L1 reconstructions, the x step (A outer layers), the B step,
  then the critic step.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch.optim import Adam
from torch.optim.lr_scheduler import LambdaLR

from dfgen.checkpoint_files import load_checkpoint_file
from dfgen.contract import ImagePrediction
from dfgen.settings import AT_LEAST_1, BETAS, NON_NEGATIVE, POSITIVE, OneOf, check_settings
from lightning_modules.iterative import IterativeModule
from lightning_modules.networks.losses import latent_kl, lsgan
from lightning_modules.networks.ost import (
    DigitCritic,
    ImagePool,
    PatchGANCritic,
    digits_autoencoder,
    per_image_batch_norm,
    resnet_autoencoder,
)

B_PARTS = ("encoders_unshared.b.", "encoder_shared.", "decoder_shared.", "decoders_unshared.b.")


class OneShotTranslation(IterativeModule):
    """Translate one sample of domain A into domain B, learned from that sample and all of B.

    Args:
        network: "digits" or "resnet" (selects the recipe, see the module docstring).
        channels_a: image channels of A (1 for MNIST).
        channels_b: image channels of B.
        ngf: base width of the generator: the digits' `--g_conv_dim`, the ResNet's `--ngf` (64).
        ndf: base width of the critics: the digits' `--d_conv_dim`, the PatchGAN's `--ndf` (64).
        n_downsampling: ResNet down-samplings (2, or 3 for images -> cityscapes).
        num_unshared: ResNet down/up-samplings that are domain-specific (2, 3, or 0 for style tasks).
        num_res_blocks_shared: residual blocks of each shared half (6).
        phase: 1 (B's autoencoder) or 2 (one-shot adaptation).
        phase_one_checkpoint: phase 2 loads B's layers and the shared core from this phase-1
            checkpoint; A's layers and the critics start fresh, as in the official code.
        iterations: training iterations of this phase.
        lr: Adam learning rate of every optimizer (2e-4).
        betas: Adam betas.
        lr_decay_start: iteration after which the LR decays linearly to 0 at `iterations`
            (the drawing tasks: 60 of 80 epochs); None keeps it constant (digits).
        epoch_iterations: iterations of an epoch (the drawing tasks: |trainB|); when given, the
            decay moves once per epoch as the official CycleGAN lambda rule, whose factor in
            epoch e (from 0) is 1 - max(0, e + 2 - n) / (m + 1) for n constant and m decaying
            epochs (so it starts one epoch before `lr_decay_start` and the last epoch has LR 0);
            None: a linear decay at every iteration.
        rec_loss: "mse" (digits) or "l1" (drawing tasks).
        phase_one_rec_weight: weight of B's reconstruction in phase 1 (digits 1, drawing 10).
        a_rec_weight: weight of x's reconstruction A -> A in phase 2 (1).
        cycle_weight: weight of the cycle terms in phase 2 (digits 1, drawing 10).
        b_rec_weight: weight of B's reconstruction in phase 2 (1).
        kl_weight: weight of the latent term mean(h^2) of B's codes (0.1).
        one_way_cycle: the cycle x -> B -> A (ablation switch).
        two_way_cycle: also the cycle b -> A -> B (an ablation row of the paper; off in OST).
        selective_backprop: the x losses step only the outer layers (off: all layers).
        freeze_shared: no B step in phase 2, so the shared core never moves (an ablation row).
        pool_size: image pool of the critic's fakes (drawing: 50; 0 = none).
        seed: seed of the pool's draws.
    """

    setting_rules = {
        "network": OneOf(("digits", "resnet")), "channels_a": AT_LEAST_1, "channels_b": AT_LEAST_1, "ngf": AT_LEAST_1,
        "n_downsampling": AT_LEAST_1, "num_unshared": NON_NEGATIVE, "num_res_blocks_shared": NON_NEGATIVE,
        "phase": OneOf((1, 2)), "iterations": AT_LEAST_1, "lr": POSITIVE, "betas": BETAS,
        "lr_decay_start": NON_NEGATIVE, "rec_loss": OneOf(("mse", "l1")), "phase_one_rec_weight": NON_NEGATIVE,
        "a_rec_weight": NON_NEGATIVE, "cycle_weight": NON_NEGATIVE, "b_rec_weight": NON_NEGATIVE,
        "kl_weight": NON_NEGATIVE, "pool_size": NON_NEGATIVE, "ndf": AT_LEAST_1, "epoch_iterations": AT_LEAST_1,
    }  # fmt: skip

    def __init__(
        self,
        network: str = "digits",
        channels_a: int = 1,
        channels_b: int = 3,
        ngf: int = 64,
        ndf: int = 64,
        n_downsampling: int = 2,
        num_unshared: int = 2,
        num_res_blocks_shared: int = 6,
        phase: int = 2,
        phase_one_checkpoint: str | None = None,
        iterations: int = 5000,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        lr_decay_start: int | None = None,
        epoch_iterations: int | None = None,
        rec_loss: str = "mse",
        phase_one_rec_weight: float = 1.0,
        a_rec_weight: float = 1.0,
        cycle_weight: float = 1.0,
        b_rec_weight: float = 1.0,
        kl_weight: float = 0.1,
        one_way_cycle: bool = True,
        two_way_cycle: bool = False,
        selective_backprop: bool = True,
        freeze_shared: bool = False,
        pool_size: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        if network == "digits":
            self.autoencoder = digits_autoencoder(channels_a, channels_b, ngf)
            critic_domains = ("b",) if phase == 1 else ("a", "b")
            channels = {"a": channels_a, "b": channels_b}
            self.critics = torch.nn.ModuleDict({d: DigitCritic(channels[d], ndf) for d in critic_domains})
        else:
            if channels_a != channels_b:
                raise ValueError("the ResNet recipe translates between images of the same number of channels")
            self.autoencoder = resnet_autoencoder(channels_b, ngf, n_downsampling, num_unshared, num_res_blocks_shared)
            self.critics = torch.nn.ModuleDict({"b": PatchGANCritic(channels_b, ndf)})
        self.reconstruction = F.mse_loss if rec_loss == "mse" else F.l1_loss
        self.pool = ImagePool(pool_size)

    # ------------------------------------------------------------------ structure
    def setup(self, stage: str) -> None:
        if stage == "fit" and self.hparams.phase == 2:
            self._load_phase_one()

    def _load_phase_one(self) -> None:
        """B's outer layers and the shared core from phase 1 (a resumed run then overwrites them)."""
        path = self.hparams.phase_one_checkpoint
        if path is None:
            raise ValueError("phase 2 needs model.phase_one_checkpoint: the last.ckpt of a phase-1 run")
        checkpoint = load_checkpoint_file(path, "the last.ckpt of a phase-1 OneShotTranslation run")
        state = checkpoint["state_dict"]
        prefix = "autoencoder."
        wanted = {
            k[len(prefix) :]: v
            for k, v in state.items()
            if k.startswith(prefix) and k[len(prefix) :].startswith(B_PARTS)
        }
        if checkpoint.get("hyper_parameters", {}).get("phase") != 1 or not wanted:
            raise ValueError(f"{path}: not a phase-1 OneShotTranslation checkpoint")
        missing = [key for key in self.autoencoder.state_dict() if key.startswith(B_PARTS) and key not in wanted]
        if missing:
            raise ValueError(f"{path}: its networks differ from this model's (missing {missing[:3]} ...)")
        self.autoencoder.load_state_dict(wanted, strict=False)

    def configure_optimizers(self) -> tuple[list[Adam], list[LambdaLR]]:
        """Phase 1: [critics, B autoencoder]; phase 2: [critics, the x step's layers, the B step's layers]."""
        hp = self.hparams
        autoencoder = self.autoencoder
        adam = partial(Adam, lr=hp.lr, betas=tuple(hp.betas))
        b_parts = [p for name, p in autoencoder.named_parameters() if name.startswith(B_PARTS)]
        if hp.phase == 1:
            groups = [self.critics.parameters(), b_parts]
        else:
            if hp.selective_backprop:  # the digits code also lets the x losses move B's outer layers
                x_step = autoencoder.unshared_parameters(("a", "b") if hp.network == "digits" else ("a",))
            else:
                x_step = list(autoencoder.parameters())
            b_step = list(autoencoder.parameters()) if hp.network == "digits" else b_parts
            groups = [self.critics.parameters(), x_step, b_step]
        optimizers = [adam(group) for group in groups]
        return optimizers, [LambdaLR(opt, self._lr_factor) for opt in optimizers]

    def _lr_factor(self, iteration: int) -> float:
        start, total, epoch = self.hparams.lr_decay_start, self.hparams.iterations, self.hparams.epoch_iterations
        if start is None:
            return 1.0
        if epoch:  # models/networks.py get_scheduler of the official drawing code, stepped after every epoch
            return max(0.0, 1.0 - max(0, iteration // epoch + 2 - start // epoch) / ((total - start) // epoch + 1))
        return 1.0 if iteration < start else max(0.0, 1.0 - (iteration - start) / max(1, total - start))

    @property
    def progress_description(self) -> str:
        return f"phase {self.hparams.phase} step {self.iteration}/{self.hparams.iterations}"

    # ------------------------------------------------------------------ translation
    def translate(self, images: torch.Tensor, source: str = "a", target: str = "b") -> torch.Tensor:
        """G_target(E_source(images)) [B, C_target, H, W], with the networks' current mode."""
        return self.autoencoder.decode(self.autoencoder.encode(images, source), target)

    @torch.no_grad()
    def translate_each(self, images: torch.Tensor, source: str = "a", target: str = "b") -> torch.Tensor:
        """`translate` one image at a time with BatchNorm normalising by that image's statistics.

        Training runs at batch size 1 in training mode, and the official code samples the same
        way: running statistics, which mix every kind of pass of phase 2, are not used.
        """
        with per_image_batch_norm(self.autoencoder):
            return torch.cat([self.translate(image[None], source, target) for image in images])

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if self.hparams.phase == 1:
            terms = self._phase_one(batch["b"])
        elif self.hparams.network == "digits":
            terms = self._digits_phase_two(batch["a"], batch["b"])
        else:
            terms = self._drawing_phase_two(batch["a"], batch["b"])
        for scheduler in self.lr_schedulers():
            scheduler.step()
        self._finish_iteration()
        self._log_terms(terms)

    def _pool_rng(self) -> torch.Generator:
        """The image pool's draws: one CPU stream from `seed`, the same on every process."""
        return self.rng("pool", device="cpu", per_process=False)

    def _step(self, optimizer_index: int, loss: torch.Tensor) -> None:
        self.update(self.optimizers()[optimizer_index], loss)

    def _critic_update(self, real: Callable[[], torch.Tensor], fake: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Digits: a step on the real terms, then one on the fake terms; ResNet: one step on half their sum."""
        if self.hparams.network == "digits":
            real_loss = real()
            self._step(0, real_loss)
            fake_loss = fake()
            self._step(0, fake_loss)
            return real_loss.detach() + fake_loss.detach()
        loss = 0.5 * (real() + fake())
        self._step(0, loss)
        return loss.detach()

    def _generator_terms(self, critic: str, fake: torch.Tensor) -> torch.Tensor:
        """lsgan(D(fake), 1) with the critic frozen, so only the generator collects gradients."""
        with self.frozen(self.critics[critic]):
            return lsgan(self.critics[critic](fake), 1.0)

    def _phase_one(self, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """B autoencoder: lsgan + w * rec(G_B(E_B(b)), b) + 0.1 mean(h^2), and its critic (both official recipes)."""
        hp, critic = self.hparams, self.critics["b"]

        def generator_step() -> dict[str, torch.Tensor]:
            latent = self.autoencoder.encode(b, "b")
            fake = self.autoencoder.decode(latent, "b")
            terms = {"adversarial": self._generator_terms("b", fake), "b_rec": self.reconstruction(fake, b)}
            terms["kl"] = latent_kl(latent)
            self._step(1, terms["adversarial"] + hp.phase_one_rec_weight * terms["b_rec"] + hp.kl_weight * terms["kl"])
            return terms | {"fake": fake.detach()}

        if hp.network == "digits":  # critic first, on the current fake
            fake = self.autoencoder.decode(self.autoencoder.encode(b, "b"), "b").detach()
            critic_loss = self._critic_update(lambda: lsgan(critic(b), 1.0), lambda: lsgan(critic(fake), 0.0))
            terms = generator_step()
        else:  # generator first, then the critic on a pooled fake
            terms = generator_step()
            pooled = self.pool.query(terms["fake"], self._pool_rng())
            critic_loss = self._critic_update(lambda: lsgan(critic(b), 1.0), lambda: lsgan(critic(pooled), 0.0))
        terms.pop("fake")
        return terms | {"critic": critic_loss}

    def _digits_phase_two(self, x: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """Phase II as the official `mnist_to_svhn/` code orders it: critic real, critic fake, x step, B step."""
        hp, ae, critics = self.hparams, self.autoencoder, self.critics
        x_ba = self.translate(b, "b", "a")  # B image drawn as A
        x_ab = self.translate(x, "a", "b")  # the sample drawn as B
        critic_loss = self._critic_update(
            lambda: lsgan(critics["a"](x), 1.0) + lsgan(critics["b"](b), 1.0),
            lambda: lsgan(critics["a"](x_ba.detach()), 0.0) + lsgan(critics["b"](x_ab.detach()), 0.0),
        )
        terms = {"adversarial": self._generator_terms("a", x_ba) + self._generator_terms("b", x_ab)}
        terms |= self._x_terms(x, b, x_ab, x_ba)
        x_loss = terms["adversarial"] + hp.a_rec_weight * terms["a_rec"] + hp.cycle_weight * terms["cycle"]
        self._step(1, x_loss)
        if not hp.freeze_shared:
            latent = ae.encode(b, "b")
            terms |= {"b_rec": self.reconstruction(ae.decode(latent, "b"), b), "kl": latent_kl(latent)}
            self._step(2, hp.b_rec_weight * terms["b_rec"] + hp.kl_weight * terms["kl"])
        return terms | {"critic": critic_loss}

    def _drawing_phase_two(self, x: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """Phase II as `drawing_and_style_transfer/` orders it: x step, B step, critic step on pooled fakes."""
        hp, ae, critic = self.hparams, self.autoencoder, self.critics["b"]
        x_ab = self.translate(x, "a", "b")
        x_ba = self.translate(b, "b", "a") if hp.two_way_cycle else None
        terms = {"adversarial": self._generator_terms("b", x_ab)} | self._x_terms(x, b, x_ab, x_ba)
        self._step(1, terms["adversarial"] + hp.cycle_weight * terms["cycle"] + hp.a_rec_weight * terms["a_rec"])
        latent = ae.encode(b, "b")
        b_bb = ae.decode(latent, "b")
        if not hp.freeze_shared:
            terms |= {"b_rec": self.reconstruction(b_bb, b), "kl": latent_kl(latent)}
            terms["b_adversarial"] = self._generator_terms("b", b_bb)
            self._step(2, hp.b_rec_weight * terms["b_rec"] + hp.kl_weight * terms["kl"] + terms["b_adversarial"])
        pooled_ab, pooled_bb = self.pool.query(x_ab, self._pool_rng()), self.pool.query(b_bb, self._pool_rng())
        # 0.5 [lsgan(D(b), 1) + lsgan(D(pool(x_ab)), 0)] + 0.5 [lsgan(D(b), 1) + lsgan(D(pool(b_bb)), 0)]
        terms["critic"] = self._critic_update(
            lambda: 2 * lsgan(critic(b), 1.0), lambda: lsgan(critic(pooled_ab), 0.0) + lsgan(critic(pooled_bb), 0.0)
        )
        return terms

    def _x_terms(
        self, x: torch.Tensor, b: torch.Tensor, x_ab: torch.Tensor, x_ba: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """x's reconstruction A -> A and the enabled cycles: x -> B -> A (one-way) and b -> A -> B."""
        hp = self.hparams
        terms = {"a_rec": self.reconstruction(self.translate(x, "a", "a"), x), "cycle": x.new_zeros(())}
        if hp.one_way_cycle:
            terms["cycle"] = terms["cycle"] + self.reconstruction(self.translate(x_ab, "b", "a"), x)
        if hp.two_way_cycle:
            terms["cycle"] = terms["cycle"] + self.reconstruction(self.translate(x_ba, "a", "b"), b)
        return terms

    # ------------------------------------------------------------------ evaluation and predict
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """Translate A test images into B; logs A's reconstruction error, returns what callbacks measure:
        dfgen.contract's `TranslationOutputs` and `SourceTranslationOutputs` at once (nothing in phase 1)."""
        images, labels = batch
        if self.hparams.phase == 1:  # B's autoencoder only: nothing of A is trained yet
            return {}
        reconstruction = self.translate_each(images, "a", "a")
        self.log("val/a_rec", self.reconstruction(reconstruction, images), sync_dist=True)
        return {"sources": images, "translations": self.translate_each(images), "labels": labels}

    test_step = validation_step

    def predict_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> ImagePrediction:
        """Phase 2, per A image: the image, its reconstruction x_AA, its translation x_AB and the cycle
        x_ABA (a row of the grid, 3-channel); index 0 is the single training sample. Phase 1 (the
        DataModule gives B test images then): each B image and its reconstruction x_BB."""
        indices, images, _ = batch
        if self.hparams.phase == 1:
            rows, kinds = [images, self.translate_each(images, "b", "b")], ("b", "bb")
            prefixes = [f"test_{index:05d}" for index in indices.tolist()]
        else:
            x_ab = self.translate_each(images)
            rows = [images, self.translate_each(images, "a", "a"), x_ab, self.translate_each(x_ab, "b", "a")]
            kinds = ("a", "aa", "ab", "aba")
            prefixes = ["sample" if index == 0 else f"test_{index - 1:05d}" for index in indices.tolist()]
        rows = [row.expand(-1, 3, -1, -1) if row.shape[1] == 1 else row for row in rows]
        names = [f"{prefix}_{kind}" for prefix in prefixes for kind in kinds]
        return {"images": torch.stack(rows, dim=1).flatten(0, 1).clamp(-1, 1), "names": names}

    # ------------------------------------------------------------------ checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["one_shot_progress"] = {"pool": [image.cpu() for image in self.pool.images]}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        progress = checkpoint.get("one_shot_progress", {})
        self.pool.images = [image.to(self.device) for image in progress.get("pool", [])]
