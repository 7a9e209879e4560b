"""Networks and loss of mask-based unsupervised content transfer (`mask_models.py` and
`mask_train.py` of rmokady/mbu-content-tansfer).

Paper letters: A = images without the content (no glasses), B = images with it. A code is
[common | separate] along channels = [C - sep | sep] (487 + 25 = 512 officially, on a 2x2
map at 128 px with 6 layers); A images and removals have an all-zero separate part.
Every convolution is 4x4 stride 2 with BatchNorm and LeakyReLU(0.2); no spectral norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.networks.disentangle import check_confusion_target, code_critic_loss, domain_confusion


def _encoder(widths: list[int]) -> nn.Sequential:
    layers, channels = [], 3
    for width in widths:
        layers += [nn.Conv2d(channels, width, 4, 2, 1), nn.BatchNorm2d(width), nn.LeakyReLU(0.2)]
        channels = width
    return nn.Sequential(*layers)


def _decoder(widths: list[int], out_channels: int) -> nn.Sequential:
    """Transposed convolutions + BatchNorm + LeakyReLU(0.2) through `widths`, then one to `out_channels`."""
    layers = []
    for channels, width in zip(widths[:-1], widths[1:]):
        layers += [nn.ConvTranspose2d(channels, width, 4, 2, 1), nn.BatchNorm2d(width), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.ConvTranspose2d(widths[-1], out_channels, 4, 2, 1))


class MaskTransferNetworks(nn.Module):
    """E_c, E_s, the content-removed decoder D_A and the masked decoder D_B.

    Args:
        depth: stride-2 layers of every network (6 at 128 px: a 2x2 code).
        code_channels: channels C of the whole code (512).
        separate_channels: channels `sep` of the separate part (25).
        base_channels: width of the first convolution (32), doubled by each further trunk layer
            (E_s stops doubling at 4 x base_channels).
    """

    def __init__(
        self, depth: int = 6, code_channels: int = 512, separate_channels: int = 25, base_channels: int = 32
    ) -> None:
        super().__init__()
        if depth < 4 or code_channels <= separate_channels:
            raise ValueError(f"depth={depth} must be >= 4 and code_channels={code_channels} > separate_channels")
        trunk = [base_channels * 2**i for i in range(depth - 2)]  # 32, 64, 128, 256 for depth 6
        common = code_channels - separate_channels
        self.separate_channels = separate_channels
        self.common_encoder = _encoder(trunk + [common, common])
        narrow = [min(base_channels * 2**i, 4 * base_channels) for i in range(depth - 1)]  # 32, 64, 128, 128, 128
        self.separate_encoder = _encoder(narrow + [separate_channels])
        decoder_widths = [code_channels, code_channels, *reversed(trunk)]
        self.removed_decoder = _decoder(decoder_widths, 3)  # D_A
        self.masked_decoder = _decoder(decoder_widths, 4)  # D_B: mask logit + RGB

    def code(self, common: torch.Tensor, separate: torch.Tensor | None) -> torch.Tensor:
        """[common | separate] along channels; None is the zero separate part of A images and removals."""
        if separate is None:
            batch, _, height, width = common.shape
            separate = common.new_zeros(batch, self.separate_channels, height, width)
        return torch.cat([common, separate], dim=1)

    def decode_removed(self, common: torch.Tensor, separate: torch.Tensor | None = None) -> torch.Tensor:
        """D_A(common, separate) [B, 3, R, R]: the image without the content (trained with separate = 0)."""
        return torch.tanh(self.removed_decoder(self.code(common, separate)))

    def decode_masked(
        self, common: torch.Tensor, separate: torch.Tensor | None, background: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """D_B: m * z + (1 - m) * background [B, 3, R, R] and the mask m [B, 1, R, R].

        The mask and the content z depend on the code only, not on the background.
        """
        raw = self.masked_decoder(self.code(common, separate))
        mask, content = torch.sigmoid(raw[:, :1]), torch.tanh(raw[:, 1:])
        return mask * content + (1 - mask) * background, mask


class MaskTransferLoss:
    """The autoencoder loss of the official `mask_train.py` (weights by the official names of its README):

    rec_b      = L1(D_B(c_b, s_b; D_A(c_b, 0)), b)    L_Recon1^B (gama):  b's content pasted on its removal
    rec_a      = L1(D_A(c_a, 0), a)                   L_Recon1^A (delta)
    identity_b = L1(D_B(c_b, s_b; b), b)              L_Recon2^B (alpha1): the self-composite is b
    identity_a = L1(D_B(c_a, 0; a), a)                L_Recon2^A (alpha2): no content, no change
    cycle_common   = MSE(E_c(t), c_a)                 L_Cycle (beta1), t = D_B(c_a, s_b; a)
    cycle_separate = MSE(E_s(t), s_b)                 L_Cycle (beta2)
    confusion = BCE(D(c_b), t_1) + BCE(D(c_a), t_0)   L_DC (discweight); the critic labels B 1, A 0

    The cycle targets are not detached, as in the official code. Every network is called in
    the official order, zero-weight terms included, so that BatchNorm's running statistics see
    the same batches in the same order (the official code's A is our B):

        E_c(b), E_s(b), E_c(a), D_A(c_b, 0), D_B(rec_b), D_A(c_a, 0), D_B(t), D_B(identity_a),
        D_B(identity_b), E_c(t), E_s(t)

    A term whose weight is 0 is computed without gradients (the statistics only) and logged
    but not added; the confusion term, the one the official code skips at weight 0, is skipped.
    """

    def __init__(
        self,
        rec_b_weight: float,
        rec_a_weight: float,
        identity_b_weight: float,
        identity_a_weight: float,
        cycle_common_weight: float,
        cycle_separate_weight: float,
        confusion_weight: float,
        confusion_target: str,
    ) -> None:
        self.weights = {
            "rec_b": rec_b_weight,
            "rec_a": rec_a_weight,
            "identity_b": identity_b_weight,
            "identity_a": identity_a_weight,
            "cycle_common": cycle_common_weight,
            "cycle_separate": cycle_separate_weight,
            "confusion": confusion_weight,
        }
        self.targets = check_confusion_target(confusion_target)

    def autoencoder(
        self, networks: MaskTransferNetworks, critic: nn.Module, a: torch.Tensor, b: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The weighted terms and their sum "loss"; `critic` should be frozen by the caller."""
        w, nets = self.weights, networks
        # E_c sees A and B in separate calls: BatchNorm statistics per domain, as the official code
        common_b, separate_b = nets.common_encoder(b), nets.separate_encoder(b)
        common_a = nets.common_encoder(a)
        terms = {}
        with self._gradients_if(w["rec_b"]):
            terms["rec_b"] = F.l1_loss(nets.decode_masked(common_b, separate_b, nets.decode_removed(common_b))[0], b)
        with self._gradients_if(w["rec_a"]):
            terms["rec_a"] = F.l1_loss(nets.decode_removed(common_a), a)
        with self._gradients_if(w["cycle_common"] or w["cycle_separate"]):
            transfer = nets.decode_masked(common_a, separate_b, a)[0]
        with self._gradients_if(w["identity_a"]):
            terms["identity_a"] = F.l1_loss(nets.decode_masked(common_a, None, a)[0], a)
        with self._gradients_if(w["identity_b"]):
            terms["identity_b"] = F.l1_loss(nets.decode_masked(common_b, separate_b, b)[0], b)
        with self._gradients_if(w["cycle_common"]):
            terms["cycle_common"] = F.mse_loss(nets.common_encoder(transfer), common_a)
        with self._gradients_if(w["cycle_separate"]):
            terms["cycle_separate"] = F.mse_loss(nets.separate_encoder(transfer), separate_b)
        if w["confusion"]:
            terms["confusion"] = domain_confusion(critic(common_b), critic(common_a), self.targets)
        loss = sum(w[name] * term for name, term in terms.items() if w[name])
        return {"loss": loss, **terms}

    @staticmethod
    def _gradients_if(weight: float) -> torch.autograd.grad_mode.set_grad_enabled:
        """Record the graph only for a term that counts (and only where gradients are on at all)."""
        return torch.set_grad_enabled(torch.is_grad_enabled() and bool(weight))

    critic = staticmethod(code_critic_loss)  # L_D with B's common codes labelled 1 and A's 0
