"""Permuted AdaIN: the layer's maths, its randomness, and where it goes in a network."""

import copy
import math

import numpy as np
import pytest
import torch
from torchvision.models import resnet18, resnet50

from lightning_modules.networks.padain import PermutedAdaIN, insert_permuted_adain, permuted_adain


def hand_adain(x: np.ndarray, permutation: list[int], eps: float) -> np.ndarray:
    flat = x.reshape(*x.shape[:2], -1).astype(np.float64)
    mean = flat.mean(axis=2)[..., None, None]
    std = np.sqrt(flat.var(axis=2, ddof=1) + eps)[..., None, None]
    return std[permutation] * (x - mean) / (std + eps) + mean[permutation]


def test_layer_maths_against_a_hand_computation():
    x = torch.randn(4, 3, 5, 6) * 3 + 1
    permutation = [2, 0, 3, 1]
    y = permuted_adain(x, torch.tensor(permutation), eps=1e-5)
    assert np.allclose(y.numpy(), hand_adain(x.numpy(), permutation, 1e-5), atol=1e-5)
    # each output carries its partner's statistics
    assert torch.allclose(y[0].mean(dim=(1, 2)), x[2].mean(dim=(1, 2)), atol=1e-5)
    assert torch.allclose(y[0].std(dim=(1, 2)), x[2].std(dim=(1, 2)), rtol=1e-4)


def test_source_to_target_mode_gives_the_source_half_the_target_statistics():
    x = torch.randn(6, 3, 5, 6) * 2 + 1
    layer = PermutedAdaIN(p=1.0, mode="source_to_target").train()
    y = layer(x)
    assert np.allclose(y[:3].numpy(), hand_adain(x.numpy(), [3, 4, 5, 3, 4, 5], 1e-5)[:3], atol=1e-5)
    assert torch.equal(y[3:], x[3:])  # the target half passes unchanged
    with pytest.raises(ValueError, match="a batch of 5 samples"):
        layer(x[:5])
    with pytest.raises(ValueError, match="mode='swap'"):
        PermutedAdaIN(mode="swap")


def test_identity_permutation_returns_the_input():
    x = torch.randn(3, 4, 6, 6)
    assert torch.allclose(permuted_adain(x, torch.arange(3)), x, atol=1e-4)


def test_identity_in_eval_mode_and_at_p_zero():
    x = torch.randn(8, 3, 4, 4)
    assert PermutedAdaIN(p=1.0).eval()(x) is x
    assert PermutedAdaIN(p=0.0).train()(x) is x
    assert PermutedAdaIN(p=1.0).train()(torch.randn(8, 3, 1, 1)).shape == (8, 3, 1, 1)


def test_fires_with_probability_p():
    torch.manual_seed(0)
    layer, x, calls = PermutedAdaIN(p=0.3).train(), torch.randn(6, 2, 4, 4), 2000
    fired = sum(not torch.equal(layer(x), x) for _ in range(calls))
    # a permutation can be the identity (1/720) and leave x almost unchanged, never exactly
    assert abs(fired / calls - 0.3) < 4 * math.sqrt(0.3 * 0.7 / calls)


def test_seedable():
    x = torch.randn(6, 2, 4, 4)
    outputs = []
    for _ in range(2):
        torch.manual_seed(7)
        layer = PermutedAdaIN(p=0.5).train()
        outputs.append(torch.stack([layer(x) for _ in range(20)]))
    assert torch.equal(*outputs)


def test_target_statistics_carry_no_gradient():
    x = torch.randn(3, 2, 5, 5, requires_grad=True)
    y = permuted_adain(x, torch.tensor([1, 2, 0]))
    y[0].sum().backward()  # y_0 uses x_0's content and x_1's (detached) statistics
    assert x.grad[1].abs().sum() == 0 and x.grad[0].abs().sum() > 0


def test_statistics_are_fp32_under_autocast():
    x = torch.randn(4, 3, 8, 8).to(torch.bfloat16)
    permutation = torch.tensor([3, 2, 1, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = permuted_adain(x, permutation)
    assert y.dtype == torch.bfloat16
    expected = permuted_adain(x.float(), permutation)
    assert torch.allclose(y.float(), expected, atol=0.05)


def test_legacy_statistics_are_close_to_the_current_ones():
    x = torch.randn(4, 3, 8, 8)
    permutation = torch.tensor([1, 0, 3, 2])
    current, legacy = permuted_adain(x, permutation), permuted_adain(x, permutation, legacy=True)
    assert not torch.equal(current, legacy) and torch.allclose(current, legacy, atol=1e-4)


@pytest.mark.parametrize(("build", "points"), [(resnet18, 17), (resnet50, 49)])
def test_insertion_points_and_checkpoints_with_or_without_the_layer(build, points):
    plain, model = build(num_classes=10), build(num_classes=10)
    assert insert_permuted_adain(model, p=1.0) == points
    assert model.state_dict().keys() == plain.state_dict().keys()
    model.load_state_dict(plain.state_dict())  # strict, both ways
    plain.load_state_dict(model.state_dict())
    assert not any(hasattr(m, "padain") for name, m in model.named_modules() if "downsample" in name)

    x = torch.randn(4, 3, 32, 32)
    model.eval()
    assert torch.allclose(model(x), plain.eval()(x), atol=1e-5)  # identity in eval
    model.train()
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_stem_can_be_left_out_and_copies_work():
    model = resnet18()
    assert insert_permuted_adain(model, stem=False) == 16
    assert not hasattr(model.conv1, "padain")
    model.train()(torch.randn(2, 3, 32, 32))
    copy.deepcopy(model)  # after use: the layer's generator is not copied
    with pytest.raises(ValueError, match="already has a pAdaIN"):
        insert_permuted_adain(model)
