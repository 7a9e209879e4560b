"""Segmentation with Permuted AdaIN: DeepLab-v2 shapes, the ASPP sum, pAdaIN insertion, frozen
BatchNorm, the optimizer's groups and poly schedule, ImageNet weights, the module's steps."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import resnet50
from torchvision.ops import FrozenBatchNorm2d

from lightning_modules import SemanticSegmenter
from lightning_modules.networks.deeplab import ASPPv2, DeepLabV2
from lightning_modules.networks.padain import PermutedAdaIN


def test_deeplab_scores_at_output_stride_eight():
    network = DeepLabV2(backbone="resnet50", padain_p=0.0).eval()
    with torch.no_grad():
        assert network(torch.randn(2, 3, 64, 96)).shape == (2, 19, 8, 12)


def test_aspp_sums_four_dilated_three_by_three_branches():
    head = ASPPv2(8, 5)
    assert [(b.kernel_size, b.dilation, b.padding) for b in head.branches] == [
        ((3, 3), (d, d), (d, d)) for d in (6, 12, 18, 24)
    ]
    features = torch.randn(1, 8, 30, 30)
    expected = sum(nn.functional.conv2d(features, b.weight, b.bias, padding=b.padding, dilation=b.dilation)
                   for b in head.branches)  # fmt: skip
    assert torch.allclose(head(features), expected, atol=1e-6)


def test_padain_follows_every_bottleneck_convolution_but_not_the_stem():
    network = DeepLabV2(backbone="resnet101", padain_p=0.01)
    assert network.num_padain == 99  # (3 + 4 + 23 + 3) bottlenecks x 3 convolutions
    stem = network.backbone[0]
    assert not hasattr(stem, "padain")
    layers = [m for m in network.modules() if isinstance(m, PermutedAdaIN)]
    assert len(layers) == 99 and all(layer.p == 0.01 for layer in layers)
    baseline = DeepLabV2(backbone="resnet101", padain_p=0.0)
    assert baseline.num_padain == 0 and network.state_dict().keys() == baseline.state_dict().keys()


def test_frozen_batch_norm_keeps_statistics_and_has_nothing_to_train():
    network = DeepLabV2(backbone="resnet50", padain_p=0.0)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in network.modules())
    frozen = [m for m in network.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert frozen and not any(p.requires_grad for m in frozen for p in m.parameters())
    trained = DeepLabV2(backbone="resnet50", padain_p=0.0, frozen_batch_norm=False)
    assert any(isinstance(m, nn.BatchNorm2d) for m in trained.modules())


def test_imagenet_weights_are_loaded_from_a_torchvision_checkpoint(tmp_path):
    reference = resnet50()
    path = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), path)
    network = DeepLabV2(backbone="resnet50", weights_path=str(path), padain_p=0.0)
    assert torch.equal(network.backbone[4][0].conv1.weight, reference.layer1[0].conv1.weight)
    assert torch.equal(network.backbone[1].running_mean, reference.bn1.running_mean)
    with pytest.raises(FileNotFoundError, match="missing.pth: no ImageNet checkpoint there"):
        DeepLabV2(backbone="resnet50", weights_path=str(tmp_path / "missing.pth"))
    torch.save({"conv1.weight": reference.conv1.weight}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="partial.pth: not a checkpoint of this ResNet"):
        DeepLabV2(backbone="resnet50", weights_path=str(tmp_path / "partial.pth"))


def test_without_imagenet_weights_the_user_is_told():
    with pytest.warns(UserWarning, match="backbone starts from random weights"):
        SemanticSegmenter(backbone="resnet50")


def test_head_learns_ten_times_faster_on_a_poly_schedule():
    model = SemanticSegmenter(backbone="resnet50", lr=0.01, poly_iterations=100, padain_p=0.0)
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert [group["lr"] for group in optimizer.param_groups] == [0.01, 0.1]
    for _ in range(50):
        optimizer.step()
        scheduler.step()
    factor = 0.5**0.9
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * factor)
    assert optimizer.param_groups[1]["lr"] == pytest.approx(0.1 * factor)


def test_validation_predicts_at_the_full_label_size():
    model = SemanticSegmenter(backbone="resnet50", padain_p=0.0).eval()
    model.log = lambda *args, **kwargs: None
    batch = {"images": torch.randn(1, 3, 32, 64), "labels": torch.randint(0, 19, (1, 64, 128))}
    with torch.no_grad():
        outputs = model.validation_step(batch, 0)
    assert outputs["preds"].shape == (1, 64, 128) and torch.equal(outputs["target"], batch["labels"])
