"""One-shot translation: networks, selective backpropagation, losses, readers and both phases via the CLI."""

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy.io import savemat
from torchvision.transforms.v2 import functional as TF

from callbacks.perceptual import ContentStyleDistances, VGGFeatures, gram
from callbacks.translation import TranslationAccuracy
from datamodules.digits import OneShotDigitsDataModule, disjoint_halves, load_domain, read_mnist, read_svhn
from datamodules.unpaired_folders import UnpairedFoldersDataModule, flip_and_rotate
from lightning_modules.cli import composed_config
from lightning_modules.networks.losses import latent_kl, lsgan
from lightning_modules.networks.ost import (
    DigitCritic,
    ImagePool,
    PatchGANCritic,
    digits_autoencoder,
    resnet_autoencoder,
)
from lightning_modules.one_shot_translation import OneShotTranslation
from synthetic import pattern_image, write_image
from tests.helpers import REPO, fit_run, run_cli

PHASE1 = str(REPO / "configs/one_shot_translation/smoke_phase1.yaml")
PHASE2 = str(REPO / "configs/one_shot_translation/smoke_phase2.yaml")


# ---------------------------------------------------------------------- networks and losses
def test_digits_autoencoder_shapes_and_latent():
    autoencoder = digits_autoencoder(channels_a=1, channels_b=3)
    latent = autoencoder.encode(torch.randn(2, 1, 32, 32), "a")
    assert latent.shape == (2, 128, 8, 8)
    assert autoencoder.decode(latent, "b").shape == (2, 3, 32, 32)
    assert DigitCritic(3)(torch.randn(2, 3, 32, 32)).shape == (2,)
    narrow = OneShotTranslation(network="digits", ngf=16, ndf=8)  # the official --g_conv_dim, --d_conv_dim
    assert narrow.autoencoder.encode(torch.randn(2, 1, 32, 32), "a").shape == (2, 32, 8, 8)
    assert narrow.critics["b"][0].out_channels == 8 and narrow.critics["a"](torch.randn(2, 1, 32, 32)).shape == (2,)


@pytest.mark.parametrize(("n_downsampling", "num_unshared"), [(2, 2), (3, 3), (2, 0)])
def test_resnet_split_follows_the_task_table(n_downsampling, num_unshared):
    autoencoder = resnet_autoencoder(
        ngf=8, n_downsampling=n_downsampling, num_unshared=num_unshared, num_res_blocks_shared=1
    )
    x = torch.randn(1, 3, 32, 32)
    latent = autoencoder.encode(x, "a")
    side = 32 // 2**n_downsampling
    assert latent.shape == (1, 8 * 2**n_downsampling, side, side)
    assert autoencoder.decode(latent, "b").shape == x.shape
    encoder_a = autoencoder.encoders_unshared["a"]
    strided = [m for m in encoder_a.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == num_unshared  # the first `num_unshared` down-samplings are domain-specific


def test_patchgan_critic_score_map():
    assert PatchGANCritic(3, width=8)(torch.randn(1, 3, 64, 64)).shape == (1, 1, 6, 6)


def test_lsgan_and_kl_terms_by_hand():
    scores = torch.tensor([0.5, 2.0])
    assert torch.isclose(lsgan(scores, 1.0), torch.tensor((0.25 + 1.0) / 2))
    assert torch.isclose(lsgan(scores, 0.0), torch.tensor((0.25 + 4.0) / 2))
    assert torch.isclose(latent_kl(torch.tensor([[1.0, -2.0], [0.0, 3.0]])), torch.tensor(14 / 4))


def test_image_pool_returns_new_images_until_full_then_mixes():
    pool, rng = ImagePool(size=2), torch.Generator().manual_seed(0)
    first = pool.query(torch.zeros(2, 1, 2, 2), rng)
    assert torch.equal(first, torch.zeros(2, 1, 2, 2)) and len(pool.images) == 2
    returned = torch.cat([pool.query(torch.ones(1, 1, 2, 2), rng) for _ in range(20)])
    assert {0.0, 1.0} <= set(returned.flatten().tolist())  # old fakes come back half of the time


# ---------------------------------------------------------------------- selective backpropagation
def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def phase_two_step(model: OneShotTranslation) -> tuple[dict, dict]:
    """Parameters of the autoencoder before and after one phase-2 iteration (outside a Trainer)."""
    optimizers, _ = model.configure_optimizers()
    model.optimizers = lambda: optimizers
    model.manual_backward = lambda loss: loss.backward()
    before = _snapshot(model.autoencoder)
    channels_a = model.hparams.channels_a
    x, b = torch.randn(1, channels_a, 32, 32), torch.randn(1, 3, 32, 32)
    (model._digits_phase_two if model.hparams.network == "digits" else model._drawing_phase_two)(x, b)
    return before, _snapshot(model.autoencoder)


@pytest.mark.parametrize("network", ["digits", "resnet"])
def test_x_losses_leave_the_shared_core_unchanged(network):
    kwargs = {"channels_a": 3, "ngf": 8, "num_res_blocks_shared": 1} if network == "resnet" else {}
    before, after = phase_two_step(OneShotTranslation(network=network, freeze_shared=True, **kwargs))  # no B step
    shared = [n for n in before if n.startswith(("encoder_shared.", "decoder_shared."))]
    a_layers = [n for n in before if n.startswith(("encoders_unshared.a.", "decoders_unshared.a."))]
    assert shared and all(torch.equal(before[n], after[n]) for n in shared)
    assert any(not torch.equal(before[n], after[n]) for n in a_layers)


def test_without_selective_backprop_the_x_losses_move_the_shared_core():
    model = OneShotTranslation(network="digits", freeze_shared=True, selective_backprop=False)
    before, after = phase_two_step(model)
    assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith("encoder_shared."))


