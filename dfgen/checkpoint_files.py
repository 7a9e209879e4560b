"""Reading a checkpoint file that a user names in a setting, without letting the file run code.

`torch.load(..., weights_only=True)` rebuilds only tensors, numbers, strings and containers
(and the few types PyTorch allows by default), which is everything a Lightning checkpoint of
this project holds; any other object in the file stops the load before it is created.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch


def load_checkpoint_file(path: str | Path, expected: str) -> dict[str, Any]:
    """The contents of the Lightning checkpoint `path`, read with weights_only=True, on the CPU.

    `expected` says what the file should be (e.g. "the last.ckpt of a phase-1 OneShotTranslation
    run"); every error names the file and says it. Raises FileNotFoundError when there is no
    such file, and ValueError when it is not a checkpoint, holds objects other than plain data,
    or has no state_dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint there; expected {expected}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).split("WeightsUnpickler error:")[-1].strip().splitlines()[0].split(". ")[0]
        raise ValueError(
            f"{path}: refused: loading it would create objects other than tensors and plain values ({reason}); "
            f"expected {expected}"
        ) from error
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        raise ValueError(f"{path}: not a readable checkpoint ({error!r}); expected {expected}") from error
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ValueError(f"{path}: a file without a state_dict; expected {expected}")
    return checkpoint


def load_network_weights(
    network: torch.nn.Module, path: str | Path, expected: str, prefix: str = "network.",
    optional: tuple[str, ...] = ("num_batches_tracked",),
) -> torch.nn.Module:  # fmt: skip
    """Load into `network` the `prefix` weights of the checkpoint `path` (read as `load_checkpoint_file`
    reads it) and return it. Every weight must fit, except the keys ending in one of `optional`
    (BatchNorm's step counters, absent where BatchNorm is frozen), which may be missing on either
    side. Errors name the file and `expected`."""
    state = load_checkpoint_file(path, expected)["state_dict"]
    weights = {key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)}
    if not weights:
        raise ValueError(f"{path}: no `{prefix}` weights; expected {expected}")
    try:
        missing, unexpected = network.load_state_dict(weights, strict=False)
    except RuntimeError as error:  # a shape that does not fit
        message = f"{path}: its weights do not fit {type(network).__name__} ({error}); expected {expected}"
        raise ValueError(message) from error
    missing, unexpected = ([key for key in keys if not key.endswith(optional)] for keys in (missing, unexpected))
    if missing or unexpected:
        raise ValueError(f"{path}: its weights do not fit {type(network).__name__} (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}); expected {expected}")  # fmt: skip
    return network
