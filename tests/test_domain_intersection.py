"""Domain intersection and difference: networks, losses, operations, data, CLI, resume, DDP."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from datamodules.digits import DigitDomains
from lightning_modules import DomainIntersectionDifference, MaskContentTransfer
from lightning_modules.networks.disentangle import CodeCritic, IntersectionAutoencoder, IntersectionDifferenceLoss
from tests.helpers import (
    fit_run,
    logged_columns,
    million_parameters,
    predict_run,
    train_one_iteration,
)

SMOKE = "configs/domain_intersection/smoke.yaml"
SMALL = {"image_size": 32, "depth": 4, "code_channels": 32, "separate_channels": 4}


# ---------------------------------------------------------------------- networks
def test_official_networks_have_the_official_code_layout_and_sizes():
    autoencoder = IntersectionAutoencoder()
    codes = autoencoder.encode(torch.randn(2, 3, 128, 128))
    assert [tuple(code.shape) for code in codes] == [(2, 462, 2, 2), (2, 25, 2, 2), (2, 25, 2, 2)]
    assert autoencoder.decode(*codes).shape == (2, 3, 128, 128)
    # parameter counts of the official networks (E_c, E_A, G, D)
    assert million_parameters(autoencoder.common_encoder) == 6.29
    assert million_parameters(autoencoder.separate_encoders["a"]) == 2.99
    assert million_parameters(autoencoder.decoder) == 6.98
    assert million_parameters(CodeCritic(462 * 2 * 2)) == 0.95
    narrow = IntersectionAutoencoder(depth=4, code_channels=32, separate_channels=4, base_channels=16)
    assert [layer.out_channels for layer in narrow.common_encoder if hasattr(layer, "out_channels")] == [16, 32, 28, 24]
    assert narrow.decode(*narrow.encode(torch.randn(2, 3, 32, 32))).shape == (2, 3, 32, 32)


def test_decode_fills_empty_slots_with_zeros_in_common_a_b_order():
    autoencoder = IntersectionAutoencoder(depth=4, code_channels=32, separate_channels=4).eval()
    common, part_b = torch.randn(1, 24, 2, 2), torch.randn(1, 4, 2, 2)
    expected = autoencoder.decoder(torch.cat([common, torch.zeros(1, 4, 2, 2), part_b], dim=1))
    assert torch.equal(autoencoder.decode(common, None, part_b), expected)
    # the flat official concatenation [common | A | B] reshaped to channels is the same code
    flat = torch.cat([common.flatten(1), torch.zeros(1, 16), part_b.flatten(1)], dim=1)
    assert torch.equal(flat.view(1, 32, 2, 2), torch.cat([common, torch.zeros(1, 4, 2, 2), part_b], dim=1))


def test_by_default_the_common_encoder_misses_its_layer_two_norm_as_the_official_code():
    def norms(autoencoder):
        layers = [type(layer).__name__ for layer in autoencoder.common_encoder if type(layer).__name__ != "LeakyReLU"]
        return layers[1::2]

    assert norms(IntersectionAutoencoder(depth=4)) == ["InstanceNorm2d", "Identity", "InstanceNorm2d", "InstanceNorm2d"]
    assert norms(IntersectionAutoencoder(depth=4, common_layer2_norm=True)) == ["InstanceNorm2d"] * 4


def test_spectral_norm_normalises_transposed_convolutions_over_their_input_channels():
    """The official SpectralNorm views every weight as [its first dimension, -1]: for a transposed
    convolution ([in, out, k, k]) the largest singular value of the [in, out k k] matrix is 1.
    torch's default for transposed convolutions (dim=1, the output channels) leaves it at 1.01,
    1.23 and 0.81 on these layers (measured; 0.81 to 1.01 on the official 128 px decoder)."""
    torch.manual_seed(0)  # the power iteration's start and its speed depend on the initial weights
    autoencoder = IntersectionAutoencoder(depth=4, code_channels=32, separate_channels=4)
    with torch.no_grad():
        for _ in range(200):  # one power iteration per training-mode forward
            autoencoder.decode(torch.randn(2, 24, 2, 2), torch.randn(2, 4, 2, 2), torch.randn(2, 4, 2, 2))
    transposed = [layer for layer in autoencoder.decoder if isinstance(layer, torch.nn.ConvTranspose2d)]
    sigmas = [torch.linalg.matrix_norm(layer.weight.flatten(1), ord=2).item() for layer in transposed[:-1]]
    assert sigmas == pytest.approx([1.0] * len(sigmas), abs=0.01)


# ---------------------------------------------------------------------- losses
class FixedCritic(torch.nn.Module):
    """Logit = mean of the code, so the confusion term has a hand-computable value."""

    def forward(self, common: torch.Tensor) -> torch.Tensor:
        return common.mean(dim=(1, 2, 3))[:, None]


def bce(logit: float, target: float) -> float:
    p = torch.sigmoid(torch.tensor(logit))
    return float(-(target * torch.log(p) + (1 - target) * torch.log(1 - p)))


@pytest.mark.parametrize("target, expected", [("flip", (0.0, 1.0)), ("half", (0.5, 0.5)), ("official", (0.0, 0.0))])
def test_autoencoder_loss_terms_by_hand(target, expected):
    from lightning_modules.networks.disentangle import Codes

    images = {"a": torch.zeros(1, 3, 2, 2), "b": torch.ones(1, 3, 2, 2)}
    reconstructions = {"a": torch.full((1, 3, 2, 2), 0.5), "b": torch.full((1, 3, 2, 2), 0.75)}
    codes = {
        "a": Codes(torch.full((1, 2, 1, 1), 2.0), torch.zeros(1, 1, 1, 1), torch.tensor([[[[-0.3]]]])),
        "b": Codes(torch.full((1, 2, 1, 1), -1.0), torch.tensor([[[[0.2]]]]), torch.zeros(1, 1, 1, 1)),
    }
    loss = IntersectionDifferenceLoss(rec_weight=2.0, zero_weight=3.0, confusion_weight=0.5, confusion_target=target)
    terms = loss.autoencoder(images, reconstructions, codes, FixedCritic())
    confusion = bce(2.0, expected[0]) + bce(-1.0, expected[1])
    assert terms["rec"].item() == pytest.approx(0.5 + 0.25)
    assert terms["zero"].item() == pytest.approx(0.3 + 0.2)
    assert terms["confusion"].item() == pytest.approx(confusion, rel=1e-5)
    assert terms["loss"].item() == pytest.approx(2 * 0.75 + 3 * 0.5 + 0.5 * confusion, rel=1e-5)
    critic = IntersectionDifferenceLoss.critic(torch.tensor([[2.0]]), torch.tensor([[-1.0]]))
    assert critic.item() == pytest.approx(bce(2.0, 1.0) + bce(-1.0, 0.0), rel=1e-5)


def test_zero_confusion_weight_drops_the_term():
    loss = IntersectionDifferenceLoss(
        rec_weight=1.0, zero_weight=1.0, confusion_weight=0.0, confusion_target="official"
    )
    model = DomainIntersectionDifference(**SMALL)
    images = {d: torch.randn(2, 3, 32, 32) for d in "ab"}
    codes = {d: model.autoencoder.encode(x) for d, x in images.items()}
    assert "confusion" not in loss.autoencoder(images, images, codes, model.code_critic)


# ---------------------------------------------------------------------- one iteration outside a Trainer
@pytest.mark.parametrize("critic_clip_norm", [None, 5.0])
@pytest.mark.parametrize("method", [DomainIntersectionDifference, MaskContentTransfer])
def test_the_autoencoder_is_clipped_and_the_critic_only_when_asked(method, critic_clip_norm):
    """The official code of both two-domain methods clips the autoencoder's gradients at norm 5;
    its clip of the critic's is given a consumed parameter generator and clips nothing, which is
    the default here."""
    model = method(**SMALL, critic_clip_norm=critic_clip_norm)
    clip_norms, step = [], model.update

    def recorded_step(optimizer, loss, clip_norm):
        clip_norms.append(clip_norm)
        step(optimizer, loss, clip_norm)

    model.update = recorded_step
    train_one_iteration(model)
    assert clip_norms == [5.0, critic_clip_norm]  # [autoencoder, critic]


def test_an_iteration_moves_every_network_and_the_critic_only_in_its_own_step():
    before, after = train_one_iteration(DomainIntersectionDifference(**SMALL))
    for prefix in ("autoencoder.common_encoder", "autoencoder.separate_encoders.a", "autoencoder.separate_encoders.b",
                   "autoencoder.decoder", "code_critic"):  # fmt: skip
        assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith(prefix)), prefix
    # without the critic step (weight 0) the critic never moves: the confusion term does not train it
    before, after = train_one_iteration(DomainIntersectionDifference(**SMALL, confusion_weight=0.0))
    assert all(torch.equal(before[n], after[n]) for n in before if n.startswith("code_critic"))


# ---------------------------------------------------------------------- operations
def test_operations_are_the_spec_recombinations():
    model = DomainIntersectionDifference(**SMALL).eval()
    ae = model.autoencoder
    a, b = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    ca, cb = ae.encode(a), ae.encode(b)
    with torch.no_grad():
        assert torch.equal(model.translate_a_to_b(a, b), ae.decode(ca.common, None, cb.b))
        assert torch.equal(model.translate_b_to_a(b, a), ae.decode(cb.common, ca.a, None))
        assert torch.equal(model.intersection(a), ae.decode(ca.common))
        assert torch.equal(model.union(a, a, b), ae.decode(ca.common, ca.a, cb.b))
        assert torch.equal(model.separate_part(b, "b"), ae.decode(None, None, cb.b))


def test_interpolation_grid_corners_are_the_endpoint_codes():
    model = DomainIntersectionDifference(**SMALL).eval()
    ae = model.autoencoder
    a, b = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    ca, cb = ae.encode(a), ae.encode(b)
    with torch.no_grad():
        grid = model.interpolation_grid("common", a, b, steps=3)
        assert grid.shape == (9, 3, 32, 32)
        corner = ae.decode(ca.common[:1], ca.a[1:], cb.b[1:])  # last row (A-part a_1), last column (B-part b_1)
        assert torch.allclose(grid[8:], corner, atol=1e-6)
        grid = model.interpolation_grid("b", a, b, steps=3)
        top_right = ae.decode(ca.common[:1], ca.a[1:], cb.b[:1])  # first row (common a_0), last column (A-part a_1)
        assert torch.allclose(grid[2:3], top_right, atol=1e-6)


# ---------------------------------------------------------------------- data
def test_digit_domains_batches_and_labelled_evaluation_pairs():
    data = DigitDomains("handwritten", "textured", batch_size=5, num_eval=7, eval_batch_size=4)
    batch = data.training_batch(torch.Generator().manual_seed(0))
    assert batch["a"].shape == batch["b"].shape == (5, 3, 32, 32)
    assert torch.equal(batch["a"][:, 0], batch["a"][:, 1])  # grayscale replicated to RGB
    again = data.training_batch(torch.Generator().manual_seed(0))
    assert torch.equal(batch["b"], again["b"])
    pairs = list(data.val_dataloader())
    assert [len(p["index"]) for p in pairs] == [4, 3] and pairs[0]["a_labels"].dtype == torch.int64


def test_fewer_images_than_a_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than batch_size"):
        DigitDomains("handwritten", "textured", batch_size=100_000)


# ---------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    return fit_run(SMOKE, tmp_path_factory.mktemp("smoke"))


def test_smoke_fit_logs_losses_samples_and_predicts_every_operation(smoke_run, tmp_path):
    root = smoke_run.parents[1]
    assert torch.load(smoke_run, weights_only=True)["iteration_progress"]["iteration"] == 6
    assert {"train/rec", "train/zero", "train/confusion", "train/critic", "val/rec_a"} <= logged_columns(root)
    assert any(root.glob("csv/version_*/media/samples_translations_*.png"))
    predictions = predict_run(SMOKE, smoke_run, tmp_path)
    names = {p.stem for p in predictions.glob("*.png")}
    kinds = ("a_to_b", "b_to_a", "a_intersection", "b_union", "a_part", "b_part")
    assert {f"00031_{kind}" for kind in kinds} <= names
    assert {"interpolation_fixed_common", "interpolation_fixed_a", "interpolation_fixed_b", "grid"} <= names


def test_membership_accuracy_labels_translations_by_their_target_domain():
    model = DomainIntersectionDifference(**SMALL).eval()
    batch = {"a": torch.randn(3, 3, 32, 32), "b": torch.randn(3, 3, 32, 32), "index": torch.arange(3)}
    model.log_dict = lambda *args, **kwargs: None
    with torch.no_grad():
        outputs = model.validation_step(batch, 0)
    assert outputs["translations"]["a_to_b"].shape == (3, 1, 3, 32, 32)  # one guide per image
    assert outputs["labels"]["a_to_b"].tolist() == [1, 1, 1] and outputs["labels"]["b_to_a"].tolist() == [0, 0, 0]
    assert F.l1_loss(outputs["translations"]["b_to_a"], model.translate_b_to_a(batch["b"], batch["a"].roll(1, 0))) == 0