def test_learning_rate_schedules_linear_and_per_epoch_as_the_official_lambda_rule():
    linear = OneShotTranslation(network="digits", iterations=8, lr_decay_start=4)
    assert [linear._lr_factor(i) for i in range(9)] == [1, 1, 1, 1, 1, 0.75, 0.5, 0.25, 0]
    # 4 epochs of 2 iterations, "niter" 2 and "niter_decay" 2: 1 - max(0, e + 1 + 1 - 2) / 3 in epoch e
    per_epoch = OneShotTranslation(network="digits", iterations=8, lr_decay_start=4, epoch_iterations=2)
    assert [per_epoch._lr_factor(i) for i in range(8)] == pytest.approx([1, 1, 2 / 3, 2 / 3, 1 / 3, 1 / 3, 0, 0])


# ---------------------------------------------------------------------- readers
def _write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_mnist_idx_and_svhn_mat_readers(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28))
    _write_idx(raw / "t10k-images-idx3-ubyte.gz", images, 2051)
    _write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.arange(5), 2049)
    read_images, labels = read_mnist(tmp_path, "test")
    assert np.array_equal(read_images, images) and labels.tolist() == [0, 1, 2, 3, 4]
    tensor, _ = load_domain("mnist", tmp_path, "test")
    assert tensor.shape == (5, 1, 32, 32) and tensor.min() >= -1 and tensor.max() <= 1

    svhn = np.random.default_rng(1).integers(0, 256, size=(32, 32, 3, 4)).astype(np.uint8)
    savemat(tmp_path / "train_32x32.mat", {"X": svhn, "y": np.array([[10], [1], [2], [10]])})
    read_images, labels = read_svhn(tmp_path, "train")
    assert read_images.shape == (4, 32, 32, 3) and labels.tolist() == [0, 1, 2, 0]  # 10 is the digit 0


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte is missing"):
        read_mnist(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="test_32x32.mat is missing"):
        read_svhn(tmp_path, "test")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes((2051).to_bytes(4, "big") + (9).to_bytes(4, "big") * 3 + b"\0" * 10)
    with pytest.raises(ValueError, match="truncated"):
        read_mnist(tmp_path, "train")
    with pytest.raises(ValueError, match="unknown digit domain 'usps'"):
        load_domain("usps", None, "train")


