"""Segmentation with Permuted AdaIN: DeepLab-v2 shapes, the ASPP sum, pAdaIN insertion, frozen
BatchNorm, the optimizer's groups and poly schedule, ImageNet weights, the module's steps."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.models import resnet50
from torchvision.ops import FrozenBatchNorm2d

from lightning_modules import SemanticSegmenter
from lightning_modules.networks.deeplab import ASPPv2, ClassDomainDiscriminator, DeepLabV2
from lightning_modules.networks.padain import PermutedAdaIN
from lightning_modules.segmenter import soft_cross_entropy, soft_labels
from synthetic import write_segmentation_shift
from tests.helpers import fit_run, logged_columns, predict_run


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


def test_fada_soft_labels_are_clipped_detached_class_probabilities():
    scores = torch.randn(2, 5, 3, 4, requires_grad=True)
    labels = soft_labels(scores, maximum=0.9)
    assert not labels.requires_grad and labels.max() <= 0.9
    assert torch.allclose(labels, torch.softmax(scores, dim=1).clamp(max=0.9))
    one_hot = nn.functional.one_hot(torch.randint(0, 5, (2, 3, 4)), 5).permute(0, 3, 1, 2).float()
    expected = nn.functional.cross_entropy(scores, one_hot.argmax(dim=1))
    assert torch.allclose(soft_cross_entropy(scores, one_hot), expected)  # one-hot targets: plain CE
    halves = torch.full_like(one_hot, 0.5)
    assert torch.allclose(soft_cross_entropy(scores, halves), -0.5 * scores.log_softmax(dim=1).sum(dim=1).mean())


def test_fada_discriminator_scores_every_class_in_either_domain():
    discriminator = ClassDomainDiscriminator(in_channels=64, num_classes=19)
    assert discriminator(torch.randn(2, 64, 5, 7)).shape == (2, 38, 5, 7)
    with pytest.raises(ValueError, match="set adaptation='fada'"):
        SemanticSegmenter(backbone="resnet50", padain_mode="source_to_target")


def official_soft_cross_entropy(prediction: torch.Tensor, soft_label: torch.Tensor) -> torch.Tensor:
    """`soft_label_cross_entropy` of the official `train_adv.py`."""
    return torch.mean(torch.sum(-soft_label.float() * F.log_softmax(prediction, dim=1), dim=1))


def official_adversarial_iteration(network, discriminator, batch, optimizers, weight: float) -> None:
    """One iteration of `train_adv.py` (onuriel/PermutedAdaIN, FADA) written out: a joint pass of which
    only the source half is kept, a second pass over the target at its own size for the adversarial
    term, the target soft labels and the discriminator's target term."""
    network_optimizer, discriminator_optimizer = optimizers
    src_input, src_label, tgt_input = batch["images"], batch["labels"], batch["target_images"]
    src_size, tgt_size = src_input.shape[-2:], tgt_input.shape[-2:]

    def up(scores, size):
        return F.interpolate(scores, size=size, mode="bilinear", align_corners=True)

    network_optimizer.zero_grad()
    inp = torch.cat([src_input, F.interpolate(tgt_input.detach(), src_size)])
    src_fea = network.backbone(inp)[: len(src_input)]
    src_pred = up(network.classifier(src_fea), src_size).div(1.8)
    F.cross_entropy(src_pred, src_label, ignore_index=255).backward()
    src_soft_label = F.softmax(src_pred, dim=1).detach()
    src_soft_label[src_soft_label > 0.9] = 0.9
    tgt_fea = network.backbone(tgt_input)  # one target image: the FADA layer returns it unchanged
    tgt_pred = up(network.classifier(tgt_fea), tgt_size).div(1.8)
    tgt_soft_label = F.softmax(tgt_pred, dim=1).detach()
    tgt_soft_label[tgt_soft_label > 0.9] = 0.9
    tgt_d_pred = up(discriminator(tgt_fea), tgt_size)
    nothing = torch.zeros_like(tgt_soft_label)
    (weight * official_soft_cross_entropy(tgt_d_pred, torch.cat((tgt_soft_label, nothing), dim=1))).backward()
    network_optimizer.step()
    discriminator_optimizer.zero_grad()
    src_d_pred = up(discriminator(src_fea.detach()), src_size)
    source_nothing = torch.zeros_like(src_soft_label)
    (0.5 * official_soft_cross_entropy(src_d_pred, torch.cat((src_soft_label, source_nothing), dim=1))).backward()
    tgt_d_pred = up(discriminator(tgt_fea.detach()), tgt_size)
    (0.5 * official_soft_cross_entropy(tgt_d_pred, torch.cat((nothing, tgt_soft_label), dim=1))).backward()
    discriminator_optimizer.step()


