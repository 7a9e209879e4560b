"""ImageClassifier with pAdaIN: data layouts, the CLI, DDP and the corruption report."""

import math
import pickle
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.optim.lr_scheduler import LRScheduler, MultiStepLR

from datamodules.cifar import CIFARDataModule, read_cifar, read_corruption
from lightning_modules.classifier import ImageClassifier, corruption_summary
from lightning_modules.cli import composed_config
from lightning_modules.networks.classifiers import build_classifier
from synthetic import write_cifar, write_cifar_c
from tests.helpers import REPO, run_cli

SMOKE = str(REPO / "configs/padain/smoke.yaml")
# the data, the schedule and the test reports are the subject here: a network of a few thousand
# weights serves them (pAdaIN after both convolutions) in a fraction of ResNet-18's time
TINY_NETWORK = ["--model.network=tests.helpers.TinyClassifierNet"]


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return write_cifar(tmp_path_factory.mktemp("cifar"), "cifar10", train=96, test=40)


def test_cifar_reader_returns_the_written_layout(cifar):
    images, labels = read_cifar(cifar, "cifar10", "train")
    assert images.shape == (96, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (96,) and labels.max() < 10
    assert read_cifar(cifar, "cifar10", "test")[0].shape == (40, 32, 32, 3)


def test_missing_or_malformed_cifar_names_the_file(tmp_path, cifar):
    with pytest.raises(FileNotFoundError, match="cifar-100-python/train is missing"):
        read_cifar(tmp_path, "cifar100", "train")
    broken = write_cifar(tmp_path / "broken", "cifar10", train=10, test=10)
    (broken / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": [1, 2, 3]}))
    with pytest.raises(ValueError, match="test_batch: not a CIFAR batch"):
        read_cifar(broken, "cifar10", "test")


def test_corruption_reader_checks_shapes(tmp_path):
    write_cifar_c(tmp_path, num_classes=10, per_severity=4)
    images, labels = read_corruption(tmp_path, "contrast", 10)
    assert images.shape == (20, 32, 32, 3) and len(labels) == 20
    np.save(tmp_path / "contrast.npy", np.zeros((7, 32, 32, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"contrast\.npy: got \(7, 32, 32, 3\)"):
        read_corruption(tmp_path, "contrast", 10)
    with pytest.raises(FileNotFoundError, match="snow.npy is missing"):
        read_corruption(tmp_path, "snow", 10)


def test_cifar_resnet_has_a_cifar_stem_and_trains():
    network = build_classifier("resnet18", 10, cifar_stem=True, padain_p=1.0)
    assert network.conv1.stride == (1, 1) and isinstance(network.maxpool, torch.nn.Identity)
    assert sum(hasattr(m, "padain") for m in network.modules()) == 17
    logits = network.train()(torch.randn(4, 3, 32, 32))
    assert logits.shape == (4, 10)
    logits.sum().backward()
    assert all(p.grad is not None for p in network.parameters())


def test_corruption_summary_averages_severities_then_corruptions():
    errors = {"clean": 5.0, "fog/1": 10.0, "fog/2": 20.0, "snow/1": 30.0, "snow/2": 50.0}
    summary = corruption_summary(errors)
    assert summary["test/corruption_error/fog"] == 15.0 and summary["test/corruption_error/snow"] == 40.0
    assert summary["test/mean_corruption_error"] == 27.5


def test_fit_then_test_on_clean_and_corrupted_sets(cifar, tmp_path):
    corrupted = write_cifar_c(tmp_path / "c", num_classes=10, per_severity=8)
    root = tmp_path / "run"
    common = ["--config", SMOKE, f"--data.data_dir={cifar}", f"--trainer.default_root_dir={root}", *TINY_NETWORK]
    run_cli("fit", *common)
    cli = run_cli(
        "test", *common, f"--ckpt_path={root / 'checkpoints' / 'last.ckpt'}", f"--data.corruptions_dir={corrupted}",
        "--data.corruptions=[gaussian_noise,contrast]",
    )  # fmt: skip
    metrics = cli.trainer.callback_metrics
    assert 0 <= metrics["test/top1"] <= metrics["test/top5"] <= 1
    assert "test/error/contrast/5" in metrics and "test/corruption_error/gaussian_noise" in metrics
    table = next(root.glob("**/corruption_errors.md")).read_text()
    assert "| gaussian_noise/3 |" in table and "| mean_corruption_error |" in table


CLASSIFIER_MUTANTS = {
    "no_learning": ["--model.lr=1e-7"],
    "padain_always": ["--model.padain_p=1.0"],  # every forward restyles both layers: the colour cue is gone
}


@pytest.mark.parametrize("mutant", [None, *(pytest.param(name, marks=pytest.mark.slow) for name in CLASSIFIER_MUTANTS)])
def test_learns_the_planted_classes(mutant, cifar, tmp_path):
    """The synthetic classes (colour and stripes) are learnt through the real reader, schedule and
    pAdaIN (p = 0.01): a 16-channel network, 10 epochs of 96 images, validation accuracy 0.925 at
    seed 0 (0.70 and 0.925 at seeds 1 and 2; chance 0.10), required above 0.5; without learning
    (lr 1e-7) 0.225, with pAdaIN firing at every forward (p = 1) 0.075. One thread, 2 CPU-seconds."""
    cli = run_cli(
        "fit", "--config", SMOKE, f"--data.data_dir={cifar}", f"--trainer.default_root_dir={tmp_path}",
        *TINY_NETWORK, "--model.network.width=16", "--trainer.max_epochs=10", "--model.padain_p=0.01",
        "--model.milestones=[100]", "--model.lr=0.05", "--data.rotation=0", *CLASSIFIER_MUTANTS.get(mutant, []),
    )  # fmt: skip
    accuracy = float(cli.trainer.callback_metrics["val/top1"])
    assert (accuracy > 0.5) == (mutant is None), f"{mutant}: val/top1 {accuracy:.3f}"


def test_bad_dataset_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py/test_batch is missing"):
        data = CIFARDataModule(str(tmp_path), dataset="cifar10")
        data.setup("validate")


def test_mce_normalises_by_alexnet():
    errors = {"clean": 20.0, "fog/1": 40.0, "fog/2": 41.9324, "brightness/1": 28.2296, "brightness/2": 28.2296}
    summary = corruption_summary(errors, normalize=True)
    # fog: 40.9662 / 81.9324 = 0.5; brightness: 28.2296 / 56.4592 = 0.5
    assert summary["test/mCE"] == pytest.approx(50.0, rel=1e-6)


def test_image_folders_fit_and_imagenet_c_test(tmp_path):
    from synthetic import write_imagenet, write_imagenet_c

    data = write_imagenet(tmp_path / "imagenet", num_classes=3, train=24, val=12)
    corrupted = write_imagenet_c(tmp_path / "imagenet-c", data / "val", ["contrast", "pixelate"])
    root = tmp_path / "run"
    common = [
        "--model=ImageClassifier", "--model.num_classes=3", "--model.padain_p=0.5", "--model.milestones=[5]",
        "--data=ImageFolderDataModule", f"--data.data_dir={data}", "--data.image_size=32", "--data.resize=32",
        "--data.batch_size=8", "--data.num_workers=0", "--trainer.accelerator=cpu", "--trainer.max_epochs=1",
        *TINY_NETWORK, "--model.network.num_classes=3",
        f"--trainer.default_root_dir={root}", "--trainer.callbacks=callbacks.ResumableCheckpoint",
    ]  # fmt: skip
    run_cli("fit", *common)
    cli = run_cli(
        "test", *common, f"--ckpt_path={root / 'checkpoints' / 'last.ckpt'}", f"--data.corruptions_dir={corrupted}",
        "--data.corruptions=[contrast,pixelate]",
    )  # fmt: skip
    metrics = cli.trainer.callback_metrics
    assert "test/mCE" in metrics and "test/error/pixelate/5" in metrics


def test_class_folders_must_match_the_training_classes(tmp_path):
    from datamodules.image_folders import ImageFolderDataModule
    from synthetic import write_imagenet

    data = write_imagenet(tmp_path, num_classes=3)
    (data / "val" / "n00000002").rename(data / "val" / "n00000009")
    module = ImageFolderDataModule(str(data), num_workers=0)
    with pytest.raises(ValueError, match="differ from the training classes"):
        module.setup("validate")
    with pytest.raises(FileNotFoundError, match="nowhere/train is missing"):
        ImageFolderDataModule(str(tmp_path / "nowhere"))


@pytest.mark.parametrize(("arch", "points"), [("resnext29", 28), ("densenet40", 37), ("resnet20", 19)])
def test_cifar_c_backbones(arch, points):
    network = build_classifier(arch, 100, cifar_stem=True, padain_p=1.0)
    inserted = [name for name, module in network.named_modules() if hasattr(module, "padain")]
    assert len(inserted) == points  # stem + every main-path conv; no shortcut or transition conv
    assert not any("downsample" in name or "transition" in name for name in inserted)
    logits = network.train()(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 100)
    logits.sum().backward()
    assert all(p.grad is not None for p in network.parameters())


def test_any_network_given_by_class_path(cifar, tmp_path):
    root = tmp_path / "run"
    common = [
        "--config", SMOKE, f"--data.data_dir={cifar}", f"--trainer.default_root_dir={root}",
        "--model.network=torchvision.models.MobileNetV2", "--model.network.num_classes=10",
        "--model.network.width_mult=0.25", "--trainer.max_epochs=1",
    ]  # fmt: skip
    cli = run_cli("fit", *common)
    assert type(cli.model.network).__name__ == "MobileNetV2"
    assert sum(hasattr(m, "padain") for m in cli.model.network.modules()) == 52  # every convolution
    tested = run_cli("test", *common, f"--ckpt_path={root / 'checkpoints' / 'last.ckpt'}")
    assert 0 <= tested.trainer.callback_metrics["test/top1"] <= 1


class OfficialWarmUp(LRScheduler):
    """`WarmUpLR` of the official `classification/utils.py`: base_lr * steps / total_iters."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_iters: int) -> None:
        self.total_iters = total_iters
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [base_lr * self.last_epoch / (self.total_iters + 1e-8) for base_lr in self.base_lrs]


def official_cifar100_rates(epochs: int, steps_per_epoch: int) -> list[float]:
    """The LR of every step of the official `classification/cifar100.py` loop: epochs counted from 1,
    MultiStepLR([60, 120, 160], 0.2) stepped with the epoch from the second on, warm-up in the first."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    train_scheduler = MultiStepLR(optimizer, milestones=[60, 120, 160], gamma=0.2)
    warmup_scheduler = OfficialWarmUp(optimizer, steps_per_epoch)
    rates = []
    for epoch in range(1, epochs + 1):
        if epoch > 1:
            with warnings.catch_warnings():  # step(epoch) is deprecated, and what the official loop calls
                warnings.simplefilter("ignore")
                train_scheduler.step(epoch)
        for _ in range(steps_per_epoch):
            if epoch <= 1:
                warmup_scheduler.step()
            rates.append(optimizer.param_groups[0]["lr"])
    return rates


def our_rates(epochs: int, steps_per_epoch: int, milestones: list[int]) -> list[float]:
    model = ImageClassifier(network=torch.nn.Linear(2, 2), padain_p=0.0, milestones=milestones)
    model.trainer = SimpleNamespace(
        estimated_stepping_batches=epochs * steps_per_epoch, max_epochs=epochs, datamodule=None
    )
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    rates = []
    for _ in range(epochs * steps_per_epoch):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_cifar100_schedule_is_the_official_one_step_by_step():
    """The config's milestones [59, 119, 159] give the official LR at every step; [60, 120, 160]
    (the earlier config) decayed one epoch late."""
    milestones = composed_config(REPO / "configs/padain/cifar100_resnet18.yaml")["model"]["init_args"]["milestones"]
    official = official_cifar100_rates(epochs=165, steps_per_epoch=3)
    assert our_rates(165, 3, milestones) == pytest.approx(official, rel=1e-6)  # the official +1e-8
    late = our_rates(165, 3, [60, 120, 160])
    assert [step for step, (a, b) in enumerate(zip(late, official)) if not math.isclose(a, b, rel_tol=1e-6)] == [
        step for epoch in (59, 119, 159) for step in range(3 * epoch, 3 * epoch + 3)
    ]


@pytest.mark.parametrize(("arch", "he_linear"), [("resnext29", True), ("densenet40", False)])
def test_cifar_c_backbones_start_from_the_official_he_normal_init(arch, he_linear):
    """`resnext.py` and `densenet.py` of the official corruption code: conv weights ~ N(0, 2 / (k*k*out)),
    BatchNorm 1 and 0, Linear bias 0 and (ResNeXt) Linear weights ~ N(0, 2 / in_features)."""
    torch.manual_seed(0)
    network = build_classifier(arch, 100, cifar_stem=True, padain_p=0.0)

    def check_normal(weight: torch.Tensor, std: float) -> None:
        values = weight.detach().double().flatten()
        assert abs(values.std().item() / std - 1) < 5 / math.sqrt(2 * values.numel())  # 5 standard errors
        assert abs(values.mean().item()) < 5 * std / math.sqrt(values.numel())
        if values.numel() >= 10_000:  # a normal's kurtosis is 3, a uniform's (PyTorch's default) 1.8
            assert abs((((values - values.mean()) / values.std()) ** 4).mean().item() - 3) < 0.3

    convolutions = [m for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    for conv in convolutions:
        check_normal(conv.weight, math.sqrt(2 / (conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels)))
    for norm in (m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        assert torch.equal(norm.weight, torch.ones_like(norm.weight)) and not norm.bias.any()
    linear = network.fc
    assert not linear.bias.any()
    if he_linear:
        check_normal(linear.weight, math.sqrt(2 / linear.in_features))
    else:  # PyTorch's default, uniform within 1 / sqrt(in_features)
        assert linear.weight.abs().max() <= 1 / math.sqrt(linear.in_features)