def test_flip_and_rotate_is_torchvisions_nearest_rotation_with_black_corners():
    images = torch.rand(6, 3, 20, 30) * 2 - 1
    augmented = flip_and_rotate(images, 7.0, torch.Generator().manual_seed(1))
    draws = torch.Generator().manual_seed(1)
    flips, angles = torch.rand(6, generator=draws) < 0.5, (torch.rand(6, generator=draws) * 2 - 1) * 7
    for image, flip, angle, result in zip(images, flips, angles, augmented):
        flipped = image.flip(-1) if flip else image
        expected = TF.rotate(flipped, float(angle), interpolation=TF.InterpolationMode.NEAREST, fill=-1.0)
        assert torch.equal(result, expected)
    white = flip_and_rotate(torch.ones(1, 3, 32, 32), 7.0, torch.Generator().manual_seed(0))
    assert white[0, :, 0, 0].tolist() == [-1.0, -1.0, -1.0]  # black corners, as PIL's rotate
    tiny = flip_and_rotate(images, 0.1, draws)  # the digits' 0.1 degrees move no pixel
    assert all(torch.equal(out, image) or torch.equal(out, image.flip(-1)) for out, image in zip(tiny, images))


def test_one_shot_digits_data_augments_b_and_reuses_one_draw_of_the_sample():
    data = OneShotDigitsDataModule(source="handwritten", target="textured", phase=2, sample_index=None, one_shot_seed=3,
                                   rotation_degrees=30.0)  # fmt: skip
    again = OneShotDigitsDataModule(
        source="handwritten", target="textured", phase=2, sample_index=None, one_shot_seed=3
    )
    assert data.sample_index == again.sample_index  # a seeded random choice
    raw = data.source_train[0][data.sample_index]
    assert not torch.equal(data.sample[0], raw)  # the official code's one augmented draw ...
    rng = torch.Generator().manual_seed(0)
    batches = [data.training_batch(rng) for _ in range(4)]
    assert batches[0]["a"].shape == (1, 1, 32, 32) and batches[0]["b"].shape == (1, 3, 32, 32)
    assert all(torch.equal(batch["a"], data.sample) for batch in batches)  # ... reused verbatim
    raw_b = data.target_train[0]
    for b in (batch["b"][0] for batch in batches):  # B is rotated too: neither a stored image nor its mirror
        assert not any(torch.equal(b, image) or torch.equal(b, image.flip(-1)) for image in raw_b)
    each_step = OneShotDigitsDataModule(source="handwritten", target="textured", phase=2,
                                        sample_index=data.sample_index, rotation_degrees=30.0,
                                        augment_sample_each_step=True)  # fmt: skip
    samples = [each_step.training_batch(rng)["a"] for _ in range(3)]
    assert not torch.equal(samples[0], samples[1]) and not torch.equal(samples[1], samples[2])
    phase_one = OneShotDigitsDataModule(source="handwritten", target="textured", phase=1, batch_size=64)
    b = phase_one.training_batch(rng)["b"]
    official = phase_one.target_train[0]
    flipped = [any(torch.equal(image, candidate.flip(-1)) for candidate in official) for image in b[:8]]
    assert any(flipped) and not all(flipped)  # the 0.1-degree rotation leaves pixels; half are flipped
    with pytest.raises(ValueError, match="outside A's 718 training images"):
        OneShotDigitsDataModule(source="handwritten", target="textured", sample_index=5000)


def test_packaged_domains_take_a_and_b_from_disjoint_halves_of_the_scans():
    data = OneShotDigitsDataModule(source="handwritten", target="textured", phase=2, augment=False)
    half_a, half_b = disjoint_halves(load_domain("handwritten", None, "train")[1])
    assert set(half_a.tolist()).isdisjoint(half_b.tolist()) and len(half_a) + len(half_b) == 1437
    assert torch.equal(data.source_train[0], load_domain("handwritten", None, "train")[0][half_a])
    assert torch.equal(data.target_train[0], load_domain("textured", None, "train")[0][half_b])
    counts = [torch.bincount(labels, minlength=10) for labels in (data.source_train[1], data.target_train[1])]
    assert (counts[0] - counts[1]).abs().max() <= 1  # stratified


