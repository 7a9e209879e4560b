"""Permuted AdaIN (pAdaIN; Nuriel, Benaim and Wolf, CVPR 2021, section 3; `permutedAdaIN.py` of
onuriel/PermutedAdaIN).

With probability p per call (training only) every sample of the batch takes the
per-channel spatial mean and standard deviation of a randomly chosen sample of the same
batch: y_n = sigma_pi(n) * (x_n - mu_n) / (sigma_n + eps) + mu_pi(n). The target
statistics carry no gradient. Every layer draws its own decision and permutation at every
call, independently of the other layers, as each official layer does with its own call to
`random.random()`: in a network of L layers the number fired per forward is Binomial(L, p).
The layer has no parameters or buffers, and `insert_permuted_adain` attaches it to
convolutions through forward hooks, so a network's state_dict is the same with and without it.

The segmentation code's adversarial stage uses a second mode (`FADA/core/models/permuteAdaIN.py`,
`adv=True`): the batch is [source half; target half], and when the layer fires the source half
takes the statistics of the target half pairwise (sample i those of sample N/2 + i) while the
target half passes unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

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


def content_epsilon(eps: float, legacy_eps: float | None) -> float:
    """What the content std gets: eps, or legacy_eps with the experiments' statistics (see PermutedAdaIN)."""
    return eps if legacy_eps is None else legacy_eps


def permuted_adain(
    x: torch.Tensor, permutation: torch.Tensor, eps: float = 1e-5, legacy_eps: float | None = None
) -> torch.Tensor:
    """AdaIN of each sample of x [N, C, *spatial] onto the (detached) statistics of x[permutation]."""
    mean, std = channel_statistics(x, eps, legacy=legacy_eps is not None)
    return adain(x, (mean, std), (mean[permutation], std[permutation]), content_epsilon(eps, legacy_eps))


def source_to_target_adain(x: torch.Tensor, eps: float = 1e-5, legacy_eps: float | None = None) -> torch.Tensor:
    """x [N, C, *spatial] = [source; target] halves: sample i < N/2 takes the statistics of sample
    N/2 + i; the target half is returned unchanged."""
    if x.shape[0] % 2:
        raise ValueError(f"a batch of {x.shape[0]} samples; the source_to_target mode needs [source; target] halves")
    source, target = x.chunk(2)
    legacy = legacy_eps is not None
    statistics = channel_statistics(source, eps, legacy), channel_statistics(target, eps, legacy)
    return torch.cat([adain(source, *statistics, content_epsilon(eps, legacy_eps)), target])


