"""What a method (LightningModule) and its DataModule owe the callbacks, written once.

A callback names the protocols below that it needs (`module_needs`, `datamodule_needs`) and
checks them at `setup` with `require`, which fails with one line naming the callback, the
class and the missing members. A few callbacks only use a protocol when it is there and say
what they do otherwise (`provides` decides it once, at setup): the progress bar counts the
module's own iterations when it `ShowsProgress`, else it is Lightning's bar.

What `validation_step`, `test_step` and `predict_step` return is written as TypedDicts. A step
may return the keys of several at once (one-shot translation's evaluation serves both the
accuracy and the content/style callbacks); each callback reads its own keys with
`step_outputs`. Returning none of a callback's keys (an empty dict, or None) means "nothing
for this callback in this batch" (one-shot translation's phase 1 has no translation yet); a
dict with some of the keys but not all is an error that names the missing ones.

Images are in [-1, 1] throughout.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, TypedDict, runtime_checkable

from torch import Tensor

CONTRACT_FILE = "dfgen/contract.py"


# ---------------------------------------------------------------------- the method's side
@runtime_checkable
class CountsIterations(Protocol):
    """The module counts its own training iterations (one per batch, however many optimizers
    step in it). Checkpoint periods, sample grids and end-of-run metrics use it as the step;
    modules without it are counted in optimizer steps (`trainer.global_step`)."""

    iteration: int


@runtime_checkable
class ShowsProgress(CountsIterations, Protocol):
    """The module knows how long its run is and how to describe where it is
    ("scale 3/8 step 120/2000"), for `callbacks.IterationProgressBar`."""

    total_iterations: int
    progress_description: str


@runtime_checkable
class TrainsInStages(CountsIterations, Protocol):
    """The module trains in stages (a pyramid's scales): `stage_finished` is True on the
    iteration that completes one, when `callbacks.SampleGrid` logs the stage's result."""

    stage_finished: bool


@runtime_checkable
class Previews(Protocol):
    """Named batches to look at while training (`callbacks.SampleGrid`): images [B, 3, H, W] or
    clips [B, T, 3, H, W], the same samples at every call with the same seed."""

    def preview_images(self, num_samples: int, seed: int) -> dict[str, Tensor]: ...


@runtime_checkable
class SetFidelity(Protocol):
    """Real and generated images of one evaluation batch for FID/KID (`callbacks.FIDKID`):
    (real [B, 3, H, W], generated [B', 3, H, W])."""

    def fidelity_images(self, batch: Any, batch_idx: int) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class SingleImageFidelity(Protocol):
    """Each generated set with the single real image it is compared with (`callbacks.SIFID`):
    {name: (real [1, 3, H, W], generated [num_samples, 3, H, W])}. The metric of name "" is
    logged as "<stage>/sifid_mean", of any other name as "<stage>/sifid_<name>_mean"; names
    "<group>/<member>" are also summarised over the group's members ("<stage>/sifid_<group>_mean", "_std")."""

    def sifid_images(self, num_samples: int) -> dict[str, tuple[Tensor, Tensor]]: ...


@runtime_checkable
class VideoClips(Protocol):
    """The real clip and generated clips for the video metrics (`callbacks.VideoDiversity`,
    `callbacks.VideoSIFID`): (real [1, 3, T, H, W], generated [num_samples, 3, T, H, W])."""

    def video_metric_clips(self, num_samples: int) -> tuple[Tensor, Tensor]: ...


# ---------------------------------------------------------------------- the DataModule's side
@runtime_checkable
class StyleReferences(Protocol):
    """Target-domain images [N, 3, H, W] whose mean Gram matrices are the style distance's
    reference (`callbacks.ContentStyleDistances`)."""

    def style_references(self) -> Tensor: ...


@runtime_checkable
class ClassNames(Protocol):
    """The name of every class index (`callbacks.ClassPredictionWriter` writes them beside the
    indices; without them the name column is empty)."""

    class_names: list[str]


# ---------------------------------------------------------------------- validation and test outputs
class SegmentationOutputs(TypedDict):
    """For `callbacks.MeanIoU`: predictions, logits [B, C, H, W] or labels [B, H, W], and target labels [B, H, W]."""

    preds: Tensor
    target: Tensor


class TranslationOutputs(TypedDict):
    """For `callbacks.TranslationAccuracy`: translations [B, C, H, W] (or [B, K, C, H, W], K per
    source) and the labels [B] a target-domain classifier should give them; or dicts of both
    by name, one accuracy each."""

    translations: Tensor | dict[str, Tensor]
    labels: Tensor | dict[str, Tensor]


class MaskOutputs(TypedDict):
    """For `callbacks.MaskIoU`: soft masks [B, 1, H, W] in [0, 1] and binary target masks [B, 1, H, W]."""

    masks: Tensor
    target_masks: Tensor


class SourceTranslationOutputs(TypedDict):
    """For `callbacks.ContentStyleDistances`: sources [B, C, H, W] and their translations [B, 3, H, W]."""

    sources: Tensor
    translations: Tensor


# ---------------------------------------------------------------------- predict outputs
class _ImagePredictionRequired(TypedDict):
    images: Tensor
    names: list[str]


class ImagePrediction(_ImagePredictionRequired, total=False):
    """For `callbacks.ImagePredictionWriter`: images [B, 3, H, W] written as `<name>.png`, and
    optional extras {name: [3, H, W]} written beside them but left out of the grid."""

    extras: dict[str, Tensor]


class VideoPrediction(TypedDict):
    """For `callbacks.VideoPredictionWriter`: clips [B, 3, T, H, W], their names and frame rate."""

    videos: Tensor
    names: list[str]
    fps: float


class SegmentationPrediction(TypedDict):
    """For `callbacks.SegmentationPredictionWriter`: train-id maps [h, w] (one per image, each at its size)."""

    train_ids: list[Tensor]
    names: list[str]


class ClassPrediction(TypedDict):
    """For `callbacks.ClassPredictionWriter`: image file names and class probabilities [B, num_classes]."""

    names: list[str]
    probabilities: Tensor


# ---------------------------------------------------------------------- checking
class ContractError(TypeError):
    """A module or DataModule lacks what a callback needs, or a step returned the wrong keys."""


def _protocol_classes(protocol: type) -> list[type]:
    """The protocol and the protocols it extends, base first."""
    return [cls for cls in reversed(protocol.__mro__) if getattr(cls, "_is_protocol", False) and cls is not Protocol]


def _member_descriptions(protocol: type) -> dict[str, str]:
    """Every member of `protocol` -> how it is written ("iteration: int", "sifid_images(num_samples: int) -> ...")."""
    members: dict[str, str] = {}
    for cls in _protocol_classes(protocol):
        for name, annotation in vars(cls).get("__annotations__", {}).items():
            members[name] = f"{name}: {annotation}"
        for name, value in vars(cls).items():
            if callable(value) and not name.startswith("_"):
                parameters = list(inspect.signature(value).parameters.values())[1:]  # without self
                arguments = ", ".join(f"{p.name}: {p.annotation}" for p in parameters)
                members[name] = f"{name}({arguments}) -> {inspect.signature(value).return_annotation}"
    return members


def _has(owner: object, name: str) -> bool:
    """Whether `owner` has `name`, without running a property (which may need a running trainer)."""
    try:
        inspect.getattr_static(owner, name)
    except AttributeError:
        return hasattr(owner, name)  # e.g. a submodule or buffer, which nn.Module serves dynamically
    return True


def missing_members(owner: object, protocol: type) -> list[str]:
    """The members of `protocol` that `owner` (an instance, or a class for its methods) lacks."""
    return [name for name in _member_descriptions(protocol) if not _has(owner, name)]


def provides(owner: object, protocol: type) -> bool:
    """Whether `owner` has every member of `protocol` (None provides nothing)."""
    return owner is not None and not missing_members(owner, protocol)


def _class_name(owner: object) -> str:
    return owner.__name__ if isinstance(owner, type) else type(owner).__name__


def require(owner: object, protocol: type, callback: str, role: str = "module") -> None:
    """Raise ContractError, one line, unless `owner` provides `protocol`.

    `callback` names who needs it; `role` says what `owner` is ("module", "DataModule"). For
    example: "SIFID needs the module to provide SingleImageFidelity (dfgen/contract.py):
    sifid_images(num_samples: int) -> dict[str, tuple[Tensor, Tensor]]; ToyGenerator has no sifid_images".
    """
    members = _member_descriptions(protocol)
    if owner is None:
        lacking = f"the run has no {role}"
    else:
        missing = missing_members(owner, protocol)
        if not missing:
            return
        lacking = f"{_class_name(owner)} has no {', '.join(missing)}"
    what = "; ".join(members.values())
    raise ContractError(
        f"{callback} needs the {role} to provide {protocol.__name__} ({CONTRACT_FILE}): {what}; {lacking}"
    )


def step_outputs(
    outputs: Any, schema: type, callback: str, owner: object, step: str, required: bool = False
) -> dict[str, Any] | None:
    """The keys of `schema` (a TypedDict) from what `owner`'s `step` ("validation_step", ...)
    returned, or None when it returned none of them and `required` is False (nothing for
    `callback` in this batch).

    Raises ContractError, naming the missing keys, for a dict with some of the keys but not all,
    and, when `required`, for anything without them.
    """
    keys = schema.__required_keys__
    present = keys & outputs.keys() if isinstance(outputs, dict) else set()
    if present == keys:
        return {key: outputs[key] for key in schema.__annotations__ if key in outputs}
    if not present and not required:
        return None
    wanted = "{" + ", ".join(repr(key) for key in sorted(keys)) + "}"
    if isinstance(outputs, dict):
        got = "has no " + ", ".join(repr(key) for key in sorted(keys - present))
    else:
        got = f"is {type(outputs).__name__}"
    raise ContractError(
        f"{callback} needs {step} to return {schema.__name__} {wanted} ({CONTRACT_FILE}); "
        f"{_class_name(owner)}.{step}'s result {got}"
    )
