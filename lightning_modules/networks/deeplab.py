"""DeepLab-v2 with a torchvision ResNet backbone, for segmentation with Permuted AdaIN (the `FADA/`
code of onuriel/PermutedAdaIN).

The backbone is a torchvision ResNet (v1.5) whose layers 3 and 4 trade their stride for
dilation 2 and 4 (output stride 8, 2048 channels); the ASPP-v2 head is four 3x3 convolutions
from the features straight to class scores, dilated 6, 12, 18 and 24, whose outputs are summed.
The adversarial (FADA) stage adds a class-wise discriminator on the backbone's features.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet50, resnet101
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.ops import FrozenBatchNorm2d

from lightning_modules.networks.padain import insert_permuted_adain


def resnet14_narrow(**kwargs) -> ResNet:
    """One bottleneck per stage at a quarter of the inner width, for CPU tests (not a paper network)."""
    return ResNet(Bottleneck, [1, 1, 1, 1], width_per_group=16, **kwargs)


BACKBONES = {"resnet50": resnet50, "resnet101": resnet101, "resnet14_narrow": resnet14_narrow}


class ASPPv2(nn.Module):
    """Sum of dilated 3x3 convolutions, features [B, C, h, w] -> class scores [B, classes, h, w]."""

    def __init__(self, in_channels: int, num_classes: int, dilations: tuple[int, ...] = (6, 12, 18, 24)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(in_channels, num_classes, 3, padding=d, dilation=d) for d in dilations)
        for branch in self.branches:  # DeepLab-v2's initialisation of the head
            nn.init.normal_(branch.weight, 0.0, 0.01)
            nn.init.zeros_(branch.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return sum(branch(features) for branch in self.branches)


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d by a FrozenBatchNorm2d holding its statistics and affine parameters."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen)
        else:
            freeze_batch_norm(child)
    return module


class DeepLabV2(nn.Module):
    """Images [B, 3, H, W] (ImageNet-normalised) -> class scores [B, classes, H/8, W/8].

    Args:
        num_classes: 19 for Cityscapes.
        backbone: "resnet101" (the paper), "resnet50", or "resnet14_narrow" (CPU tests).
        weights_path: an ImageNet checkpoint of the torchvision backbone (a state_dict file);
            None starts from random weights, which is not the paper's setting.
        frozen_batch_norm: BatchNorm with fixed ImageNet statistics and affine parameters (the
            source-only and adversarial stages); False trains them (self-distillation, with
            SyncBatchNorm across processes through the trainer's `sync_batchnorm`).
        padain_p: pAdaIN probability after every bottleneck convolution of the backbone, the
            stem excluded as in the official segmentation code; 0 inserts none (the baseline).
        padain_mode: "permute", or "source_to_target" for batches of [source; target] halves
            (the adversarial stage).
        padain_legacy_eps: None, or the statistics of the paper's experiments with this added to
            the content std (1e-4 in the official segmentation code; see PermutedAdaIN).
    """

    def __init__(
        self,
        num_classes: int = 19,
        backbone: str = "resnet101",
        weights_path: str | None = None,
        frozen_batch_norm: bool = True,
        padain_p: float = 0.01,
        padain_mode: str = "permute",
        padain_legacy_eps: float | None = None,
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone={backbone!r}; expected one of {sorted(BACKBONES)}")
        resnet = BACKBONES[backbone](replace_stride_with_dilation=[False, True, True])
        if weights_path is not None:
            load_imagenet_weights(resnet, weights_path)
        self.backbone = nn.Sequential(
            resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, resnet.layer1, resnet.layer2, resnet.layer3,
            resnet.layer4,
        )  # fmt: skip
        if frozen_batch_norm:
            freeze_batch_norm(self.backbone)
        self.num_padain = 0
        if padain_p > 0:
            self.num_padain = insert_permuted_adain(
                self.backbone, padain_p, legacy_eps=padain_legacy_eps, stem=False, mode=padain_mode
            )
        self.classifier = ASPPv2(2048, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(images))


class ClassDomainDiscriminator(nn.Module):
    """FADA's fine-grained discriminator: features [B, C, h, w] -> scores [B, 2K, h, w].

    Channels 0..K-1 score "source pixel of class k", channels K..2K-1 "target pixel of class k";
    trained against class soft labels (`FADA/core/models/discriminator.py`): two 3x3 convolutions with LeakyReLU(0.2),
    then two 3x3 heads of K channels each.
    """

    def __init__(self, in_channels: int = 2048, num_classes: int = 19, widths: tuple[int, int] = (256, 128)) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(widths[0], widths[1], 3, padding=1),
            nn.LeakyReLU(0.2),
        )
        self.source_head = nn.Conv2d(widths[1], num_classes, 3, padding=1)
        self.target_head = nn.Conv2d(widths[1], num_classes, 3, padding=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = self.body(features)
        return torch.cat([self.source_head(hidden), self.target_head(hidden)], dim=1)


def load_imagenet_weights(resnet: nn.Module, path: str | Path) -> None:
    """Load a torchvision ImageNet checkpoint into `resnet` (its classifier `fc.*` is not used)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no ImageNet checkpoint there; expected a torchvision ResNet state_dict such as "
            "resnet101-63fe2227.pth (from torchvision's model zoo, copied by hand on a machine without network)"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    backbone_keys = {key for key in resnet.state_dict() if not key.startswith("fc.")}
    missing = sorted(backbone_keys - state.keys())
    if missing:
        raise ValueError(f"{path}: not a checkpoint of this ResNet (missing {missing[:3]} ...)")
    resnet.load_state_dict({key: state[key] for key in backbone_keys}, strict=False)
