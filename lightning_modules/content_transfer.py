"""Mask-based unsupervised content transfer, MBU (Mokady et al., ICLR 2020).

Paper letters throughout: A = images without the content (no glasses), B = images with it.
A common encoder E_c and a separate encoder E_s code an image; D_A draws an image from the
common code alone (the content removed), and the masked decoder D_B draws the content z and a
mask m from [common | separate] and pastes it onto a given background: m * z + (1 - m) * y.
So only the masked region is generated; the mask doubles as a weakly supervised
segmentation of the content. One iteration (`mask_train.py` of rmokady/mbu-content-tansfer):
the autoencoder step, then the critic step on the updated common codes.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics.functional.image import structural_similarity_index_measure
from torchvision.utils import make_grid

from dfgen.checkpoint_files import load_checkpoint_file
from dfgen.contract import ImagePrediction
from dfgen.settings import (
    AT_LEAST_1,
    BETAS,
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    OneOf,
    Range,
    check_settings,
)
from lightning_modules.networks.disentangle import CONFUSION_TARGETS, CodeCritic
from lightning_modules.networks.mask_transfer import MaskTransferLoss, MaskTransferNetworks
from lightning_modules.two_domain import TwoDomainModule

# predict writes these images for every test pair (a, b), in this order
PREDICTION_KINDS = ("a", "b", "transfer", "transfer_mask", "replacement", "removal", "removed", "b_mask")


class MaskContentTransfer(TwoDomainModule):
    """Add the content of a B image (glasses, a smile) to an A image, remove it, or segment it.

    Args:
        image_size: side R of the square images (128).
        depth: stride-2 layers of every network (6 at 128 px: a 2x2 code).
        code_channels: channels of the whole code (512).
        separate_channels: channels of the separate part (25).
        base_channels: width of the networks' first layer (32), doubled by each further layer of
            the trunk.
        rec_b_weight: L_Recon1^B, the official `gama` (eyewear: 7).
        rec_a_weight: L_Recon1^A, `delta` (5).
        identity_b_weight: L_Recon2^B, `alpha1` (0.7).
        identity_a_weight: L_Recon2^A, `alpha2` (0.7).
        cycle_common_weight: the common-code cycle term, `beta1` (0).
        cycle_separate_weight: the separate-code cycle term, `beta2` (0.001).
        confusion_weight: the domain-confusion term L_DC, `discweight` (0.005); 0 disables the critic.
        confusion_target: the encoders' confusion targets: "official" (both domains' codes
            towards A's label, as the official code), "flip" (each domain towards the other's
            label) or "half" (0.5 for both).
        lr: Adam learning rate of the autoencoder (2e-4).
        lr_critic: Adam learning rate of the critic, `disclr` (2e-4).
        betas: Adam betas of both optimizers.
        clip_norm: the autoencoder's gradients are clipped to this global L2 norm (5, as the
            official code); None: no clipping.
        critic_clip_norm: the critic's gradients are clipped to this global L2 norm; None (the
            default): unclipped, the official code's behaviour (see `TwoDomainModule`).
        iterations: training iterations (150,000).
        removal_threshold: removal replaces the pixels whose mask is >= this (0.1).
        removal_full_code: removal renders the content-removed image from the full code
            D_A(E_c(b), E_s(b)) as the released code does; False uses D_A(E_c(b), 0), which is
            what D_A was trained on.
        interpolation_steps: guides mixed between two B images in `predict`'s interpolation strip.
        then_checkpoint: a second trained MaskContentTransfer whose transfer `predict` applies
            after this one's (two attributes in sequence), guided by the same B images.
    """

    setting_rules = {
        "image_size": AT_LEAST_1, "depth": Range(4), "code_channels": AT_LEAST_1, "separate_channels": NON_NEGATIVE,
        "rec_b_weight": NON_NEGATIVE, "rec_a_weight": NON_NEGATIVE, "identity_b_weight": NON_NEGATIVE,
        "identity_a_weight": NON_NEGATIVE, "cycle_common_weight": NON_NEGATIVE, "cycle_separate_weight": NON_NEGATIVE,
        "confusion_weight": NON_NEGATIVE, "confusion_target": OneOf(tuple(CONFUSION_TARGETS)), "lr": POSITIVE,
        "lr_critic": POSITIVE, "betas": BETAS, "clip_norm": POSITIVE, "critic_clip_norm": POSITIVE,
        "iterations": AT_LEAST_1,
        "removal_threshold": PROBABILITY, "base_channels": AT_LEAST_1, "interpolation_steps": Range(2),
    }  # fmt: skip

    def __init__(
        self,
        image_size: int = 128,
        depth: int = 6,
        code_channels: int = 512,
        separate_channels: int = 25,
        base_channels: int = 32,
        rec_b_weight: float = 7.0,
        rec_a_weight: float = 5.0,
        identity_b_weight: float = 0.7,
        identity_a_weight: float = 0.7,
        cycle_common_weight: float = 0.0,
        cycle_separate_weight: float = 0.001,
        confusion_weight: float = 0.005,
        confusion_target: str = "official",
        lr: float = 2e-4,
        lr_critic: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        clip_norm: float | None = 5.0,
        critic_clip_norm: float | None = None,
        iterations: int = 150_000,
        removal_threshold: float = 0.1,
        removal_full_code: bool = False,
        interpolation_steps: int = 5,
        then_checkpoint: str | None = None,
    ) -> None:
        super().__init__()
        # a predict-time option: kept out of the checkpoint, whose hyper-parameters `--ckpt_path` re-applies
        self.save_hyperparameters(ignore=["then_checkpoint"])
        check_settings(self)
        self.then_checkpoint = then_checkpoint
        if image_size < 2**depth or image_size % 2**depth:
            raise ValueError(f"image_size={image_size} must be a multiple of 2^depth={2**depth}")
        self.autoencoder = MaskTransferNetworks(depth, code_channels, separate_channels, base_channels)
        self.code_critic = CodeCritic((code_channels - separate_channels) * (image_size // 2**depth) ** 2)
        self.loss = MaskTransferLoss(
            rec_b_weight, rec_a_weight, identity_b_weight, identity_a_weight, cycle_common_weight,
            cycle_separate_weight, confusion_weight, confusion_target,
        )  # fmt: skip
        self._then: MaskContentTransfer | None = None

    # ------------------------------------------------------------------ the operations (paper, section 3)
    def transfer(self, images: torch.Tensor, guides: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add each guide's content to the image: D_B(E_c(x), E_s(guide); x) and its mask [B, 1, R, R].

        On an A image this is guided content transfer; on a B image it replaces its content.
        """
        nets = self.autoencoder
        return nets.decode_masked(nets.common_encoder(images), nets.separate_encoder(guides), images)

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        """The mask of an image's own content, D_B(E_c(b), E_s(b)) [B, 1, R, R] in [0, 1]."""
        return self.transfer(images, images)[1]

    def content_removed(self, images: torch.Tensor) -> torch.Tensor:
        """D_A(E_c(b), 0), or D_A(E_c(b), E_s(b)) with `removal_full_code` (the released removal)."""
        nets = self.autoencoder
        separate = nets.separate_encoder(images) if self.hparams.removal_full_code else None
        return nets.decode_removed(nets.common_encoder(images), separate)

    def remove(self, images: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
        """M * D_A-rendering + (1 - M) * b with the binarised mask M = [m >= threshold] (the official removal.py)."""
        threshold = self.hparams.removal_threshold if threshold is None else threshold
        binary = (self.segment(images) >= threshold).to(images.dtype)
        return binary * self.content_removed(images) + (1 - binary) * images

    def interpolate(
        self, image: torch.Tensor, guide_from: torch.Tensor, guide_to: torch.Tensor, steps: int
    ) -> torch.Tensor:
        """Transfers onto one image [1, 3, R, R] with the separate code mixed from one guide's to the other's.

        Returns [steps, 3, R, R], the first guided by `guide_from` and the last by `guide_to`.
        """
        nets = self.autoencoder
        ends = nets.separate_encoder(torch.cat([guide_from, guide_to]))
        weights = torch.linspace(0, 1, steps, device=image.device)[:, None, None, None]
        separate = torch.lerp(ends[:1].expand(steps, -1, -1, -1), ends[1:].expand(steps, -1, -1, -1), weights)
        common = nets.common_encoder(image).expand(steps, -1, -1, -1)
        return nets.decode_masked(common, separate, image.expand(steps, -1, -1, -1))[0]

    # ------------------------------------------------------------------ training
    def _autoencoder_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every network called in the official order (BatchNorm's running statistics depend on it)."""
        return self.loss.autoencoder(self.autoencoder, self.code_critic, batch["a"], batch["b"])

    def _critic_term(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():  # B's code first, as the official code
            common_b = self.autoencoder.common_encoder(batch["b"])
            common_a = self.autoencoder.common_encoder(batch["a"])
        return self.loss.critic(self.code_critic(common_b), self.code_critic(common_a))

    # ------------------------------------------------------------------ evaluation
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, Any]:
        """The paper's removal measures and the outputs that the callbacks score.

        Logs the removals' SSIM with their inputs (the similarity column of the removal
        table) and, with ground-truth masks ("mask_b"), the L1 change outside the content.
        Returns transfers (to be classified B, label 1) and removals (A, label 0) for the
        membership classifier (`TranslationOutputs`), and with ground-truth masks the masks of
        the B images for the mask IoU callback (`MaskOutputs`; both of dfgen.contract).
        """
        a, b = batch["a"], batch["b"]
        transfers = self.transfer(a, b.roll(1, dims=0))[0]
        removals = self.remove(b)
        self.log("val/removal_ssim", structural_similarity_index_measure(removals, b, data_range=2.0), sync_dist=True)
        outputs = self.membership(batch, transfer=(transfers, 1), removal=(removals, 0))
        if "mask_b" in batch:
            outside = 1 - batch["mask_b"]
            change = ((removals - b).abs() * outside).sum() / (3 * outside.sum()).clamp(min=1)
            self.log("val/removal_change_outside", change, sync_dist=True)
            outputs |= {"masks": self.segment(b), "target_masks": batch["mask_b"]}
        return outputs

    test_step = validation_step

    def fidelity_images(self, batch: dict[str, torch.Tensor], batch_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """FID/KID hook of the removal table: real A images and removals from B images."""
        return batch["a"], self.remove(batch["b"]).clamp(-1, 1)

    def _preview_rows(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """a, b; transfer b -> a, its mask; b's removal, its mask."""
        transfers, transfer_masks = self.transfer(a, b)
        return {
            "a_b": torch.cat([a, b]),
            "transfer": torch.cat([transfers, transfer_masks.expand_as(a) * 2 - 1]),
            "removal": torch.cat([self.remove(b), self.segment(b).expand_as(b) * 2 - 1]),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints written before the autoencoder had the sibling method's name call it `networks`."""
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("state_dict", {})
        for key in [key for key in state if key.startswith("networks.")]:
            state["autoencoder." + key.removeprefix("networks.")] = state.pop(key)

    # ------------------------------------------------------------------ predict
    def _second_model(self) -> MaskContentTransfer | None:
        if self.then_checkpoint and self._then is None:
            # read safely first, so that a bad file is refused with its name
            load_checkpoint_file(self.then_checkpoint, "the last.ckpt of a MaskContentTransfer run")
            self._then = MaskContentTransfer.load_from_checkpoint(
                self.then_checkpoint, map_location=self.device, weights_only=True
            )
            self._then.eval()
        return self._then

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> ImagePrediction:
        """Every operation on each pair (a_i, b_i), written as `<i>_<kind>.png` (PREDICTION_KINDS):
        a, b, b's content added to a and its mask, b's content replacing b_{i-1}'s, b's removal,
        b's content-removed rendering and b's mask; with `then_checkpoint` also the second
        model's transfer after the first ("<i>_then.png"); for the first batch an
        interpolation strip between two guides."""
        a, b = batch["a"], batch["b"]
        transfers, transfer_masks = self.transfer(a, b)
        rows = [
            a, b, transfers, transfer_masks.expand_as(a) * 2 - 1, self.transfer(b.roll(1, dims=0), b)[0],
            self.remove(b), self.content_removed(b), self.segment(b).expand_as(b) * 2 - 1,
        ]  # fmt: skip
        kinds = list(PREDICTION_KINDS)
        second = self._second_model()
        if second is not None:
            rows.append(second.transfer(transfers, b)[0])
            kinds.append("then")
        prediction = self.prediction(batch, rows, kinds)
        if batch_idx == 0 and len(b) >= 2:
            strip = self.interpolate(a[:1], b[:1], b[1:2], self.hparams.interpolation_steps)
            prediction["extras"] = {"interpolation": make_grid(strip.clamp(-1, 1), nrow=len(strip), pad_value=1.0)}
        return prediction
