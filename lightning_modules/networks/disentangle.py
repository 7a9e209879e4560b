"""Networks and loss of domain intersection and domain difference (`models/models.py` and
`train/train.py` of sagiebenaim/DomainIntersectionDifference).

An image [B, 3, R, R] goes through `depth` stride-2 4x4 convolutions to a bottleneck of
s = R / 2^depth pixels (2x2 at 128 px with the official 6 layers). Codes are laid out
along channels as [common | A-specific | B-specific] = [C - 2 sep | sep | sep], C = 512 and
sep = 25 officially; flattening channel-major makes this the official flat concatenation
[1,848 | 100 | 100]. An empty slot is all zeros.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

DOMAINS = ("a", "b")


def _encoder(widths: list[int], normalised: list[bool]) -> nn.Sequential:
    """Spectral-norm 4x4 stride-2 convolutions, each + InstanceNorm (where `normalised`) + LeakyReLU(0.2)."""
    layers, channels = [], 3
    for width, norm in zip(widths, normalised):
        layers += [spectral_norm(nn.Conv2d(channels, width, 4, 2, 1))]
        layers += [nn.InstanceNorm2d(width) if norm else nn.Identity(), nn.LeakyReLU(0.2)]
        channels = width
    return nn.Sequential(*layers)


def _decoder(widths: list[int]) -> nn.Sequential:
    """Spectral-norm 4x4 stride-2 transposed convolutions + InstanceNorm + ReLU; the last to RGB + tanh.

    The official spectral norm reshapes every weight to [its first dimension, -1]; a transposed
    convolution's weight is [in, out, k, k], so sigma is taken with the input channels as rows
    (dim=0), where torch's default for transposed convolutions is the output channels (dim=1).
    The forward pass is the same either way (InstanceNorm follows and undoes the scale), the
    gradients are not.
    """
    layers = []
    for channels, width in zip(widths[:-1], widths[1:-1]):
        transposed = spectral_norm(nn.ConvTranspose2d(channels, width, 4, 2, 1), dim=0)
        layers += [transposed, nn.InstanceNorm2d(width), nn.ReLU()]
    layers += [nn.ConvTranspose2d(widths[-2], widths[-1], 4, 2, 1), nn.Tanh()]
    return nn.Sequential(*layers)


class Codes(NamedTuple):
    """An image's codes: common [B, C - 2 sep, s, s], A-specific and B-specific [B, sep, s, s]."""

    common: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor


class IntersectionAutoencoder(nn.Module):
    """Common encoder E_c, separate encoders E_A and E_B, and one decoder G(common, A-part, B-part).

    Args:
        depth: stride-2 layers of every encoder and of the decoder (6 at 128 px; 4 at 32 px).
        code_channels: channels C of the whole code (512).
        separate_channels: channels `sep` of each separate part (25).
        common_layer2_norm: InstanceNorm after the common encoder's second convolution, as the
            architecture intends; the official code builds it without one (False, the default).
        base_channels: width of the first convolution (32), doubled by each further trunk layer.
    """

    def __init__(
        self,
        depth: int = 6,
        code_channels: int = 512,
        separate_channels: int = 25,
        common_layer2_norm: bool = False,
        base_channels: int = 32,
    ) -> None:
        super().__init__()
        if depth < 3 or code_channels <= 2 * separate_channels:
            raise ValueError(f"depth={depth} must be >= 3 and code_channels={code_channels} > 2 * separate_channels")
        trunk = [base_channels * 2**i for i in range(depth - 2)]  # 32, 64, 128, 256 for depth 6
        self.separate_channels = separate_channels
        common_norms = [True] * depth
        common_norms[1] = common_layer2_norm
        widths = trunk + [code_channels - separate_channels, code_channels - 2 * separate_channels]
        self.common_encoder = _encoder(widths, common_norms)
        self.separate_encoders = nn.ModuleDict(
            {d: _encoder(trunk + [code_channels, separate_channels], [True] * depth) for d in DOMAINS}
        )
        self.decoder = _decoder([code_channels, code_channels, *reversed(trunk), 3])

    def encode(self, images: torch.Tensor) -> Codes:
        """All three codes of `images` [B, 3, R, R]."""
        return Codes(
            self.common_encoder(images), self.separate_encoders["a"](images), self.separate_encoders["b"](images)
        )

    def decode(
        self, common: torch.Tensor | None, part_a: torch.Tensor | None = None, part_b: torch.Tensor | None = None
    ) -> torch.Tensor:
        """G(common, A-part, B-part) [B, 3, R, R]; a None slot is zeros (at least one slot is given)."""
        given = next(code for code in (common, part_a, part_b) if code is not None)
        batch, _, size, _ = given.shape
        sep = self.separate_channels
        common_channels = self.decoder[0].in_channels - 2 * sep
        slots = [(common, common_channels), (part_a, sep), (part_b, sep)]
        code = torch.cat([c if c is not None else given.new_zeros(batch, ch, size, size) for c, ch in slots], dim=1)
        return self.decoder(code)


