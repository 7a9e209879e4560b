"""Checks of constructor settings: a rule per option, and one error that names the option and its range.

Every LightningModule and DataModule lists its options' rules in a `setting_rules` class attribute
and calls `check_settings(self)` right after `save_hyperparameters()`, before it reads a file or
builds a network, so that a bad value (`--model.iters_per_scale=0`, `--data.scale_factor=1`) stops
the run at once with a line such as

    SinGAN: iters_per_scale=0; expected at least 1

An option that is None is not checked: None is the documented "not set" of an optional option.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Rule(Protocol):
    """What a valid value is: `accepts(value)`, and `expected`, the words of the error message."""

    expected: str

    def accepts(self, value: Any) -> bool: ...


def _number(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Range:
    """A finite number from `low` to `high` (None: no bound); `open_low` / `open_high` exclude the bound."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.open_low else value >= self.low)
        below = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return above and below

    @property
    def expected(self) -> str:
        if self.high is None:
            return f"{'above' if self.open_low else 'at least'} {_number(self.low)}"
        if self.low is None:
            return f"{'below' if self.open_high else 'at most'} {_number(self.high)}"
        left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
        return f"in {left}{_number(self.low)}, {_number(self.high)}{right}"


@dataclass(frozen=True)
class OneOf:
    """One of `choices`."""

    choices: tuple

    def accepts(self, value: Any) -> bool:
        return any(value == choice and type(value) is type(choice) for choice in self.choices)

    @property
    def expected(self) -> str:
        return f"one of {', '.join(repr(choice) for choice in self.choices)}"


@dataclass(frozen=True)
class Each:
    """A list or tuple (of `length` items, when given) whose every item satisfies `rule`."""

    rule: Rule
    length: int | None = None

    def accepts(self, value: Any) -> bool:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            return False
        return (self.length is None or len(value) == self.length) and all(self.rule.accepts(v) for v in value)

    @property
    def expected(self) -> str:
        count = f"{self.length} values" if self.length is not None else "a list of values"
        return f"{count}, each {self.rule.expected}"


@dataclass(frozen=True)
class Either:
    """A value that satisfies `first` or `second` (e.g. a side, or a (height, width) pair)."""

    first: Rule
    second: Rule

    def accepts(self, value: Any) -> bool:
        return self.first.accepts(value) or self.second.accepts(value)

    @property
    def expected(self) -> str:
        return f"{self.first.expected}, or {self.second.expected}"


AT_LEAST_1 = Range(1)
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, open_low=True)
PROBABILITY = Range(0, 1)
SCALE_FACTOR = Range(0, 1, open_low=True, open_high=True)  # the ratio between two pyramid scales
BETAS = Each(Range(0, 1, open_high=True), length=2)  # Adam's (beta1, beta2)


def check_settings(owner: Any, rules: Mapping[str, Rule] | None = None) -> None:
    """Raise ValueError naming the first option of `owner.hparams` that breaks its rule.

    `rules` defaults to the class's `setting_rules`; options without a rule are not checked.
    """
    rules = type(owner).setting_rules if rules is None else rules
    for name, rule in rules.items():
        value = owner.hparams[name]
        if value is not None and not rule.accepts(value):
            raise ValueError(f"{type(owner).__name__}: {name}={value!r}; expected {rule.expected}")


def check_pair_order(owner: Any, smaller: str, larger: str, strict: bool = True) -> None:
    """Raise ValueError when option `smaller` is not below (or, not `strict`, at most) option `larger`."""
    low, high = owner.hparams[smaller], owner.hparams[larger]
    if low is not None and high is not None and (low >= high if strict else low > high):
        relation = "below" if strict else "at most"
        raise ValueError(f"{type(owner).__name__}: {smaller}={low!r} must be {relation} {larger}={high!r}")


# Settings renamed since earlier versions, old name -> new name, with the same meaning: a
# checkpoint that holds an old name is read under the new one (`renamed_settings`,
# `restore_renamed_settings`), and an error about an old name says the new one.
RENAMED_SETTINGS: dict[str, str] = {
    "critic_lr": "lr_critic",  # domain intersection, content transfer
    "grad_clip": "clip_norm",  # HP-VAE-GAN
    "discriminator_lr": "lr_discriminator",  # the segmenter's FADA stage
    "discriminator_betas": "betas_discriminator",
}
# Settings replaced by others of another meaning or order: an error about one says what to give.
REPLACED_SETTINGS: dict[str, str] = {
    "sample_seed": "batch_seed (the training batches), predict_seed (the first predicted sample) or, "
    "for one-shot translation's digits, one_shot_seed (the sample's draw)",
    **{f"{part}_size": f"{part}_shape, as (height, width)" for part in ("source", "target", "test")},
    "PyramidProgressBar": "callbacks.IterationProgressBar",
}


def renamed_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` with every old name in RENAMED_SETTINGS replaced by its new name."""
    return {RENAMED_SETTINGS.get(name, name): value for name, value in settings.items()}


def restore_renamed_settings(hparams: MutableMapping[str, Any], saved: Mapping[str, Any]) -> None:
    """Give `hparams` the values that the saved settings of a checkpoint hold under old names
    (a constructor silently drops a keyword it does not know), unless `saved` also has the new name."""
    for old, new in RENAMED_SETTINGS.items():
        if old in saved and new not in saved and new in hparams:
            hparams[new] = saved[old]


def former_setting_hint(message: str) -> str | None:
    """What replaced the first old setting name that the error `message` mentions, or None."""
    for old, now in {**RENAMED_SETTINGS, **REPLACED_SETTINGS}.items():
        if re.search(rf"\b{old}\b", message):
            return f"`{old}` is now {now}"
    return None
