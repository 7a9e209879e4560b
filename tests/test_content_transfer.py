"""Mask-based content transfer: networks, losses, operations, mask IoU, CLI, resume, DDP."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.optim import Adam

from callbacks.mask_iou import MaskIoU
from lightning_modules import MaskContentTransfer
from lightning_modules.networks.disentangle import CodeCritic
from lightning_modules.networks.mask_transfer import MaskTransferLoss, MaskTransferNetworks
from synthetic import write_synthetic_celeba
from tests.helpers import (
    fit_run,
    logged_columns,
    million_parameters,
    predict_run,
    train_one_iteration,
)

SMOKE = "configs/content_transfer/smoke.yaml"
SMALL = {"image_size": 32, "depth": 4, "code_channels": 32, "separate_channels": 4}


# ---------------------------------------------------------------------- networks
def test_official_networks_have_the_official_code_layout_and_sizes():
    networks = MaskTransferNetworks()
    images = torch.randn(2, 3, 128, 128)
    common, separate = networks.common_encoder(images), networks.separate_encoder(images)
    assert common.shape == (2, 487, 2, 2) and separate.shape == (2, 25, 2, 2)
    output, mask = networks.decode_masked(common, separate, images)
    assert output.shape == (2, 3, 128, 128) and mask.shape == (2, 1, 128, 128)
    assert networks.decode_removed(common).shape == (2, 3, 128, 128)
    sizes = [networks.common_encoder, networks.separate_encoder, networks.removed_decoder, networks.masked_decoder]
    assert [million_parameters(m) for m in sizes] == [6.48, 0.74, 6.98, 6.98]
    assert million_parameters(CodeCritic(487 * 4)) == 1.0
    narrow = MaskTransferNetworks(depth=4, code_channels=32, separate_channels=4, base_channels=16)
    widths = [layer.out_channels for layer in narrow.separate_encoder if hasattr(layer, "out_channels")]
    assert widths == [16, 32, 64, 4]


def test_masked_decoder_composites_its_content_through_its_mask():
    networks = MaskTransferNetworks(depth=4, code_channels=32, separate_channels=4).eval()
    common, separate = torch.randn(2, 28, 2, 2), torch.randn(2, 4, 2, 2)
    raw = networks.masked_decoder(torch.cat([common, separate], dim=1))
    mask, content = torch.sigmoid(raw[:, :1]), torch.tanh(raw[:, 1:])
    background = torch.rand(2, 3, 32, 32)
    output, returned_mask = networks.decode_masked(common, separate, background)
    assert torch.allclose(output, mask * content + (1 - mask) * background)
    assert torch.equal(returned_mask, mask)
    # the mask and the content do not depend on the background
    assert torch.equal(networks.decode_masked(common, separate, -background)[1], mask)


def test_removal_pastes_the_rendering_where_the_binarised_mask_is_on():
    model = MaskContentTransfer(**SMALL, removal_threshold=0.5).eval()
    images = torch.rand(2, 3, 32, 32)
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:16] = 0.7
    mask[:, :, 20:] = 0.3
    rendering = -torch.ones(2, 3, 32, 32)
    model.segment = lambda x: mask
    model.content_removed = lambda x: rendering
    removed = model.remove(images)
    assert torch.equal(removed[:, :, 8:16], rendering[:, :, 8:16])  # m >= 0.5: replaced
    assert torch.equal(removed[:, :, 20:], images[:, :, 20:])  # m < 0.5: kept
    assert torch.equal(model.remove(images, threshold=0.2)[:, :, 20:], rendering[:, :, 20:])


# ---------------------------------------------------------------------- losses
class Recorder:
    """Stands in for MaskTransferNetworks with fixed outputs, so every loss term has a hand-computable value."""

    def common_encoder(self, x):
        return x.mean(dim=(1, 2, 3), keepdim=True).expand(-1, 6, 1, 1)

    def separate_encoder(self, x):
        return x.amax(dim=(1, 2, 3), keepdim=True).expand(-1, 2, 1, 1)

    def decode_removed(self, common, separate=None):
        return torch.full((len(common), 3, 2, 2), 0.25)

    def decode_masked(self, common, separate, background):
        mask = torch.full((len(common), 1, 2, 2), 0.5)
        content = torch.zeros(len(common), 3, 2, 2) if separate is None else torch.ones(len(common), 3, 2, 2)
        return mask * content + (1 - mask) * background, mask


def test_autoencoder_terms_by_hand():
    a, b = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    loss = MaskTransferLoss(2.0, 3.0, 0.5, 0.25, 1.0, 4.0, 0.1, "official")
    critic = lambda code: code.mean(dim=(1, 2, 3))[:, None]  # noqa: E731
    terms = loss.autoencoder(Recorder(), critic, a, b)
    # rec_b: 0.5 * 1 + 0.5 * 0.25 vs 1; rec_a: 0.25 vs 0; identity_b: b exactly; identity_a: 0.5 * 0 + 0.5 * a = a
    assert terms["rec_b"].item() == pytest.approx(0.375)
    assert terms["rec_a"].item() == pytest.approx(0.25)
    assert terms["identity_b"].item() == pytest.approx(0.0) and terms["identity_a"].item() == pytest.approx(0.0)
    # the transfer t = 0.5 * 1 + 0.5 * a = 0.5: E_c(t) = 0.5 vs E_c(a) = 0; E_s(t) = 0.5 vs E_s(b) = 1
    assert terms["cycle_common"].item() == pytest.approx(0.25)
    assert terms["cycle_separate"].item() == pytest.approx(0.25)
    logit_b, logit_a = torch.tensor([[1.0]]), torch.tensor([[0.0]])
    confusion = F.binary_cross_entropy_with_logits(logit_b, torch.zeros(1, 1)) + F.binary_cross_entropy_with_logits(
        logit_a, torch.zeros(1, 1)
    )
    assert terms["confusion"].item() == pytest.approx(confusion.item())
    expected = 2 * 0.375 + 3 * 0.25 + 1.0 * 0.25 + 4.0 * 0.25 + 0.1 * confusion.item()
    assert terms["loss"].item() == pytest.approx(expected, rel=1e-6)


def test_zero_weight_terms_are_computed_but_not_added_and_a_zero_confusion_weight_skips_the_critic():
    loss = MaskTransferLoss(7.0, 5.0, 0.7, 0.7, cycle_common_weight=0.0, cycle_separate_weight=0.0,
                            confusion_weight=0.0, confusion_target="official")  # fmt: skip
    terms = loss.autoencoder(Recorder(), None, torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2))
    assert set(terms) == {"loss", "rec_b", "rec_a", "identity_b", "identity_a", "cycle_common", "cycle_separate"}
    assert terms["loss"].item() == pytest.approx(7 * 0.375 + 5 * 0.25)  # the cycle terms (0.25 each) left out


def test_batchnorm_statistics_and_weights_after_one_iteration_are_the_official_call_orders():
    """mask_train.py (whose A is our B) calls the networks in a fixed order, every term included
    whatever its weight (the eyewear weights: beta1 = 0, yet E_c runs on the transfer), and
    re-encodes B before A for the critic. BatchNorm's running statistics follow the batches they
    see, in order; a direct computation in that order gives the same statistics and weights."""
    model = MaskContentTransfer(**SMALL)
    nets, critic = copy.deepcopy(model.autoencoder), copy.deepcopy(model.code_critic)
    generator = torch.Generator().manual_seed(0)  # the batches of train_one_iteration
    a, b = (torch.randn(4, 3, 32, 32, generator=generator) for _ in "ab")
    train_one_iteration(model)

    def bce(logits, label):
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))

    common_b, separate_b, common_a = nets.common_encoder(b), nets.separate_encoder(b), nets.common_encoder(a)
    rec_b = nets.decode_masked(common_b, separate_b, nets.decode_removed(common_b))[0]
    rec_a = nets.decode_removed(common_a)
    transfer = nets.decode_masked(common_a, separate_b, a)[0]
    identity_a = nets.decode_masked(common_a, None, a)[0]
    identity_b = nets.decode_masked(common_b, separate_b, b)[0]
    cycle_common, cycle_separate = nets.common_encoder(transfer), nets.separate_encoder(transfer)
    loss = (
        7 * F.l1_loss(rec_b, b) + 5 * F.l1_loss(rec_a, a) + 0 * F.mse_loss(cycle_common, common_a)
        + 0.001 * F.mse_loss(cycle_separate, separate_b) + 0.7 * F.l1_loss(identity_b, b)
        + 0.7 * F.l1_loss(identity_a, a) + 0.005 * (bce(critic(common_b), 0) + bce(critic(common_a), 0))
    )  # fmt: skip
    autoencoder_optimizer, critic_optimizer = (
        Adam(m.parameters(), lr=2e-4, betas=(0.5, 0.999)) for m in (nets, critic)
    )
    loss.backward()
    autoencoder_optimizer.step()
    critic_optimizer.zero_grad()
    common_b, common_a = nets.common_encoder(b).detach(), nets.common_encoder(a).detach()
    (bce(critic(common_b), 1) + bce(critic(common_a), 0)).backward()
    critic_optimizer.step()
    official = {f"autoencoder.{k}": v for k, v in nets.state_dict().items()}
    official |= {f"code_critic.{k}": v for k, v in critic.state_dict().items()}
    ours = model.state_dict()
    assert any("running_mean" in name for name in official)
    for name, value in official.items():
        assert torch.allclose(ours[name], value, atol=1e-6), name


# ---------------------------------------------------------------------- one iteration outside a Trainer
def test_an_iteration_moves_every_network_and_the_critic_in_its_own_step():
    before, after = train_one_iteration(MaskContentTransfer(**SMALL, cycle_common_weight=1.0))
    for prefix in ("autoencoder.common_encoder", "autoencoder.separate_encoder", "autoencoder.removed_decoder",
                   "autoencoder.masked_decoder", "code_critic"):  # fmt: skip
        assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith(prefix)), prefix


# ---------------------------------------------------------------------- mask IoU
def test_mask_iou_searches_the_threshold_over_the_whole_set():
    callback = MaskIoU(thresholds=[0.25, 0.75])
    callback._start(None, type("Module", (), {"device": torch.device("cpu")})())
    target = torch.zeros(2, 1, 2, 2)
    target[0, 0, 0] = 1  # two pixels
    masks = torch.tensor([[[[0.9, 0.5], [0.5, 0.1]]], [[[0.1, 0.1], [0.1, 0.1]]]])
    callback._update({"masks": masks, "target_masks": target})
    # t = 0.25: predicted {(0,0), (0,1), (1,0)} -> IoU 2 / 3; t = 0.5: same; t = 0.75: {(0,0)} -> 1 / 2
    intersection, union = callback.counts.T.tolist()
    assert intersection == [2, 2, 1] and union == [3, 3, 2]


# ---------------------------------------------------------------------- CLI on drawn faces
@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    return write_synthetic_celeba(tmp_path_factory.mktemp("faces"), count=80, seed=0)


def data_args(faces: Path) -> list[str]:
    return [f"--data.data_dir={faces}", f"--data.mask_dir={faces / 'masks' / 'Eyeglasses'}"]


@pytest.fixture(scope="module")
def smoke_run(faces, tmp_path_factory) -> Path:
    return fit_run(SMOKE, tmp_path_factory.mktemp("smoke"), *data_args(faces))


def test_smoke_fit_logs_losses_mask_iou_samples_and_predicts_every_operation(smoke_run, faces, tmp_path):
    root = smoke_run.parents[1]
    assert torch.load(smoke_run, weights_only=True)["iteration_progress"]["iteration"] == 6
    columns = logged_columns(root)
    assert {"train/rec_b", "train/identity_a", "train/confusion", "train/critic", "val/removal_ssim"} <= columns
    assert {"val/mask_iou", "val/mask_threshold", "val/removal_change_outside"} <= columns
    assert any(root.glob("csv/version_*/media/samples_removal_*.png"))
    predictions = predict_run(SMOKE, smoke_run, tmp_path, *data_args(faces))
    names = {p.stem for p in predictions.glob("*.png")}
    assert {f"00007_{kind}" for kind in ("transfer", "transfer_mask", "replacement", "removal", "b_mask")} <= names
    assert {"interpolation", "grid"} <= names


def test_predict_applies_a_second_model_after_the_first(smoke_run, faces, tmp_path):
    predictions = predict_run(SMOKE, smoke_run, tmp_path, *data_args(faces), f"--model.then_checkpoint={smoke_run}")
    assert (predictions / "00000_then.png").is_file()