def process_rank() -> int:
    """This process's rank under torch.distributed, 0 without it."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def stream_seed(stream: int) -> int:
    """The seed of pAdaIN random stream `stream` in this process: a hash (numpy's SeedSequence) of
    torch's initial seed, the process rank and the stream, so that layers and processes draw
    independently of each other and every run is reproducible from its seed."""
    key = np.random.SeedSequence([torch.initial_seed(), process_rank(), stream])
    return int(key.generate_state(1, dtype=np.uint32)[0])  # torch's CPU generator keeps 32 bits of a seed


class PermutedAdaIN(nn.Module):
    """pAdaIN: identity in eval mode and when p = 0; otherwise fires with probability p per call.

    Args:
        p: probability that one call permutes the batch's statistics (paper: 0.01).
        eps: added to the variance (and to the content std) for stability.
        legacy_eps: None for the statistics of the released layer; a number gives those of the
            paper's experiments, replaced in the official code afterwards (numerically
            negligible): the plain unbiased std, with this number added to the content std
            (1e-5 in the official classification code, 1e-4 in its CIFAR-100-C and segmentation code).
        mode: "permute" (a random permutation of the batch) or "source_to_target" (a batch of
            [source; target] halves, the source half takes the target half's statistics).
        stream: the layer's random stream; `insert_permuted_adain` numbers the layers of a
            network 0, 1, ..., so that they draw independently of each other.

    Randomness comes from a torch generator of the layer, seeded from torch's initial seed, the
    process rank and `stream` (see `stream_seed`), so runs are reproducible, the layers of a network
    fire independently, and every DDP process draws its own decisions and permutations within its
    own batch, as the paper's multi-GPU runs did. Draws happen on the CPU, so the layer never
    waits for the GPU. A batch of one sample passes unchanged (its only permutation is itself; the
    official segmentation layer returns it too), as do 1x1 maps, which have no spatial statistics.
    """

    def __init__(
        self,
        p: float = 0.01,
        eps: float = 1e-5,
        legacy_eps: float | None = None,
        mode: str = "permute",
        stream: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"p={p} is not a probability")
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; expected one of {MODES}")
        self.p = p
        self.eps = eps
        self.legacy_eps = legacy_eps
        self.mode = mode
        self.stream = stream
        self._generator: torch.Generator | None = None

    def generator(self) -> torch.Generator:
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(stream_seed(self.stream))
        return self._generator

    def draw(self, batch_size: int) -> torch.Tensor | None:
        """One call's random decision: a permutation of range(batch_size) [N] when the layer fires
        (probability p; one draw per call, not per sample), else None."""
        generator = self.generator()
        if torch.rand((), generator=generator).item() >= self.p:
            return None
        return torch.randperm(batch_size, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        permutation = self.draw(x.shape[0])
        if permutation is None or x.shape[0] == 1 or x[0, 0].numel() <= 1:
            return x
        if self.mode == "source_to_target":
            return source_to_target_adain(x, self.eps, self.legacy_eps)
        return permuted_adain(x, permutation.to(x.device, non_blocking=True), self.eps, self.legacy_eps)

    def __getstate__(self) -> dict:
        # a torch.Generator does not pickle or deep-copy; a copy starts its stream afresh
        return {**self.__dict__, "_generator": None}

    def extra_repr(self) -> str:
        return f"p={self.p}, eps={self.eps}, legacy_eps={self.legacy_eps}, mode={self.mode}, stream={self.stream}"


def _apply_padain(conv: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return conv.padain(output)


def insert_permuted_adain(
    model: nn.Module,
    p: float = 0.01,
    eps: float = 1e-5,
    legacy_eps: float | None = None,
    skip: tuple[str, ...] = ("downsample", "shortcut"),
    stem: bool = True,
    mode: str = "permute",
) -> int:
    """Apply pAdaIN to the output of every main-path convolution of `model`; returns how many.

    A convolution is skipped when a part of its qualified name contains one of `skip`
    (shortcut/downsample convolutions; add "transition" for the DenseNet quirk), and the
    first convolution when `stem` is False (the segmentation backbone's choice). In a
    post-activation network the output of a convolution goes straight to its BatchNorm, so
    this is the paper's "after every convolution, before its normalisation". The layers get the
    random streams 0, 1, ... in the order of `model.named_modules()`; the other arguments are
    PermutedAdaIN's.
    """
    count = 0
    convolutions = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]
    for index, (name, conv) in enumerate(convolutions):
        if any(word in part for part in name.split(".") for word in skip) or (index == 0 and not stem):
            continue
        if hasattr(conv, "padain"):
            raise ValueError(f"{name} already has a pAdaIN layer")
        conv.add_module("padain", PermutedAdaIN(p, eps, legacy_eps, mode, stream=count))
        conv.register_forward_hook(_apply_padain)
        count += 1
    return count


def padain_layers(model: nn.Module) -> list[PermutedAdaIN]:
    return [module for module in model.modules() if isinstance(module, PermutedAdaIN)]


@contextmanager
def padain_suspended(model: nn.Module) -> Iterator[None]:
    """Inside the block the pAdaIN layers of `model` are identities (and draw nothing)."""
    active = [layer for layer in padain_layers(model) if layer.training]
    for layer in active:
        layer.train(False)
    try:
        yield
    finally:
        for layer in active:
            layer.train(True)


def padain_generator_states(model: nn.Module) -> torch.Tensor | None:
    """The random states of every pAdaIN layer of `model`, uint8 [layers, state bytes] (None without layers)."""
    layers = padain_layers(model)
    return torch.stack([layer.generator().get_state() for layer in layers]) if layers else None


def restore_padain_generators(model: nn.Module, states: torch.Tensor) -> None:
    """Set the random states of the pAdaIN layers of `model` from `padain_generator_states`."""
    layers = padain_layers(model)
    if len(layers) != len(states):
        raise ValueError(f"{len(states)} pAdaIN random states for a network with {len(layers)} pAdaIN layers")
    if len(states) > 1 and all(torch.equal(state, states[0]) for state in states[1:]):
        warnings.warn(
            "the pAdaIN random states of this checkpoint are all the same: it comes from a version whose "
            "layers all fired together; the layers keep fresh independent streams instead",
            stacklevel=2,
        )
        return
    for layer, state in zip(layers, states):
        layer.generator().set_state(state.cpu().clone())  # a state of its own: no view into the checkpoint
