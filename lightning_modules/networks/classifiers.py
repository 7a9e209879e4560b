"""Image classification backbones, with Permuted AdaIN after every main-path convolution, where the
official code (onuriel/PermutedAdaIN, `classification/architectures/`, `corruption/third_party/`) puts it."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models
from torchvision.models.resnet import BasicBlock

from lightning_modules.networks.padain import insert_permuted_adain

RESNETS = {"resnet18": models.resnet18, "resnet34": models.resnet34, "resnet50": models.resnet50,
           "resnet101": models.resnet101, "resnet152": models.resnet152}  # fmt: skip


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet (CVPR 2016, section 4.2): a 3x3 stem of 16 channels, then 3 stages
    of `blocks` basic blocks of 16, 32 and 64 channels (strides 1, 2, 2), global average pooling
    and a linear layer; 6 * blocks + 2 layers (ResNet-20 at 3 blocks, 19 pAdaIN points). Shortcuts
    that change the shape are 1x1 convolutions with BatchNorm (He et al.'s option B). Not a network
    of the pAdaIN paper: a small ResNet for the CPU experiment of benchmarks/padain_digits.py.
    """

    def __init__(self, num_classes: int, blocks: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        stages, channels = [], 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            for index in range(blocks):
                step = stride if index == 0 else 1
                downsample = None
                if step != 1 or channels != width:
                    downsample = nn.Sequential(nn.Conv2d(channels, width, 1, step, bias=False), nn.BatchNorm2d(width))
                stages.append(BasicBlock(channels, width, step, downsample))
                channels = width
        self.blocks = nn.Sequential(*stages)
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))  # [N, 64, 8, 8] -> [N, classes]


class ResNeXtBottleneck(nn.Module):
    """1x1 reduce -> 3x3 grouped -> 1x1 expand, each followed by BatchNorm; identity or 1x1 shortcut."""

    def __init__(self, in_channels: int, planes: int, cardinality: int, base_width: int, stride: int) -> None:
        super().__init__()
        width = cardinality * (planes * base_width // 64)
        self.conv_reduce = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn_reduce = nn.BatchNorm2d(width)
        self.conv_grouped = nn.Conv2d(width, width, 3, stride, 1, groups=cardinality, bias=False)
        self.bn_grouped = nn.BatchNorm2d(width)
        self.conv_expand = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn_expand = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or in_channels != planes * 4:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn_reduce(self.conv_reduce(x)))
        out = F.relu(self.bn_grouped(self.conv_grouped(out)))
        out = self.bn_expand(self.conv_expand(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class CifarResNeXt29(nn.Module):
    """ResNeXt-29 for 32x32 inputs (AugMix's CIFAR-100-C backbone): 3 stages x 3 blocks, 4 groups x 32."""

    def __init__(self, num_classes: int, cardinality: int = 4, base_width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(64)
        blocks, channels = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2)):
            for index in range(3):
                blocks.append(ResNeXtBottleneck(channels, planes, cardinality, base_width, stride if index == 0 else 1))
                channels = planes * 4
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.stem_bn(self.stem(x))))  # [N, 1024, 8, 8]
        return self.fc(x.mean(dim=(2, 3)))


class DenseLayer(nn.Module):
    """Pre-activation BN -> ReLU -> 3x3 conv adding `growth` channels, concatenated to the input."""

    def __init__(self, in_channels: int, growth: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, growth, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(F.relu(self.bn(x)))], dim=1)


class Transition(nn.Sequential):
    """BN -> ReLU -> 1x1 conv -> 2x2 average pool (compression 1.0: the width is kept)."""

    def __init__(self, channels: int) -> None:
        conv = nn.Conv2d(channels, channels, 1, bias=False)
        super().__init__(nn.BatchNorm2d(channels), nn.ReLU(), conv, nn.AvgPool2d(2))