def test_adversarial_iteration_is_the_official_one():
    """Against `train_adv.py` written out, on 1 source image (48x64) and 1 target image at its own,
    other size (40x56), the official per-GPU batch; pAdaIN fires at every layer (p = 1). Both
    sides step their discriminator with the same plain SGD, so that tiny float differences in its
    gradients are not magnified by Adam's normalisation."""
    torch.manual_seed(0)
    model = SemanticSegmenter(
        backbone="resnet14_narrow", adaptation="fada", padain_mode="source_to_target", padain_p=1.0,
        lr=0.01, adversarial_weight=1.0,
    )  # fmt: skip
    network, discriminator = copy.deepcopy(model.network), copy.deepcopy(model.discriminator)
    initial = copy.deepcopy(model.network.classifier.state_dict())
    batch = {
        "images": torch.randn(1, 3, 48, 64), "labels": torch.randint(0, 19, (1, 48, 64)),
        "target_images": torch.randn(1, 3, 40, 56) * 2 + 0.5,
    }  # fmt: skip
    ours = (model.configure_optimizers()[0]["optimizer"], torch.optim.SGD(model.discriminator.parameters(), lr=0.1))
    model.optimizers = lambda: ours
    model.manual_backward = lambda loss: loss.backward()
    model.lr_schedulers = lambda: []
    model.log = model.log_dict = lambda *args, **kwargs: None
    model.train().training_step(batch, 0)
    network_optimizer = torch.optim.SGD(  # the module's groups: 10x the LR on the head
        [{"params": [p for p in network.backbone.parameters() if p.requires_grad], "lr": 0.01},
         {"params": network.classifier.parameters(), "lr": 0.1}], lr=0.01, momentum=0.9, weight_decay=5e-4,
    )  # fmt: skip
    official_adversarial_iteration(
        network.train(), discriminator.train(), batch,
        (network_optimizer, torch.optim.SGD(discriminator.parameters(), lr=0.1)), weight=1.0,
    )  # fmt: skip
    for (name, expected), actual in zip(network.state_dict().items(), model.network.state_dict().values()):
        assert torch.allclose(actual, expected, atol=1e-6), name
    for (name, expected), actual in zip(discriminator.state_dict().items(), model.discriminator.state_dict().values()):
        assert torch.allclose(actual, expected, atol=1e-6), name
    assert not torch.equal(initial["branches.0.weight"], model.network.classifier.branches[0].weight)  # it stepped


# ---------------------------------------------------------------------- CLI on generated street scenes
SMOKE = "configs/padain_segmentation/smoke.yaml"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> list[str]:
    gtav, cityscapes = write_segmentation_shift(tmp_path_factory.mktemp("scenes"), count_source=12, count_target=6)
    return [f"--data.source_root={gtav}", f"--data.target_root={cityscapes}"]


@pytest.fixture(scope="module")
def smoke_run(scenes, tmp_path_factory) -> Path:
    return fit_run(SMOKE, tmp_path_factory.mktemp("smoke"), *scenes)


