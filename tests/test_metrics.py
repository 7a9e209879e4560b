"""FID, KID, SIFID and mIoU against independent computations, in one process and under DDP."""

import numpy as np
import pytest
import scipy.linalg
import torch
from lightning.pytorch import Trainer
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from callbacks.fid_kid import FIDKID, PrecomputedFeatures
from callbacks.inception import INCEPTION_FILE, InceptionPool
from callbacks.miou import MeanIoU
from callbacks.sifid import frechet_distance, gaussian_of_positions, sifid
from tests.helpers import (
    TinyFeatures,
    TinySpatialFeatures,
    ToyGenerator,
    ToyImages,
    ToySegmentation,
    ToySegmenter,
)


def scipy_frechet(x: np.ndarray, y: np.ndarray) -> float:
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def fid_of(real: torch.Tensor, fake: torch.Tensor) -> float:
    metric = FrechetInceptionDistance(PrecomputedFeatures(real.shape[1]))
    metric.set_dtype(torch.float64)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return metric.compute().item()


def test_fid_of_identical_features_is_zero():
    features = torch.randn(200, 16, dtype=torch.float64)
    scale = torch.cov(features.t()).trace().item()
    assert abs(fid_of(features, features)) < 1e-6 * scale


def test_fid_matches_scipy_sqrtm():
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(300, 12, generator=generator, dtype=torch.float64)
    fake = torch.randn(300, 12, generator=generator, dtype=torch.float64) * 1.3 + 0.2
    assert fid_of(real, fake) == pytest.approx(scipy_frechet(real.numpy(), fake.numpy()), rel=1e-4)


def test_kid_is_the_unbiased_cubic_polynomial_mmd():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=generator, dtype=torch.float64)
    y = torch.randn(40, 6, generator=generator, dtype=torch.float64) + 0.5
    metric = KernelInceptionDistance(PrecomputedFeatures(6), subsets=1, subset_size=40)
    metric.update(x, real=True)
    metric.update(y, real=False)
    kid_mean, _ = metric.compute()

    def kernel(a, b):
        return (a @ b.t() / a.shape[1] + 1) ** 3

    n = len(x)
    off_diagonal = ~torch.eye(n, dtype=torch.bool)
    mmd = kernel(x, x)[off_diagonal].mean() + kernel(y, y)[off_diagonal].mean() - 2 * kernel(x, y).mean()
    assert kid_mean.item() == pytest.approx(mmd.item(), rel=1e-6)


def test_sifid_matches_an_independent_computation():
    extractor = TinySpatialFeatures()
    generator = torch.Generator().manual_seed(0)
    real = torch.rand(1, 3, 40, 48, generator=generator) * 2 - 1
    fakes = torch.rand(3, 3, 40, 48, generator=generator) * 2 - 1
    scores = sifid(extractor, real, torch.cat([real, fakes]))
    assert abs(scores[0].item()) < 1e-8
    with torch.no_grad():
        maps = [extractor(((x[None] + 1) * 127.5).round().to(torch.uint8))[0] for x in (real[0], fakes[1])]
    samples = [m.flatten(1).t().double().numpy() for m in maps]
    assert scores[2].item() == pytest.approx(scipy_frechet(*samples), rel=1e-4)
    mu, sigma = gaussian_of_positions(maps[0])
    assert frechet_distance(mu, sigma, mu, sigma).abs().item() < 1e-8


def test_fidkid_callback_measures_the_toy_generator():
    callback = FIDKID(TinyFeatures(), max_samples=24, kid_subsets=10, kid_subset_size=12)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[callback])
    trainer.validate(ToyGenerator(), ToyImages())
    first = dict(callback.last)
    assert first["val/fid"] > 0.01 and first["val/kid_mean"] > 0
    trainer.validate(ToyGenerator(shift=0.0), ToyImages())  # closer to the real images
    assert callback.last["val/fid"] < first["val/fid"]


def test_kid_subset_larger_than_the_images_is_a_clear_error():
    callback = FIDKID(TinyFeatures(), max_samples=100, kid_subsets=2, kid_subset_size=50)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[callback])
    with pytest.raises(ValueError, match="KID subset size 50 exceeds the 24 images"):
        trainer.validate(ToyGenerator(), ToyImages())


def test_missing_inception_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(FileNotFoundError, match=INCEPTION_FILE) as error:
        InceptionPool()
    assert str(tmp_path / "hub" / "checkpoints" / INCEPTION_FILE) in str(error.value)


def test_miou_equals_a_hand_built_confusion_matrix():
    data, callback = ToySegmentation(), MeanIoU(num_classes=4)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[callback])
    trainer.validate(ToySegmenter(), data)
    valid = data.target != 255
    confusion = np.zeros((4, 4))
    np.add.at(confusion, (data.target[valid].numpy(), data.preds[valid].numpy()), 1)
    iou = np.diag(confusion) / (confusion.sum(0) + confusion.sum(1) - np.diag(confusion))
    assert callback.last["val/miou"] == pytest.approx(iou.mean(), rel=1e-6)
    assert callback.last["val/iou/2"] == pytest.approx(iou[2], rel=1e-6)
