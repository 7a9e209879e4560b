"""Image classification backbones, with Permuted AdaIN inserted where the spec puts it (section 4.2)."""

from __future__ import annotations

from torch import nn
from torchvision import models

from lightning_modules.networks.padain import insert_permuted_adain

RESNETS = {"resnet18": models.resnet18, "resnet34": models.resnet34, "resnet50": models.resnet50,
           "resnet101": models.resnet101, "resnet152": models.resnet152}  # fmt: skip


def build_classifier(
    arch: str, num_classes: int, cifar_stem: bool, padain_p: float, padain_eps: float = 1e-5, legacy_stats: bool = False
) -> nn.Module:
    """A torchvision ResNet (v1.5) with pAdaIN after every main-path convolution.

    `cifar_stem` gives the CIFAR variant of the pAdaIN code: a 3x3 stride-1 stem
    convolution and no max-pool, for 32x32 inputs. With `padain_p` = 0 no layer is
    inserted (the baseline); the state_dict is the same either way.
    """
    if arch not in RESNETS:
        raise ValueError(f"arch={arch!r}; expected one of {sorted(RESNETS)}")
    network = RESNETS[arch](num_classes=num_classes)
    if cifar_stem:
        network.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(network.conv1.weight, mode="fan_out", nonlinearity="relu")
        network.maxpool = nn.Identity()
    if padain_p > 0:
        insert_permuted_adain(network, padain_p, padain_eps, legacy_stats)
    return network