class CifarDenseNet40(nn.Module):
    """DenseNet-40-12 without bottlenecks (AugMix's CIFAR-100-C backbone): 3 blocks of 12 layers."""

    def __init__(self, num_classes: int, growth: int = 12, layers_per_block: int = 12) -> None:
        super().__init__()
        channels = 2 * growth
        self.stem = nn.Conv2d(3, channels, 3, 1, 1, bias=False)
        stages: dict[str, nn.Module] = {}
        for block in range(3):
            for layer in range(layers_per_block):
                stages[f"block{block}_layer{layer}"] = DenseLayer(channels, growth)
                channels += growth
            if block < 2:
                stages[f"transition{block}"] = Transition(channels)
        self.features = nn.Sequential(OrderedDict(stages))
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.features(self.stem(x))))  # [N, 456, 8, 8]
        return self.fc(x.mean(dim=(2, 3)))


class DigitClassifier(nn.Sequential):
    """A small CNN for 32x32 digits of any channel count (the target-domain classifier of OST).

    Three conv-BN-ReLU blocks with max-pooling (32 -> 16 -> 8 -> 4), then a linear layer.
    """

    def __init__(self, channels: int = 3, num_classes: int = 10, width: int = 32) -> None:
        blocks = []
        for index in range(3):
            in_width = channels if index == 0 else width * 2 ** (index - 1)
            out_width = width * 2**index
            blocks += [nn.Conv2d(in_width, out_width, 3, padding=1, bias=False), nn.BatchNorm2d(out_width)]
            blocks += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        super().__init__(*blocks, nn.Flatten(), nn.Linear(width * 4 * 4 * 4, num_classes))


def he_normal_init(network: nn.Module, linear: bool) -> nn.Module:
    """The initialisation of the official CIFAR-100-C backbones (`resnext.py`, `densenet.py` of AugMix's
    third_party code): convolution weights ~ N(0, 2 / (k_h * k_w * out_channels)) (He-normal over the
    fan-out), BatchNorm weight 1 and bias 0, Linear bias 0, and with `linear` (ResNeXt) Linear
    weights ~ N(0, 2 / in_features) (He-normal over the fan-in); DenseNet keeps PyTorch's Linear weights."""
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            if linear:
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return network


def build_classifier(
    arch: str,
    num_classes: int,
    cifar_stem: bool,
    padain_p: float,
    padain_eps: float = 1e-5,
    legacy_eps: float | None = None,
) -> nn.Module:
    """A classifier with pAdaIN after every main-path convolution.

    `arch` is a torchvision ResNet (v1.5; `cifar_stem` gives the CIFAR variant of the pAdaIN
    code: a 3x3 stride-1 stem and no max-pool, for 32x32 inputs) or one of the CIFAR-100-C
    backbones "resnext29" and "densenet40" (initialised as the official code does, and
    DenseNet's transition convolutions get no pAdaIN, as there), or "resnet20" (He et al.'s
    CIFAR ResNet-20, a small network for CPU experiments). With `padain_p` = 0 no layer is
    inserted (the baseline); the state_dict is the same either way.
    """
    if arch == "resnext29":
        network = he_normal_init(CifarResNeXt29(num_classes), linear=True)
    elif arch == "densenet40":
        network = he_normal_init(CifarDenseNet40(num_classes), linear=False)
    elif arch == "resnet20":
        network = CifarResNet(num_classes)
    elif arch in RESNETS:
        network = RESNETS[arch](num_classes=num_classes)
    else:
        raise ValueError(f"arch={arch!r}; expected one of {sorted(RESNETS) + ['densenet40', 'resnet20', 'resnext29']}")
    if cifar_stem and arch in RESNETS:
        network.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(network.conv1.weight, mode="fan_out", nonlinearity="relu")
        network.maxpool = nn.Identity()
    if padain_p > 0:
        skip = ("downsample", "shortcut", "transition")
        insert_permuted_adain(network, padain_p, padain_eps, legacy_eps, skip=skip)
    return network