def _write_folders(root: Path) -> Path:
    for split, count in (("trainA", 2), ("trainB", 3), ("testA", 2), ("testB", 2)):
        for index in range(count):
            write_image(root / split / f"{index}.png", pattern_image(40, 40, seed=index + 10 * len(split)))
    return root


def test_unpaired_folders_layout_and_augmentation(tmp_path):
    data = UnpairedFoldersDataModule(str(_write_folders(tmp_path)), load_size=36, crop_size=32, rotation_degrees=30.0)
    batch = data.training_batch(torch.Generator().manual_seed(0))
    assert batch["a"].shape == (1, 3, 32, 32) and batch["b"].shape == (1, 3, 32, 32)
    white = data.augment(torch.ones(3, 40, 40), torch.Generator().manual_seed(0))
    assert white[:, 0, 0].tolist() == [-1.0, -1.0, -1.0]  # rotated corners are black, as the official code's
    assert data.style_references().shape == (2, 3, 32, 32)
    (tmp_path / "testB" / "0.png").unlink()
    (tmp_path / "testB" / "1.png").unlink()
    with pytest.raises(ValueError, match="testB holds no image"):
        UnpairedFoldersDataModule(str(tmp_path))


# ---------------------------------------------------------------------- metrics
class ConstantLogits(torch.nn.Module):
    def forward(self, images):
        return torch.nn.functional.one_hot(images.mean(dim=(1, 2, 3)).gt(0).long() * 3, 10).float()


def test_translation_accuracy_counts_correct_labels_per_set_and_marginalises_guides():
    callback = TranslationAccuracy(classifier=ConstantLogits())
    callback.device = torch.device("cpu")
    bright, dark = torch.ones(3, 4, 4), -torch.ones(3, 4, 4)  # classified 3 and 0
    callback._update({"translations": torch.stack([bright, dark]), "labels": torch.tensor([3, 3])})
    assert callback.metrics["translation"].compute().item() == 0.5
    # three guided translations per source: the majority of the averaged probabilities decides
    guided = torch.stack([torch.stack([bright, bright, dark]), torch.stack([dark, dark, bright])])
    callback._update({"translations": {"a_to_b": guided}, "labels": {"a_to_b": torch.tensor([3, 0])}})
    assert callback.metrics["a_to_b"].compute().item() == 1.0  # one vote per translation would give 4/6


def test_gram_and_distances_by_hand():
    features = torch.tensor([[[[1.0, 2.0]], [[0.0, 1.0]]]])  # [1, 2, 1, 2]
    assert torch.allclose(gram(features), torch.tensor([[[5.0, 2.0], [2.0, 1.0]]]) / 4)


# ---------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def phase_one(tmp_path_factory):
    return fit_run(PHASE1, tmp_path_factory.mktemp("phase1"))


def phase_two(root: Path, phase_one: Path, *extra: str) -> Path:
    # a config in `extra` comes before the phase-1 path, which it would otherwise override
    return fit_run(PHASE2, root, *extra, f"--model.phase_one_checkpoint={phase_one}")


def test_phase_two_starts_from_phase_one_b_layers_and_fresh_a_layers(phase_one, tmp_path):
    phase1 = torch.load(phase_one, weights_only=True)
    assert phase1["hyper_parameters"]["phase"] == 1 and phase1["iteration_progress"]["iteration"] == 12
    model = OneShotTranslation(phase=2, phase_one_checkpoint=str(phase_one))
    fresh_a = model.autoencoder.encoders_unshared["a"][0].weight.clone()
    model._load_phase_one()
    loaded = {k.removeprefix("autoencoder."): v for k, v in phase1["state_dict"].items()}
    state = model.autoencoder.state_dict()
    assert torch.equal(state["encoder_shared.0.0.weight"], loaded["encoder_shared.0.0.weight"])
    assert torch.equal(state["decoders_unshared.b.0.weight"], loaded["decoders_unshared.b.0.weight"])
    assert torch.equal(model.autoencoder.encoders_unshared["a"][0].weight, fresh_a)


