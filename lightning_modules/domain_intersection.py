"""Domain intersection and domain difference, DID (Benaim et al., ICCV 2019).

Two unpaired domains share some content and each has content of its own (smiles in A,
glasses in B). A common encoder E_c, separate encoders E_A and E_B and one decoder G learn
a code [common | A-part | B-part]: an A image is G(E_c(a), E_A(a), 0), a B image
G(E_c(b), 0, E_B(b)). A critic on the common code keeps it free of the domain, and the zero
loss keeps each separate encoder silent on the other domain. One iteration (`train/train.py`
of sagiebenaim/DomainIntersectionDifference): the autoencoder step on a batch of A and a batch
of B, then the critic step on the updated codes.

After training the code can be recombined: A -> B guided by any b, B -> A guided by any a,
the intersection G(E_c(x), 0, 0), the union G(E_c(x), E_A(a), E_B(b)), and interpolations.
"""

from __future__ import annotations

import torch
from torchvision.utils import make_grid

from dfgen.contract import ImagePrediction, TranslationOutputs
from dfgen.settings import AT_LEAST_1, BETAS, NON_NEGATIVE, POSITIVE, OneOf, Range, check_settings
from lightning_modules.networks.disentangle import (
    CONFUSION_TARGETS,
    CodeCritic,
    IntersectionAutoencoder,
    IntersectionDifferenceLoss,
)
from lightning_modules.two_domain import TwoDomainModule

# predict writes these images for every test pair (a, b), in this order
PREDICTION_KINDS = ("a", "b", "a_to_b", "b_to_a", "a_intersection", "b_intersection", "a_union", "b_union",
                    "a_part", "b_part")  # fmt: skip


