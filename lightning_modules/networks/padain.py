"""Permuted AdaIN (pAdaIN; Nuriel, Benaim and Wolf, CVPR 2021; spec section 4.1-4.2).

With probability p per call (training only) every sample of the batch takes the
per-channel spatial mean and standard deviation of a randomly chosen sample of the same
batch: y_n = sigma_pi(n) * (x_n - mu_n) / (sigma_n + eps) + mu_pi(n). The target
statistics carry no gradient. The layer has no parameters or buffers, and
`insert_permuted_adain` attaches it to convolutions through forward hooks, so a
network's state_dict is the same with and without it.

The segmentation code's adversarial stage uses a second mode (spec 4.2, "adv"): the batch is
[source half; target half], and when the layer fires the source half takes the statistics of
the target half pairwise (sample i those of sample N/2 + i) while the target half passes unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

LEGACY_CONTENT_EPS = 1e-5  # what the classification experiments added to the content std
MODES = ("permute", "source_to_target")


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


def adain(
    x: torch.Tensor,
    statistics: tuple[torch.Tensor, torch.Tensor],
    target: tuple[torch.Tensor, torch.Tensor],
    content_eps: float,
) -> torch.Tensor:
    """x [N, C, *spatial] with its own (mean, std) `statistics` renormalised to the (detached) `target` ones."""
    mean, std = statistics
    target_mean, target_std = (value.detach() for value in target)
    return ((x.float() - mean) / (std + content_eps) * target_std + target_mean).to(x.dtype)


def permuted_adain(x: torch.Tensor, permutation: torch.Tensor, eps: float = 1e-5, legacy: bool = False) -> torch.Tensor:
    """AdaIN of each sample of x [N, C, *spatial] onto the (detached) statistics of x[permutation]."""
    mean, std = channel_statistics(x, eps, legacy)
    content_eps = LEGACY_CONTENT_EPS if legacy else eps
    return adain(x, (mean, std), (mean[permutation], std[permutation]), content_eps)


def source_to_target_adain(x: torch.Tensor, eps: float = 1e-5, legacy: bool = False) -> torch.Tensor:
    """x [N, C, *spatial] = [source; target] halves: sample i < N/2 takes the statistics of sample
    N/2 + i; the target half is returned unchanged."""
    if x.shape[0] % 2:
        raise ValueError(f"a batch of {x.shape[0]} samples; the source_to_target mode needs [source; target] halves")
    source, target = x.chunk(2)
    content_eps = LEGACY_CONTENT_EPS if legacy else eps
    stylised = adain(source, channel_statistics(source, eps, legacy), channel_statistics(target, eps, legacy),
                     content_eps)  # fmt: skip
    return torch.cat([stylised, target])


class PermutedAdaIN(nn.Module):
    """pAdaIN: identity in eval mode and when p = 0; otherwise fires with probability p per call.

    Args:
        p: probability that one call permutes the batch's statistics (paper: 0.01).
        eps: added to the variance (and to the content std) for stability.
        legacy_stats: the statistics of the paper's experiments (plain unbiased std, +1e-5 on
            the content std), replaced in the official code afterwards; numerically negligible.
        mode: "permute" (a random permutation of the batch) or "source_to_target" (a batch of
            [source; target] halves, the source half takes the target half's statistics).

    Randomness comes from a torch generator of the layer, seeded from torch's initial seed
    plus the process rank, so runs are reproducible and every DDP process draws its own
    decisions and permutations within its own batch, as the paper's multi-GPU runs did.
    Draws happen on the CPU, so the layer never waits for the GPU.
    """

    def __init__(self, p: float = 0.01, eps: float = 1e-5, legacy_stats: bool = False, mode: str = "permute") -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"p={p} is not a probability")
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; expected one of {MODES}")
        self.p = p
        self.eps = eps
        self.legacy_stats = legacy_stats
        self.mode = mode
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
        if self.mode == "source_to_target":
            return source_to_target_adain(x, self.eps, self.legacy_stats)
        permutation = torch.randperm(x.shape[0], generator=self.generator()).to(x.device, non_blocking=True)
        return permuted_adain(x, permutation, self.eps, self.legacy_stats)

    def __getstate__(self) -> dict:
        # a torch.Generator does not pickle or deep-copy; a copy starts its own stream
        return {**self.__dict__, "_generator": None}

    def extra_repr(self) -> str:
        return f"p={self.p}, eps={self.eps}, legacy_stats={self.legacy_stats}, mode={self.mode}"


def _apply_padain(conv: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return conv.padain(output)


def insert_permuted_adain(
    model: nn.Module,
    p: float = 0.01,
    eps: float = 1e-5,
    legacy_stats: bool = False,
    skip: tuple[str, ...] = ("downsample", "shortcut"),
    stem: bool = True,
    mode: str = "permute",
) -> int:
    """Apply pAdaIN to the output of every main-path convolution of `model`; returns how many.

    A convolution is skipped when a part of its qualified name contains one of `skip`
    (shortcut/downsample convolutions; add "transition" for the DenseNet quirk), and the
    first convolution when `stem` is False (the segmentation backbone's choice). In a
    post-activation network the output of a convolution goes straight to its BatchNorm, so
    this is the spec's "after every convolution, before its normalisation". `mode` as PermutedAdaIN's.
    """
    count = 0
    convolutions = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]
    for index, (name, conv) in enumerate(convolutions):
        if any(word in part for part in name.split(".") for word in skip) or (index == 0 and not stem):
            continue
        if hasattr(conv, "padain"):
            raise ValueError(f"{name} already has a pAdaIN layer")
        conv.add_module("padain", PermutedAdaIN(p, eps, legacy_stats, mode))
        conv.register_forward_hook(_apply_padain)
        count += 1
    return count


def padain_layers(model: nn.Module) -> list[PermutedAdaIN]:
    return [module for module in model.modules() if isinstance(module, PermutedAdaIN)]


def padain_generator_states(model: nn.Module) -> torch.Tensor | None:
    """The random states of every pAdaIN layer of `model`, uint8 [layers, state bytes] (None without layers)."""
    layers = padain_layers(model)
    return torch.stack([layer.generator().get_state() for layer in layers]) if layers else None


def restore_padain_generators(model: nn.Module, states: torch.Tensor) -> None:
    """Set the random states of the pAdaIN layers of `model` from `padain_generator_states`."""
    layers = padain_layers(model)
    if len(layers) != len(states):
        raise ValueError(f"{len(states)} pAdaIN random states for a network with {len(layers)} pAdaIN layers")
    for layer, state in zip(layers, states):
        layer.generator().set_state(state.cpu().clone())  # a state of its own: no view into the checkpoint


class PermutedAdaINCheckpointing:
    """LightningModule mixin: checkpoints carry each process's pAdaIN random states (layers of
    `self.network`), so a resumed run takes the same pAdaIN decisions as an uninterrupted one."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        states = padain_generator_states(self.network)
        if states is not None:  # every process saves; all_gather gives [processes, layers, bytes]
            gathered = self.all_gather(states.to(self.device)).cpu()
            checkpoint["padain_generators"] = gathered if gathered.dim() == 3 else gathered[None]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        states = checkpoint.get("padain_generators")
        if states is not None and padain_layers(self.network):
            restore_padain_generators(self.network, states[min(self.global_rank, len(states) - 1)])