def test_smoke_fit_logs_miou_and_predicts_label_maps(smoke_run, scenes, tmp_path):
    assert torch.load(smoke_run, weights_only=True)["global_step"] == 4
    assert {"train/loss", "val/miou", "val/iou/road"} <= logged_columns(smoke_run.parents[1])
    predictions = predict_run(SMOKE, smoke_run, tmp_path, *scenes)
    raw = np.asarray(Image.open(predictions / "train_ids" / "aachen_000000_000019.png"))
    colour = np.asarray(Image.open(predictions / "color" / "aachen_000000_000019.png"))
    assert raw.shape == (32, 64) and raw.max() < 19 and colour.shape == (32, 64, 3)  # the label's own size


def validation_miou(root: Path) -> float:
    rows = csv.DictReader(next(root.glob("csv/version_*/metrics.csv")).read_text().splitlines())
    return next(float(row["val/miou"]) for row in rows if row.get("val/miou"))


@pytest.mark.slow  # a predict and a second fit of ResNet-50
def test_self_distillation_trains_on_pseudo_labels_from_an_earlier_stage(smoke_run, scenes, tmp_path):
    pseudo_labels = predict_run(SMOKE, smoke_run, tmp_path / "labels", *scenes, "--data.eval_split=train")
    first = SemanticSegmenter(backbone="resnet50", frozen_batch_norm=False, init_checkpoint=str(smoke_run))
    first.setup("fit")
    stage_one = torch.load(smoke_run, weights_only=True)["state_dict"]
    assert torch.equal(first.network.backbone[0].weight, stage_one["network.backbone.0.weight"])
    assert torch.equal(first.network.backbone[1].running_var, stage_one["network.backbone.1.running_var"])
    last = fit_run(
        SMOKE, tmp_path / "distill", *scenes, "--data.stage=self_distill", "--data.target_shape=[32, 64]",
        f"--data.pseudo_label_dir={pseudo_labels / 'train_ids'}", "--model.frozen_batch_norm=false",
        f"--model.init_checkpoint={smoke_run}",
    )  # fmt: skip
    state = torch.load(last, weights_only=True)["state_dict"]
    assert state["network.backbone.1.num_batches_tracked"] == 4  # BatchNorm trains in this stage
    with pytest.raises(FileNotFoundError, match="none.ckpt: no checkpoint there"):
        SemanticSegmenter(backbone="resnet50", init_checkpoint=str(tmp_path / "none.ckpt")).setup("fit")


# the adversarial stage: 4 iterations of 1 source + 1 target image, from the source-only run
FADA = [
    "--data.stage=adversarial", "--data.target_shape=[32, 64]", "--model.adaptation=fada",
    "--model.padain_mode=source_to_target", "--model.padain_p=0.5", "--trainer.max_steps=8",
]  # fmt: skip


@pytest.mark.slow  # three fits of ResNet-50
def test_adversarial_stage_trains_a_discriminator_and_resumes_exactly(smoke_run, scenes, tmp_path):
    stage_one = f"--model.init_checkpoint={smoke_run}"
    last = fit_run(SMOKE, tmp_path / "a", *scenes, *FADA, stage_one, "--trainer.callbacks.save_top_k=-1")
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["global_step"] == 8  # two optimizer steps per iteration: network, discriminator
    assert checkpoint["lr_schedulers"][1]["last_epoch"] == 4  # both poly schedules count iterations
    assert {"train/loss", "train/adversarial", "train/discriminator", "val/miou"} <= logged_columns(tmp_path / "a")
    middle = tmp_path / "a" / "checkpoints" / "epoch=0-step=4.ckpt"
    resumed = fit_run(SMOKE, tmp_path / "b", *scenes, *FADA, stage_one, f"--ckpt_path={middle}")
    expected, actual = checkpoint["state_dict"], torch.load(resumed, weights_only=True)["state_dict"]
    assert any(key.startswith("discriminator.") for key in expected)
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key