def test_phase_two_fit_validates_and_predicts(phase_one, tmp_path):
    classifier = "lightning_modules.networks.classifiers.DigitClassifier"
    accuracy = ("--trainer.callbacks+=callbacks.TranslationAccuracy", f"--trainer.callbacks.classifier={classifier}")
    last = phase_two(tmp_path, phase_one, *accuracy)
    assert torch.load(last, weights_only=True)["iteration_progress"]["iteration"] == 12
    run_cli("predict", "--config", PHASE2, f"--trainer.default_root_dir={tmp_path}", f"--ckpt_path={last}",
            f"--model.phase_one_checkpoint={phase_one}")  # fmt: skip
    names = {p.name for p in (tmp_path / "predictions").glob("*.png")}
    assert {"sample_a.png", "sample_ab.png", "sample_aba.png", "test_00000_aa.png", "grid.png"} <= names


def test_content_and_style_distances_are_zero_for_identity():
    class Features(torch.nn.Module):
        def forward(self, images):
            return {"content": images, "style": [images, images[:, :2]]}

    callback = ContentStyleDistances(feature_extractor=Features())
    images = torch.randn(2, 3, 8, 8)
    callback.reference_grams = [gram(images).mean(dim=0), gram(images[:, :2]).mean(dim=0)]
    callback._update({"sources": images, "translations": images})
    assert callback.content.compute().item() == 0
    callback._update({"sources": images, "translations": images + 1})
    assert callback.content.compute().item() == pytest.approx(0.5)  # half the images differ by 1 everywhere


def test_resnet_recipe_runs_both_phases_on_folders(tmp_path):
    data = _write_folders(tmp_path / "data")
    tiny = {"ngf": 8, "num_res_blocks_shared": 1, "iterations": 3, "lr_decay_start": 1, "epoch_iterations": 1}
    configs = {}
    for phase in (1, 2):
        config = composed_config(REPO / f"configs/one_shot_translation/facades_phase{phase}.yaml")
        config["model"]["init_args"] |= tiny | {"phase_one_checkpoint": str(tmp_path / "p1/checkpoints/last.ckpt")}
        config["data"]["init_args"] |= {"root": str(data), "load_size": 36, "crop_size": 32, "num_references": 2}
        config["trainer"] |= {"accelerator": "cpu", "default_root_dir": str(tmp_path / f"p{phase}")}
        config["trainer"].pop("val_check_interval", None)
        for callback in config["trainer"]["callbacks"]:
            if callback["class_path"] == "callbacks.ContentStyleDistances":
                callback["init_args"] = {"feature_extractor": {"class_path": "tests.helpers.TinyStyleFeatures"}}
        if phase == 1:
            config["model"]["init_args"].pop("phase_one_checkpoint")
        configs[phase] = tmp_path / f"phase{phase}.yaml"
        configs[phase].write_text(yaml.safe_dump(config))
    run_cli("fit", "--config", str(configs[1]))
    cli = run_cli("fit", "--config", str(configs[2]))
    metrics = cli.trainer.callback_metrics
    assert metrics["val/content_distance"] > 0 and metrics["val/style_distance"] > 0
    state = torch.load(tmp_path / "p2/checkpoints/last.ckpt", weights_only=True)
    assert len(state["one_shot_progress"]["pool"]) == 6  # x_ab and b_bb of each of 3 iterations, pool of 50


def test_missing_vgg_weights_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="vgg19-dcbb9e9d.pth"):
        VGGFeatures(weights_path=str(tmp_path / "vgg19-dcbb9e9d.pth"))
