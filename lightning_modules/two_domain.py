"""What domain intersection/difference and mask-based content transfer share: an autoencoder whose
code has a common part, a critic on that common part, and one training iteration of the
official codes (`train/train.py` of sagiebenaim/DomainIntersectionDifference, `mask_train.py`
of rmokady/mbu-content-tansfer): the autoencoder step with the critic frozen, then the critic
step on the updated common codes.

Both official codes clip the autoencoder's gradients at a global L2 norm of 5. Their clip of the
critic's gradients is given `disc.parameters()`, a generator the optimizer has already consumed,
so it clips nothing (it returns 0): `critic_clip_norm=None`, the default, is that behaviour.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn
from torch.optim import Adam

from dfgen.contract import ImagePrediction, TranslationOutputs
from lightning_modules.iterative import IterativeModule


class TwoDomainModule(IterativeModule, ABC):
    """Base of the two-domain methods. A subclass holds `autoencoder` and `code_critic`, saves the
    hyper-parameters lr, lr_critic, betas, clip_norm, critic_clip_norm, confusion_weight and
    iterations, and defines the three pieces below that differ between the methods."""

    autoencoder: nn.Module
    code_critic: nn.Module

    # ------------------------------------------------------------------ what a method defines
    @abstractmethod
    def _autoencoder_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The autoencoder's loss terms on a training batch, "loss" their weighted sum (the critic
        is frozen while this runs)."""

    @abstractmethod
    def _critic_term(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The critic's loss on the common codes of the batch, computed after the autoencoder's step."""

    @abstractmethod
    def _preview_rows(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """The rows of the logged grids for test images a, b [N, 3, R, R] (eval mode, no gradients)."""

    # ------------------------------------------------------------------ training
    def configure_optimizers(self) -> list[Adam]:
        """[autoencoder, critic], in the order of their updates."""
        hp = self.hparams
        return [
            Adam(self.autoencoder.parameters(), lr=hp.lr, betas=tuple(hp.betas)),
            Adam(self.code_critic.parameters(), lr=hp.lr_critic, betas=tuple(hp.betas)),
        ]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """The autoencoder step, then the critic step on the updated common codes (the official order)."""
        autoencoder_optimizer, critic_optimizer = self.optimizers()
        with self.frozen(self.code_critic):  # the confusion term moves the encoders only
            terms = self._autoencoder_terms(batch)
        self.update(autoencoder_optimizer, terms.pop("loss"), self.hparams.clip_norm)
        if self.hparams.confusion_weight > 0:
            terms["critic"] = self._critic_term(batch)
            self.update(critic_optimizer, terms["critic"], self.hparams.critic_clip_norm)
        self._finish_iteration()
        self._log_terms(terms)

    # ------------------------------------------------------------------ evaluation and predict
    @staticmethod
    def membership(batch: dict[str, torch.Tensor], **translations: tuple[torch.Tensor, int]) -> TranslationOutputs:
        """The accuracy callback's outputs for named translations, each with the domain label its
        images should be classified as (A: 0, B: 1)."""
        return {
            "translations": {name: images for name, (images, _) in translations.items()},
            "labels": {name: torch.full_like(batch["index"], label) for name, (_, label) in translations.items()},
        }

    @torch.no_grad()
    def preview_images(self, num_samples: int, seed: int = 0) -> dict[str, torch.Tensor]:
        """`_preview_rows` of the first test pairs, in eval mode."""
        batch = next(iter(self.trainer.datamodule.val_dataloader()))
        a, b = batch["a"][:num_samples].to(self.device), batch["b"][:num_samples].to(self.device)
        was_training = self.training
        self.eval()
        previews = self._preview_rows(a, b)
        self.train(was_training)
        return {name: images.clamp(-1, 1) for name, images in previews.items()}

    @staticmethod
    def prediction(batch: dict[str, torch.Tensor], rows: list[torch.Tensor], kinds: list[str]) -> ImagePrediction:
        """`predict`'s images: for every pair i of the batch the rows' i-th images, named `<i>_<kind>`."""
        names = [f"{index:05d}_{kind}" for index in batch["index"].tolist() for kind in kinds]
        return {"images": torch.stack(rows, dim=1).flatten(0, 1).clamp(-1, 1), "names": names}
