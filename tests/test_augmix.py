"""AugMix views and the Jensen-Shannon consistency loss."""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

from datamodules.augmix import OPERATIONS, augmix, rotate, translate_x, translate_y
from datamodules.cifar import CIFARDataModule
from lightning_modules.networks.losses import jensen_shannon_consistency
from synthetic import class_pattern_images, write_cifar
from tests.helpers import REPO, run_cli

PREPROCESS = v2.Compose([v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)])


def test_jsd_by_hand():
    logits = (torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]]))
    p = [F.softmax(x, dim=1)[0] for x in logits]
    mixture = sum(p) / 3
    expected = sum((q * (q / mixture).log()).sum() for q in p) / 3
    assert torch.allclose(jensen_shannon_consistency(logits), expected, atol=1e-6)
    same = torch.randn(4, 10)
    assert jensen_shannon_consistency((same, same, same)).abs() < 1e-6


def test_every_operation_keeps_size_and_mode():
    image = Image.fromarray(class_pattern_images(np.array([1]), 3)[0])
    rng = np.random.default_rng(0)
    for operation in OPERATIONS:
        out = operation(image, 3, rng)
        assert out.size == image.size and out.mode == "RGB", operation.__name__


def official_strength(severity: int, maximum: float, rng: np.random.Generator, integer: bool) -> float:
    """`corruption/augmentations.py` of onuriel/PermutedAdaIN: int_parameter or float_parameter of
    sample_level, negated when uniform() > 0.5."""
    level = rng.uniform(low=0.1, high=severity) * maximum / 10
    level = int(level) if integer else level
    return -level if rng.uniform() > 0.5 else level


def test_rotate_and_translate_take_whole_degrees_and_pixels_as_the_official_code():
    image = Image.fromarray(class_pattern_images(np.array([1]), 3)[0])
    fractional = 0
    for seed in range(6):
        degrees = official_strength(3, 30, np.random.default_rng(seed), integer=True)
        assert (
            rotate(image, 3, np.random.default_rng(seed)).tobytes() == image.rotate(degrees, Image.BILINEAR).tobytes()
        )
        float_degrees = official_strength(3, 30, np.random.default_rng(seed), integer=False)
        fractional += (
            image.rotate(float_degrees, Image.BILINEAR).tobytes() != image.rotate(degrees, Image.BILINEAR).tobytes()
        )
        pixels = official_strength(3, 32 / 3, np.random.default_rng(seed), integer=True)
        for operation, matrix in ((translate_x, (1, 0, pixels, 0, 1, 0)), (translate_y, (1, 0, 0, 0, 1, pixels))):
            expected = image.transform((32, 32), Image.AFFINE, matrix, resample=Image.BILINEAR)
            assert operation(image, 3, np.random.default_rng(seed)).tobytes() == expected.tobytes()
    assert fractional > 0  # float strengths (the earlier version) would give other images


def test_augmix_view_is_a_mixture_near_the_image():
    image = Image.fromarray(class_pattern_images(np.array([2]), 3)[0])
    rng = np.random.default_rng(0)
    clean = PREPROCESS(image)
    views = [augmix(image, PREPROCESS, rng) for _ in range(4)]
    assert all(view.shape == clean.shape for view in views)
    assert all(0 < (view - clean).abs().mean() < 0.5 for view in views)
    assert not torch.equal(views[0], views[1])


def test_augmix_datamodule_yields_three_views(tmp_path):
    write_cifar(tmp_path, "cifar10", train=8, test=4)
    data = CIFARDataModule(str(tmp_path), dataset="cifar10", batch_size=4, num_workers=0, augmix=True, normalize=False)
    data.setup("fit")
    (clean, first, second), labels = next(iter(data.train_dataloader()))
    assert clean.shape == first.shape == second.shape == (4, 3, 32, 32) and labels.shape == (4,)
    assert clean.min() >= -1 and clean.max() <= 1


def test_fit_with_augmix_and_cosine_schedule(tmp_path):
    data = write_cifar(tmp_path / "data", "cifar10", train=32, test=16)
    cli = run_cli(
        "fit", "--config", str(REPO / "configs/padain/smoke.yaml"), f"--data.data_dir={data}",
        f"--trainer.default_root_dir={tmp_path / 'run'}", "--data.augmix=true", "--data.normalize=false",
        "--model.schedule=cosine", "--trainer.max_epochs=1", "--model.network=tests.helpers.TinyClassifierNet",
    )  # fmt: skip
    assert "train/jsd" in cli.trainer.logged_metrics
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] < 0.05  # annealed
