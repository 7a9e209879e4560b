"""K independent models run as one network: the layout, and moving between it and K single models.

Layout. Model k's tensors occupy channels [k*C, (k+1)*C) of a [B, K*C, ...] tensor (images
[B, K*3, H, W], critic scores [B, K, h, w]). Every convolution is grouped (groups=K), so model
k's output channels see only model k's input channels; every normalisation layer (BatchNorm,
InstanceNorm) normalises each channel on its own, so its statistics, running ones included, are
per model. A sum of the K models' losses therefore gives each model the gradient of its own
loss, and Adam, being elementwise, keeps each model's moments apart: the K models train as K
separate networks would.

State dicts. Every tensor with a leading dimension holds the K models' blocks one after another
along dim 0 (convolution weights [K*out, in, ...], biases, norm parameters and running
statistics [K*C]); a 0-dim entry (BatchNorm's `num_batches_tracked`) is one count that the
models, which always train in step, share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def model_view(x: torch.Tensor, num_models: int) -> torch.Tensor:
    """[B, K*C, *S] -> [B, K, C, *S]: one axis for the model, one for its own channels."""
    return x.view(x.shape[0], num_models, x.shape[1] // num_models, *x.shape[2:])


def per_model_mean(x: torch.Tensor) -> torch.Tensor:
    """[B, K, *S] -> [K]: the mean over everything but the model axis; a single model's is the
    plain mean, 0-dim, computed as before there were several."""
    if x.shape[1] == 1:
        return x.mean()
    return x.mean(dim=[d for d in range(x.dim()) if d != 1])


def per_model(values: torch.Tensor, channels: int, spatial_dims: int) -> torch.Tensor:
    """Per-model scalars [K] as a factor [1, K*channels, 1, ...] of a stacked tensor; one value
    (0-dim or [1]) is returned as it is, since it broadcasts.

    Multiplying noise [B, K*3, H, W] by `per_model(sigmas, 3, 2)` scales model k's noise by sigma_k.
    """
    if values.numel() == 1:
        return values
    return values.reshape(-1).repeat_interleave(channels).view(1, -1, *[1] * spatial_dims)


def stack_models(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The K models' tensors as one: images [B, C, *S] side by side as [B, K*C, *S], 0-dim values as
    [K]. A single model's tensor is returned as it is, so that one model costs no extra kernel."""
    if len(tensors) == 1:
        return tensors[0]
    return torch.stack(list(tensors)) if tensors[0].dim() == 0 else torch.cat(list(tensors), dim=1)


def total(values: torch.Tensor) -> torch.Tensor:
    """The sum of the models' values [K], the loss whose gradient gives each model its own; a single
    model's 0-dim value as it is."""
    return values.sum() if values.dim() else values


def split_models(x: torch.Tensor, num_models: int) -> list[torch.Tensor]:
    """[B, K*C, *S] -> K tensors [B, C, *S], model k's channels."""
    return list(x.chunk(num_models, dim=1))


def split_state_dict(state: Mapping[str, torch.Tensor], num_models: int) -> list[dict[str, torch.Tensor]]:
    """The state dict of a K-model network -> K state dicts of the single-model network (copies)."""
    singles: list[dict[str, torch.Tensor]] = [{} for _ in range(num_models)]
    for name, tensor in state.items():
        if tensor.dim() > 0 and tensor.shape[0] % num_models:
            raise ValueError(f"{name}: leading dimension {tensor.shape[0]} does not split into {num_models} models")
        blocks = tensor.chunk(num_models) if tensor.dim() > 0 else [tensor] * num_models
        for single, block in zip(singles, blocks):
            single[name] = block.clone()
    return singles


def stack_state_dicts(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """K state dicts of one single-model network -> the state dict of its K-model network (model k = states[k])."""
    stacked = {}
    for name, first in states[0].items():
        tensors = [state[name] for state in states]
        if first.dim() > 0:
            stacked[name] = torch.cat(tensors)
        elif all(torch.equal(tensor, first) for tensor in tensors):
            stacked[name] = first.clone()
        else:
            values = [tensor.item() for tensor in tensors]
            raise ValueError(f"{name} is shared by the stacked models and must be equal in all of them, got {values}")
    return stacked