class DomainIntersectionDifference(TwoDomainModule):
    """Learn what two image domains share and what each adds, and recombine the parts.

    Args:
        image_size: side R of the square images (128).
        depth: stride-2 layers of the encoders and the decoder (6 at 128 px: a 2x2 code).
        code_channels: channels of the whole code (512).
        separate_channels: channels of each separate part (25).
        base_channels: width of the networks' first layer (32), doubled by each further layer of
            the trunk.
        common_layer2_norm: InstanceNorm after the common encoder's 2nd layer, as the other
            layers have (the architecture's intent); False (the default) reproduces the official
            code, which misses it.
        rec_weight: weight of the reconstructions (1).
        zero_weight: weight of the zero loss (1).
        confusion_weight: weight of the domain-confusion term (0.001); 0 disables the critic.
        confusion_target: the encoders' confusion targets: "official" (both domains' codes
            towards B's label, as the official code), "flip" (each domain towards the other's
            label) or "half" (0.5 for both).
        lr: Adam learning rate of the autoencoder (2e-4).
        lr_critic: Adam learning rate of the critic (2e-4).
        betas: Adam betas of both optimizers.
        clip_norm: the autoencoder's gradients are clipped to this global L2 norm (5, as the
            official code); None: no clipping.
        critic_clip_norm: the critic's gradients are clipped to this global L2 norm; None (the
            default): unclipped, the official code's behaviour (see `TwoDomainModule`).
        iterations: training iterations (the official default: 1,250,000).
        guides_per_image: evaluation translates every A test image with this many B guides
            (the test batch's B images, rolled); a classifier averages its class probabilities
            over them (the paper's domain adaptation marginalises over guides).
        interpolation_steps: side of the interpolation grids that `predict` writes.
    """

    setting_rules = {
        "image_size": AT_LEAST_1, "depth": Range(3), "code_channels": AT_LEAST_1, "separate_channels": NON_NEGATIVE,
        "rec_weight": NON_NEGATIVE, "zero_weight": NON_NEGATIVE, "confusion_weight": NON_NEGATIVE,
        "confusion_target": OneOf(tuple(CONFUSION_TARGETS)), "lr": POSITIVE, "lr_critic": POSITIVE, "betas": BETAS,
        "clip_norm": POSITIVE, "critic_clip_norm": POSITIVE, "base_channels": AT_LEAST_1,
        "iterations": AT_LEAST_1, "guides_per_image": AT_LEAST_1,
        "interpolation_steps": Range(2),
    }  # fmt: skip

    def __init__(
        self,
        image_size: int = 128,
        depth: int = 6,
        code_channels: int = 512,
        separate_channels: int = 25,
        base_channels: int = 32,
        common_layer2_norm: bool = False,
        rec_weight: float = 1.0,
        zero_weight: float = 1.0,
        confusion_weight: float = 0.001,
        confusion_target: str = "official",
        lr: float = 2e-4,
        lr_critic: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        clip_norm: float | None = 5.0,
        critic_clip_norm: float | None = None,
        iterations: int = 1_250_000,
        guides_per_image: int = 1,
        interpolation_steps: int = 5,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        if image_size % 2**depth or image_size // 2**depth < 2:
            raise ValueError(
                f"image_size={image_size} must be a multiple of 2^depth={2**depth} with a code of at least 2x2 "
                "(InstanceNorm needs more than one value per channel); the official 128 px uses depth 6"
            )
        self.autoencoder = IntersectionAutoencoder(
            depth, code_channels, separate_channels, common_layer2_norm, base_channels
        )
        common_features = (code_channels - 2 * separate_channels) * (image_size // 2**depth) ** 2
        self.code_critic = CodeCritic(common_features)
        self.loss = IntersectionDifferenceLoss(rec_weight, zero_weight, confusion_weight, confusion_target)

    # ------------------------------------------------------------------ the operations (paper, section 3)
    def translate_a_to_b(self, a: torch.Tensor, guides_b: torch.Tensor) -> torch.Tensor:
        """G(E_c(a), 0, E_B(b)): a's A-part removed, the guide b's B-part imported [B, 3, R, R]."""
        ae = self.autoencoder
        return ae.decode(ae.common_encoder(a), None, ae.separate_encoders["b"](guides_b))

    def translate_b_to_a(self, b: torch.Tensor, guides_a: torch.Tensor) -> torch.Tensor:
        """G(E_c(b), E_A(a), 0)."""
        ae = self.autoencoder
        return ae.decode(ae.common_encoder(b), ae.separate_encoders["a"](guides_a), None)

    def intersection(self, images: torch.Tensor) -> torch.Tensor:
        """G(E_c(x), 0, 0): the content both domains share, with neither domain's own part."""
        return self.autoencoder.decode(self.autoencoder.common_encoder(images))

    def union(self, images: torch.Tensor, guides_a: torch.Tensor, guides_b: torch.Tensor) -> torch.Tensor:
        """G(E_c(x), E_A(a), E_B(b)): both domains' parts at once (never seen in training)."""
        ae = self.autoencoder
        parts = ae.separate_encoders["a"](guides_a), ae.separate_encoders["b"](guides_b)
        return ae.decode(ae.common_encoder(images), *parts)

    def separate_part(self, images: torch.Tensor, domain: str) -> torch.Tensor:
        """G(0, E_A(x), 0) or G(0, 0, E_B(x)): a separate part rendered alone."""
        part = self.autoencoder.separate_encoders[domain](images)
        return self.autoencoder.decode(None, part, None) if domain == "a" else self.autoencoder.decode(None, None, part)

    def interpolation_grid(
        self, fixed: str, a: torch.Tensor, b: torch.Tensor, steps: int | None = None
    ) -> torch.Tensor:
        """A steps x steps grid [steps^2, 3, R, R] of decoded codes mixed bilinearly (the official
        `interpolate_fixed_*` of utils.py).

        From two A images `a` [2, 3, R, R] and two B images `b`: every slot of the code moves
        between its two images' values (common: a_0 -> a_1, A-part: a_0 -> a_1, B-part:
        b_0 -> b_1) except the `fixed` one ("common", "a" or "b"), which keeps the first's.
        fixed="common": A-part down the rows, B-part across; fixed="a" or "b": the common
        code down the rows and the remaining separate part across.
        """
        steps = steps or self.hparams.interpolation_steps
        ae = self.autoencoder
        ends = {"common": ae.common_encoder(a), "a": ae.separate_encoders["a"](a), "b": ae.separate_encoders["b"](b)}
        moving = [slot for slot in ends if slot != fixed]  # [down the rows, across the columns]
        t = torch.linspace(0, 1, steps, device=a.device)
        weights = {
            fixed: torch.zeros_like(t).repeat(steps),
            moving[0]: t.repeat_interleave(steps),
            moving[1]: t.repeat(steps),
        }
        codes = [
            torch.lerp(
                ends[s][0].expand(steps**2, -1, -1, -1),
                ends[s][1].expand(steps**2, -1, -1, -1),
                weights[s][:, None, None, None],
            )
            for s in ("common", "a", "b")
        ]
        return ae.decode(*codes)

    # ------------------------------------------------------------------ training
    def _autoencoder_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ae = self.autoencoder
        images = {"a": batch["a"], "b": batch["b"]}
        codes = {d: ae.encode(x) for d, x in images.items()}
        reconstructions = {
            "a": ae.decode(codes["a"].common, codes["a"].a, None),
            "b": ae.decode(codes["b"].common, None, codes["b"].b),
        }
        return self.loss.autoencoder(images, reconstructions, codes, self.code_critic)

    def _critic_term(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            common = {d: self.autoencoder.common_encoder(batch[d]) for d in ("a", "b")}
        return self.loss.critic(self.code_critic(common["a"]), self.code_critic(common["b"]))

    # ------------------------------------------------------------------ evaluation
    def _guided_translations(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """A -> B of every a with `guides_per_image` guides: [B, K, 3, R, R], guide k = b rolled by k."""
        guides = range(min(self.hparams.guides_per_image, len(b)))
        return torch.stack([self.translate_a_to_b(a, b.roll(k, dims=0)) for k in guides], dim=1)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> TranslationOutputs:
        """Reconstruction errors, and the translations that the accuracy callback classifies.

        With labelled A images ("a_labels", digits) the classifier must find a's class in its
        translations to B (domain adaptation); otherwise membership: A -> B translations
        should be classified as B (label 1) and B -> A as A (label 0).
        """
        a, b = batch["a"], batch["b"]
        codes = {d: self.autoencoder.encode(x) for d, x in (("a", a), ("b", b))}
        errors = {
            "val/rec_a": (self.autoencoder.decode(codes["a"].common, codes["a"].a, None) - a).abs().mean(),
            "val/rec_b": (self.autoencoder.decode(codes["b"].common, None, codes["b"].b) - b).abs().mean(),
        }
        self.log_dict(errors, sync_dist=True)
        a_to_b = self._guided_translations(a, b)
        if "a_labels" in batch:
            return {"translations": a_to_b, "labels": batch["a_labels"]}
        return self.membership(batch, a_to_b=(a_to_b, 1), b_to_a=(self.translate_b_to_a(b, a.roll(1, dims=0)), 0))

    test_step = validation_step

    def fidelity_images(self, batch: dict[str, torch.Tensor], batch_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """FID/KID hook: real B test images and A -> B translations (guided by another test b)."""
        return batch["b"], self.translate_a_to_b(batch["a"], batch["b"].roll(1, dims=0)).clamp(-1, 1)

    def _preview_rows(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """a, b; A -> B, B -> A; a's intersection, a's union."""
        return {
            "a_b": torch.cat([a, b]),
            "translations": torch.cat([self.translate_a_to_b(a, b), self.translate_b_to_a(b, a)]),
            "intersection_union": torch.cat([self.intersection(a), self.union(a, a, b)]),
        }

    # ------------------------------------------------------------------ predict
    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> ImagePrediction:
        """Every operation on each pair (a_i, b_i), written as `<i>_<kind>.png` (PREDICTION_KINDS),
        and, for the first batch, the three interpolation grids."""
        a, b = batch["a"], batch["b"]
        rows = [
            a, b, self.translate_a_to_b(a, b), self.translate_b_to_a(b, a),
            self.intersection(a), self.intersection(b), self.union(a, a, b), self.union(b, a, b),
            self.separate_part(a, "a"), self.separate_part(b, "b"),
        ]  # fmt: skip
        prediction = self.prediction(batch, rows, list(PREDICTION_KINDS))
        if batch_idx == 0 and len(a) >= 2:
            steps = self.hparams.interpolation_steps
            prediction["extras"] = {
                f"interpolation_fixed_{fixed}": make_grid(
                    self.interpolation_grid(fixed, a[:2], b[:2]).clamp(-1, 1), nrow=steps, pad_value=1.0
                )
                for fixed in ("common", "a", "b")
            }
        return prediction
