"""Permuted AdaIN (pAdaIN; Nuriel, Benaim and Wolf, CVPR 2021; spec section 4.1-4.2).

With probability p per call (training only) every sample of the batch takes the
per-channel spatial mean and standard deviation of a randomly chosen sample of the same
batch: y_n = sigma_pi(n) * (x_n - mu_n) / (sigma_n + eps) + mu_pi(n). The target
statistics carry no gradient. The layer has no parameters or buffers, and
`insert_permuted_adain` attaches it to convolutions through forward hooks, so a
network's state_dict is the same with and without it.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

LEGACY_CONTENT_EPS = 1e-5  # what the classification experiments added to the content std


def channel_statistics(x: torch.Tensor, eps: float, legacy: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel spatial mean and std [N, C, 1, ...] of x [N, C, *spatial], in fp32.

    The variance is unbiased; std = sqrt(var + eps), or the plain std with `legacy`.
    """
    flat = x.float().flatten(2)  # [N, C, L]
    mean = flat.mean(dim=2)
    var = flat.var(dim=2, unbiased=True)
    std = var.sqrt() if legacy else (var + eps).sqrt()
    shape = (*x.shape[:2], *([1] * (x.dim() - 2)))
    return mean.view(shape), std.view(shape)


def permuted_adain(x: torch.Tensor, permutation: torch.Tensor, eps: float = 1e-5, legacy: bool = False) -> torch.Tensor:
    """AdaIN of each sample of x [N, C, *spatial] onto the (detached) statistics of x[permutation]."""
    mean, std = channel_statistics(x, eps, legacy)
    target_mean, target_std = mean[permutation].detach(), std[permutation].detach()
    content_eps = LEGACY_CONTENT_EPS if legacy else eps
    normalised = (x.float() - mean) / (std + content_eps)
    return (normalised * target_std + target_mean).to(x.dtype)


class PermutedAdaIN(nn.Module):
    """pAdaIN: identity in eval mode and when p = 0; otherwise fires with probability p per call.

    Args:
        p: probability that one call permutes the batch's statistics (paper: 0.01).
        eps: added to the variance (and to the content std) for stability.
        legacy_stats: the statistics of the paper's experiments (plain unbiased std, +1e-5 on
            the content std), replaced in the official code afterwards; numerically negligible.

    Randomness comes from a torch generator of the layer, seeded from torch's initial seed
    plus the process rank, so runs are reproducible and every DDP process draws its own
    decisions and permutations within its own batch, as the paper's multi-GPU runs did.
    Draws happen on the CPU, so the layer never waits for the GPU.
    """

    def __init__(self, p: float = 0.01, eps: float = 1e-5, legacy_stats: bool = False) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"p={p} is not a probability")
        self.p = p
        self.eps = eps
        self.legacy_stats = legacy_stats
        self._generator: torch.Generator | None = None

    def generator(self) -> torch.Generator:
        if self._generator is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
            self._generator = torch.Generator().manual_seed(torch.initial_seed() + rank)
        return self._generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if torch.rand((), generator=self.generator()).item() >= self.p:  # one draw per call, not per sample
            return x
        if x[0, 0].numel() <= 1:  # 1x1 maps have no spatial statistics
            return x
        permutation = torch.randperm(x.shape[0], generator=self.generator()).to(x.device, non_blocking=True)
        return permuted_adain(x, permutation, self.eps, self.legacy_stats)

    def __getstate__(self) -> dict:
        # a torch.Generator does not pickle or deep-copy; a copy starts its own stream
        return {**self.__dict__, "_generator": None}

    def extra_repr(self) -> str:
        return f"p={self.p}, eps={self.eps}, legacy_stats={self.legacy_stats}"


def _apply_padain(conv: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return conv.padain(output)


def insert_permuted_adain(
    model: nn.Module,
    p: float = 0.01,
    eps: float = 1e-5,
    legacy_stats: bool = False,
    skip: tuple[str, ...] = ("downsample", "shortcut"),
    stem: bool = True,
) -> int:
    """Apply pAdaIN to the output of every main-path convolution of `model`; returns how many.

    A convolution is skipped when a part of its qualified name contains one of `skip`
    (shortcut/downsample convolutions; add "transition" for the DenseNet quirk), and the
    first convolution when `stem` is False (the segmentation backbone's choice). In a
    post-activation network the output of a convolution goes straight to its BatchNorm, so
    this is the spec's "after every convolution, before its normalisation".
    """
    count = 0
    convolutions = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]
    for index, (name, conv) in enumerate(convolutions):
        if any(word in part for part in name.split(".") for word in skip) or (index == 0 and not stem):
            continue
        if hasattr(conv, "padain"):
            raise ValueError(f"{name} already has a pAdaIN layer")
        conv.add_module("padain", PermutedAdaIN(p, eps, legacy_stats))
        conv.register_forward_hook(_apply_padain)
        count += 1
    return count