class CodeCritic(nn.Sequential):
    """D on the flattened common code: Linear(d, 512) -> LeakyReLU(0.2) -> Linear(512, 1), returning logits.

    The official network ends with a sigmoid read by BCE; logits with BCE-with-logits are the
    same loss, computed stably.
    """

    def __init__(self, common_features: int, hidden: int = 512) -> None:
        super().__init__(nn.Flatten(), nn.Linear(common_features, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))


# The encoders' targets in the domain-confusion term, for (the codes the critic labels 1, the
# codes it labels 0). Both methods' official code pushes both towards 0 (an inherited convention).
CONFUSION_TARGETS = {
    "flip": (0.0, 1.0),  # each domain's codes towards the other domain's label
    "half": (0.5, 0.5),  # maximal confusion
    "official": (0.0, 0.0),  # both towards the label 0
}


def check_confusion_target(name: str) -> tuple[float, float]:
    if name not in CONFUSION_TARGETS:
        raise ValueError(f"confusion_target={name!r}: expected one of {sorted(CONFUSION_TARGETS)}")
    return CONFUSION_TARGETS[name]


def domain_confusion(logits_one: torch.Tensor, logits_zero: torch.Tensor, targets: tuple[float, float]) -> torch.Tensor:
    """Encoders' term: BCE(D(codes labelled 1), t_1) + BCE(D(codes labelled 0), t_0)."""
    return _bce(logits_one, targets[0]) + _bce(logits_zero, targets[1])


def code_critic_loss(logits_one: torch.Tensor, logits_zero: torch.Tensor) -> torch.Tensor:
    """The critic's term: BCE(D(codes labelled 1), 1) + BCE(D(codes labelled 0), 0), on detached codes."""
    return _bce(logits_one, 1.0) + _bce(logits_zero, 0.0)


class IntersectionDifferenceLoss:
    """The losses of the official `train/train.py` (all means):

    L_AE = w_rec [L1(G(c_a, sA_a, 0), a) + L1(G(c_b, 0, sB_b), b)]       reconstruction
         + w_zero [mean|E_B(a)| + mean|E_A(b)|]                            zero loss
         + w_conf [BCE(D(c_a), t_a) + BCE(D(c_b), t_b)]                    domain confusion
    L_D  = BCE(D(c_a), 1) + BCE(D(c_b), 0)                                 on detached codes

    Args:
        rec_weight: w_rec (1).
        zero_weight: w_zero (1).
        confusion_weight: w_conf (0.001); 0 drops the term and the critic's updates.
        confusion_target: the encoders' targets (t_a, t_b), a key of CONFUSION_TARGETS.
    """

    def __init__(
        self,
        rec_weight: float,
        zero_weight: float,
        confusion_weight: float,
        confusion_target: str,
    ) -> None:
        self.rec_weight, self.zero_weight, self.confusion_weight = rec_weight, zero_weight, confusion_weight
        self.targets = check_confusion_target(confusion_target)

    def autoencoder(
        self,
        images: dict[str, torch.Tensor],
        reconstructions: dict[str, torch.Tensor],
        codes: dict[str, Codes],
        critic: nn.Module,
    ) -> dict[str, torch.Tensor]:
        """The terms and their weighted sum "loss"; `critic` should be frozen by the caller."""
        terms = {
            "rec": F.l1_loss(reconstructions["a"], images["a"]) + F.l1_loss(reconstructions["b"], images["b"]),
            "zero": codes["a"].b.abs().mean() + codes["b"].a.abs().mean(),
        }
        loss = self.rec_weight * terms["rec"] + self.zero_weight * terms["zero"]
        if self.confusion_weight > 0:
            terms["confusion"] = sum(_bce(critic(codes[d].common), target) for d, target in zip(DOMAINS, self.targets))
            loss = loss + self.confusion_weight * terms["confusion"]
        return {"loss": loss, **terms}

    critic = staticmethod(code_critic_loss)  # L_D with A's common codes labelled 1 and B's 0


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))
