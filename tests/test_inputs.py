"""Bad input and bad settings: every one is refused before a run writes anything, with one clear
sentence that names the file or the option; files are read so that they cannot run code."""

from __future__ import annotations

import inspect
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from PIL import Image, ImageFile
from skimage import data as skimage_data
from torch.utils.data import DataLoader, TensorDataset
from torchvision.datasets.folder import default_loader

import datamodules
import lightning_modules
from callbacks.translation import CLASSIFIER_CHECKPOINT
from datamodules.celeba_domains import CelebAAttributeDomains, celeba_domain_files
from datamodules.cifar import read_cifar
from datamodules.digits import DigitDomains
from datamodules.domain_labels import CelebADomainLabels
from datamodules.image_folders import ImageFolderDataModule
from datamodules.single_image import SingleImageDataModule, build_pyramid, pyramid_shapes
from datamodules.single_video import SingleVideoDataModule
from datamodules.unpaired_folders import UnpairedFoldersDataModule
from dfgen import images
from dfgen.checkpoint_files import load_network_weights
from dfgen.images import check_images_complete, load_image, load_rgb8
from dfgen.resize import resize
from dfgen.settings import AT_LEAST_1, BETAS, Each, Either, OneOf, Range
from dfgen.video_files import load_clip
from lightning_modules import ImageClassifier, MaskContentTransfer, OneShotTranslation, SemanticSegmenter
from lightning_modules.segmenter import INIT_CHECKPOINT
from synthetic import moving_square_clip, pattern_image, write_clip, write_image, write_synthetic_celeba
from tests.helpers import REPO, run_cli

SINGAN_SMOKE = str(REPO / "configs/singan/smoke.yaml")
MBU_SMOKE = str(REPO / "configs/content_transfer/smoke.yaml")

# ---- settings ----------------------------------------------------------------------------------

CLASSES = (
    [getattr(lightning_modules, name) for name in lightning_modules.__all__]
    + [getattr(datamodules, name) for name in datamodules.__all__ if name != "TwoDomainDataModule"]
    + [DigitDomains]
)
REQUIRED = {  # stand-ins for the required arguments: settings are checked before any file is read
    "path": "absent.png", "path_a": "absent.png", "path_b": "absent.png", "data_dir": "absent", "root": "absent",
    "source": "handwritten", "source_root": None, "target_root": "absent",
}  # fmt: skip
# any integer (ignore_index: checked against num_classes)
UNCONSTRAINED = {"batch_seed", "predict_seed", "one_shot_seed", "seed", "ignore_index"}


def numeric_options(cls: type) -> list[str]:
    """Constructor options annotated with int or float (alone, optional, or in a tuple or list)."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in parameters if any(t in str(p.annotation) for t in ("int", "float")) and "bool" not in
            str(p.annotation) and p.name not in UNCONSTRAINED]  # fmt: skip


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_numeric_option_has_a_rule(cls):
    """Each LightningModule and DataModule names the valid range of every number it takes."""
    assert not set(numeric_options(cls)) - set(cls.setting_rules)
    assert set(cls.setting_rules) <= set(inspect.signature(cls.__init__).parameters)


def bad_values(rule) -> list:
    """Values that break `rule`: just past each bound, an unknown choice, a list with a bad item."""
    if isinstance(rule, Range):
        values = [] if rule.low is None else [rule.low if rule.open_low else rule.low - 1]
        return values + ([] if rule.high is None else [rule.high if rule.open_high else rule.high + 1])
    if isinstance(rule, OneOf):
        return ["no-such-choice"] if isinstance(rule.choices[0], str) else [max(rule.choices) + 1]
    if isinstance(rule, Each):
        return [[value] * (rule.length or 1) for value in bad_values(rule.rule)]
    return [value for value in bad_values(rule.first) if not rule.second.accepts(value)]


CASES = [
    pytest.param(cls, name, value, id=f"{cls.__name__}.{name}={value!r}")
    for cls in CLASSES
    for name, rule in cls.setting_rules.items()
    for value in bad_values(rule)
]


@pytest.mark.parametrize(("cls", "name", "value"), CASES)
def test_an_out_of_range_setting_is_refused_naming_the_option_and_its_range(cls, name, value):
    required = {key: stand_in for key, stand_in in REQUIRED.items() if key in inspect.signature(cls).parameters}
    with pytest.raises(ValueError, match=rf"^{cls.__name__}: {name}=.*; expected "):
        cls(**(required | {name: value}))


def test_rules_describe_their_ranges():
    assert AT_LEAST_1.expected == "at least 1" and not AT_LEAST_1.accepts(0) and not AT_LEAST_1.accepts(True)
    assert Range(0, 1, open_low=True, open_high=True).expected == "in (0, 1)" and Range(high=2).expected == "at most 2"
    assert BETAS.expected == "2 values, each in [0, 1)" and BETAS.accepts((0.5, 0.999)) and not BETAS.accepts([0.5])
    assert not Range(0).accepts(float("nan")) and not Range(0).accepts(float("inf")) and Range(0).accepts(np.int64(3))
    assert OneOf(("a", "b")).expected == "one of 'a', 'b'" and not OneOf((1, 2)).accepts(True)
    assert Either(AT_LEAST_1, Each(AT_LEAST_1, length=2)).accepts((3, 4))


def test_options_that_depend_on_each_other_are_checked_together():
    with pytest.raises(ValueError, match=r"^SingleVideoDataModule: min_width=64 must be below max_width=64$"):
        SingleVideoDataModule("absent.mp4", min_width=64, max_width=64)
    with pytest.raises(ValueError, match=r"^UnpairedFoldersDataModule: crop_size=300 must be at most load_size=286$"):
        UnpairedFoldersDataModule("absent", crop_size=300)
    with pytest.raises(ValueError, match=r"^ImageFolderDataModule: image_size=300 must be at most resize=256$"):
        ImageFolderDataModule("absent", image_size=300)
    with pytest.raises(ValueError, match=r"^SemanticSegmenter: ignore_index=3; expected a label outside the class ids"):
        SemanticSegmenter(ignore_index=3)


@pytest.mark.parametrize("value", [0, -5])
def test_zero_or_negative_iterations_stop_the_cli_before_any_output(tmp_path, value):
    """Before, `--model.iters_per_scale=0` or `-5` exited 0 with no checkpoint and no message."""
    root = tmp_path / "run"
    with pytest.raises(ValueError, match=rf"SinGAN: iters_per_scale={value}; expected at least 1"):
        run_cli(
            "fit", "--config", SINGAN_SMOKE, f"--trainer.default_root_dir={root}", f"--model.iters_per_scale={value}"
        )
    assert not root.exists()


def test_min_size_at_or_above_the_working_image_is_refused(tmp_path):
    """Before, min_size above the shrunk image gave a pyramid whose coarsest scale was the largest."""
    with pytest.raises(ValueError, match=r"min_size=70 must be below the short side of the working image, 67x100 "):
        pyramid_shapes(200, 300, min_size=70, max_size=100)
    path = write_image(tmp_path / "x.png", pattern_image(200, 300))
    with pytest.raises(ValueError, match="min_size=67 must be below"):
        SingleImageDataModule(str(path), max_size=100, min_size=67)
    assert pyramid_shapes(200, 300, min_size=66, max_size=100)[0] < pyramid_shapes(200, 300, 66, 100)[-1]


# ---- loading that cannot run code --------------------------------------------------------------


class CreatesAFile:
    """Unpickling this creates `path`: what a crafted checkpoint or CIFAR batch can do to a reader."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def crafted_checkpoint(tmp_path):
    """(a Lightning-looking checkpoint that creates a file when unpickled, the file it would create)."""
    marker = tmp_path / "code_ran"
    path = tmp_path / "crafted.ckpt"
    payload = {"state_dict": {"network.weight": torch.zeros(1)}, "hyper_parameters": {"phase": 1}}
    torch.save(payload | {"payload": CreatesAFile(marker)}, path)
    torch.load(path, weights_only=False)  # the payload is real: an unrestricted load runs it
    assert marker.exists()
    marker.unlink()
    return path, marker


def test_phase_one_checkpoint_is_loaded_without_running_code(crafted_checkpoint):
    path, marker = crafted_checkpoint
    model = OneShotTranslation(phase=2, phase_one_checkpoint=str(path))
    refused = rf"^{path}: refused: .*GLOBAL io\.open was not an allowed global"
    with pytest.raises(ValueError, match=refused + r".*; expected the last\.ckpt of a phase-1 OneShotTranslation run$"):
        model.setup("fit")
    assert not marker.exists()


def test_classifier_checkpoint_is_loaded_without_running_code(crafted_checkpoint):
    path, marker = crafted_checkpoint
    with pytest.raises(ValueError, match=rf"^{path}: refused: .*; expected a checkpoint of .*ImageClassifier"):
        load_network_weights(torch.nn.Linear(1, 1), path, CLASSIFIER_CHECKPOINT)
    assert not marker.exists()


def test_segmenter_init_checkpoint_is_loaded_without_running_code(crafted_checkpoint):
    path, marker = crafted_checkpoint
    with pytest.raises(ValueError, match=rf"^{path}: refused: "):
        load_network_weights(torch.nn.Linear(1, 1), path, INIT_CHECKPOINT)
    assert not marker.exists()


def test_second_content_transfer_model_is_loaded_without_running_code(crafted_checkpoint):
    path, marker = crafted_checkpoint
    model = MaskContentTransfer(
        image_size=32, depth=4, code_channels=64, separate_channels=8, then_checkpoint=str(path)
    )
    with pytest.raises(ValueError, match=rf"^{path}: refused: "):
        model._second_model()
    assert not marker.exists()


def test_a_real_classifier_checkpoint_loads_with_weights_only(tmp_path):
    """A Lightning checkpoint of ImageClassifier (optimizer, LR schedule, loops, hyper-parameters)
    holds only what weights_only=True accepts."""
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    model = ImageClassifier(num_classes=3, padain_p=0.0, milestones=[1], network=network)
    images, labels = torch.randn(8, 3, 2, 2), torch.arange(8) % 3
    trainer = Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu", default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, DataLoader(TensorDataset(images, labels), batch_size=4))
    trainer.save_checkpoint(tmp_path / "classifier.ckpt")
    fresh = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    load_network_weights(fresh, tmp_path / "classifier.ckpt", CLASSIFIER_CHECKPOINT)
    assert torch.equal(fresh[1].weight, network[1].weight)


def test_checkpoint_loader_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"^{tmp_path / 'none.ckpt'}: no checkpoint there; expected "):
        load_network_weights(torch.nn.Linear(1, 1), tmp_path / "none.ckpt", CLASSIFIER_CHECKPOINT)
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'text.ckpt'}: "):
        load_network_weights(torch.nn.Linear(1, 1), tmp_path / "text.ckpt", CLASSIFIER_CHECKPOINT)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'plain.pt'}: a file without a state_dict"):
        load_network_weights(torch.nn.Linear(1, 1), tmp_path / "plain.pt", CLASSIFIER_CHECKPOINT)


def write_cifar_batch(directory: Path, content: bytes, name: str = "test_batch") -> Path:
    directory = directory / "cifar-10-batches-py"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(content)
    return directory / name


def python2_cifar_batch(images: np.ndarray, labels: list[int]) -> bytes:
    """A batch laid out byte for byte as the original CIFAR files (cPickle protocol 2 from Python 2
    and numpy 1): str opcodes for bytes, numpy.core.multiarray._reconstruct for the array."""

    def text(value: bytes) -> bytes:  # SHORT_BINSTRING or BINSTRING
        return b"U" + bytes([len(value)]) + value if len(value) < 256 else b"T" + struct.pack("<I", len(value)) + value

    rows, width = images.shape
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + text(b"b") + b"\x87R"
        + b"(K\x01M" + struct.pack("<H", rows) + b"M" + struct.pack("<H", width) + b"\x86"
        + b"cnumpy\ndtype\n" + text(b"u1") + b"K\x00K\x01\x87R(K\x03" + text(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89" + text(images.tobytes()) + b"tb"
    )  # fmt: skip
    label_list = b"]" + (b"(" + b"".join(b"K" + bytes([label]) for label in labels) + b"e" if labels else b"")
    return (
        b"\x80\x02}("
        + text(b"batch_label")
        + text(b"testing batch 1 of 1")
        + text(b"data")
        + array
        + (text(b"labels") + label_list + text(b"filenames") + b"]" + b"u.")
    )


def test_cifar_reader_accepts_the_original_python2_layout_and_python3_pickles(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(3, 3072), dtype=np.uint8)
    write_cifar_batch(tmp_path / "py2", python2_cifar_batch(images, [1, 9, 0]))
    read, labels = read_cifar(tmp_path / "py2", "cifar10", "test")
    assert np.array_equal(read, images.reshape(3, 3, 32, 32).transpose(0, 2, 3, 1)) and labels.tolist() == [1, 9, 0]
    for protocol in (2, 5):  # numpy 2 names numpy._core; protocol 5 stores arrays through _frombuffer
        content = pickle.dumps({b"data": images, b"labels": [1, 9, 0], b"batch_label": b"x"}, protocol=protocol)
        write_cifar_batch(tmp_path / f"p{protocol}", content)
        assert np.array_equal(read_cifar(tmp_path / f"p{protocol}", "cifar10", "test")[0], read)


def test_cifar_batch_is_read_without_running_code(tmp_path):
    marker = tmp_path / "code_ran"
    content = pickle.dumps({b"data": CreatesAFile(marker), b"labels": [0]}, protocol=2)
    path = write_cifar_batch(tmp_path, content)
    pickle.loads(content)  # the payload is real: an unrestricted load runs it
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ValueError, match=rf"^{path}: not a CIFAR batch \(.*io\.open, which a CIFAR batch never"):
        read_cifar(tmp_path, "cifar10", "test")
    assert not marker.exists()
    objects = pickle.dumps({b"data": np.array([marker], dtype=object), b"labels": [0]}, protocol=2)
    write_cifar_batch(tmp_path, objects)
    with pytest.raises(ValueError, match=rf"^{path}: not a CIFAR batch \(.*dtype object"):
        read_cifar(tmp_path, "cifar10", "test")


# ---- image files -------------------------------------------------------------------------------


def sixteen_bit_gradient(path: Path, height: int = 40, width: int = 48) -> tuple[Path, np.ndarray]:
    """A 16-bit grayscale PNG whose values cover 0..65535; returns it and its values."""
    values = np.linspace(0, 65535, height * width).round().astype(np.uint16).reshape(height, width)
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    return path, values


def test_sixteen_bit_grayscale_is_read_at_its_full_range(tmp_path):
    """Before, a 16-bit PNG was clipped at 255 of 65535: a white image."""
    path, values = sixteen_bit_gradient(tmp_path / "deep.png")
    image = load_image(path)
    expected = torch.from_numpy(values.astype(np.float32) / 32767.5 - 1)
    assert image.shape == (3, 40, 48) and torch.allclose(image, expected.expand(3, -1, -1), atol=1e-6)
    data = SingleImageDataModule(str(path), max_size=32, min_size=12)
    data.setup("fit")
    finest = data.pyramid[-1]
    assert finest.min() < -0.9 and finest.max() > 0.9 and abs(finest.mean()) < 0.05


def test_class_folder_images_are_read_as_torchvision_reads_them_but_16_bit_keeps_its_range(tmp_path):
    rgba = write_image(tmp_path / "rgba.png", np.dstack([pattern_image(20, 30), np.full((20, 30), 90, np.uint8)]))
    assert np.array_equal(np.asarray(load_rgb8(rgba)), np.asarray(default_loader(str(rgba))))
    path, values = sixteen_bit_gradient(tmp_path / "deep.png")
    grey = np.asarray(load_rgb8(path))[..., 0].astype(int)
    assert np.abs(grey - values / 257).max() <= 0.5 and grey.max() == 255 and grey.min() == 0


def test_sixteen_bit_frames_are_read_at_their_full_range(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(3):
        sixteen_bit_gradient(folder / f"frame_{index:04d}.png", 16, 16)
    clip, _ = load_clip(folder, num_frames=3)
    assert clip.shape == (3, 3, 16, 16) and clip.min() == -1 and clip.max() == 1


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG of only a header (IHDR, IEND) that claims width x height RGB pixels."""

    def chunk(kind: bytes, content: bytes) -> bytes:
        return struct.pack(">I", len(content)) + kind + content + struct.pack(">I", zlib.crc32(kind + content))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_refused_naming_the_file(tmp_path, monkeypatch):
    bomb = png_header(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(ValueError, match=rf"^{bomb}: refused as a possible decompression bomb"):
        load_image(bomb)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's own check off: ours still holds
    with pytest.raises(ValueError, match=rf"^{bomb}: the header claims 100000x100000 = 10,000,000,000 pixels"):
        SingleImageDataModule(str(bomb))
    root = tmp_path / "run"
    with pytest.raises(ValueError, match="bomb.png: the header claims"):
        run_cli("fit", "--config", SINGAN_SMOKE, f"--trainer.default_root_dir={root}", f"--data.path={bomb}")
    assert not root.exists()


def texture(height: int, width: int) -> np.ndarray:
    """A detailed RGB image: scikit-image's photographed textures, tiled and tinted."""
    tiles = [skimage_data.gravel(), skimage_data.grass(), skimage_data.brick()]
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(0, height, 256):
        row = [tiles[rng.integers(3)][..., None] * rng.uniform(0.4, 1.0, 3) for _ in range(0, width, 256)]
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows)[:height, :width].astype(np.uint8)


@pytest.fixture(scope="module")
def large_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("large")
    array = texture(900, 1200)
    return [write_image(folder / "large.jpg", array, quality=92), write_image(folder / "large.png", array)]


@pytest.mark.parametrize("margin", [None, 1, 2])
def test_large_images_are_decoded_small_and_give_the_full_decodes_working_image(large_images, margin, monkeypatch):
    """Files of up to 4 megapixels are decoded in full. Above (here a 1200x900 photographed texture
    stands for one), a file shrunk to a 100-px pyramid (finest scale 75x100) decodes at 450x600
    (JPEG, DCT scaling by 2) and 300x400 (PNG, a 3x3 box reduction), yet its finest scale is the
    full decode's to within the bars (differences in [-1, 1] units, the same at 1 and 2 threads):

        margin 4 (default): JPEG max 0.0045, mean 0.00059; PNG max 0.0100, mean 0.00144
        bars:                max 0.016 (2.0/255),       mean 0.0025 (0.32/255)
        mutant margin 2:     JPEG max 0.0181, mean 0.00256; PNG max 0.0519, mean 0.00672 (both miss both)
        mutant margin 1:     JPEG max 0.1361, mean 0.01807; PNG max 0.1359, mean 0.01802 (both miss both)
    """
    assert tuple(SingleImageDataModule(str(large_images[0]), max_size=100, min_size=12).images[0].shape) == (
        3,
        900,
        1200,
    )
    monkeypatch.setattr(images, "FULL_DECODE_PIXELS", 0)  # 1.1 megapixels stand for a large file
    if margin is not None:
        monkeypatch.setattr(images, "REDUCTION_MARGIN", margin)
    missed, decoded = [], []
    for path in large_images:
        data = SingleImageDataModule(str(path), max_size=100, min_size=12)
        data.setup("fit")
        decoded.append(tuple(data.images[0].shape))
        full = build_pyramid(load_image(path), data.pyramid_shapes)[-1]
        difference = (data.pyramid[-1] - full).abs()
        missed += [(path.suffix, name) for name, value, bar in (("max", difference.max(), 0.016),
                   ("mean", difference.mean(), 0.0025)) if value > bar]  # fmt: skip
    if margin is None:
        assert decoded == [(3, 450, 600), (3, 300, 400)] and missed == []
    else:
        assert missed == [(".jpg", "max"), (".jpg", "mean"), (".png", "max"), (".png", "mean")]


def test_reduced_decoding_keeps_the_exif_orientation(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "FULL_DECODE_PIXELS", 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = write_image(tmp_path / "r.jpg", texture(480, 640), exif=exif.tobytes())
    assert load_image(path, at_least=(40, 30)).shape == (3, 160, 120)
    reference = resize(load_image(path)[None], (40, 30))
    assert (resize(load_image(path, at_least=(40, 30))[None], (40, 30)) - reference).abs().mean() < 0.01


# ---- CelebA-layout folders -----------------------------------------------------------------------

SMALL_FACES = {"domain_a": "Eyeglasses", "domain_b": "~Eyeglasses", "num_test": 2, "size": 32}


@pytest.fixture
def truncated_celeba(tmp_path):
    """A 16-image CelebA tree in which one training JPEG lost its second half; returns (root, that file)."""
    root = write_synthetic_celeba(tmp_path / "celeba", count=16, seed=1)
    victim = celeba_domain_files(root, "Eyeglasses", "~Eyeglasses", num_test=2)["train_b"][1]
    content = victim.read_bytes()
    victim.write_bytes(content[: len(content) // 2])
    return root, victim


def test_truncated_jpeg_fails_at_construction_naming_the_file(truncated_celeba):
    """Before, a truncated JPEG passed the start-up check and failed at the first batch."""
    root, victim = truncated_celeba
    with pytest.raises(ValueError, match=rf"^{victim}: not a readable image \(image file is truncated"):
        CelebAAttributeDomains(str(root), batch_size=2, **SMALL_FACES)
    with pytest.raises(ValueError, match=rf"^{victim}: not a readable image"):
        CelebADomainLabels(str(root), batch_size=2, **SMALL_FACES)


def test_truncated_jpeg_stops_the_cli_before_the_run_folder_exists(truncated_celeba, tmp_path):
    root, victim = truncated_celeba
    run = tmp_path / "run"
    with pytest.raises(ValueError, match=f"{victim}: not a readable image"):
        run_cli("fit", "--config", MBU_SMOKE, f"--trainer.default_root_dir={run}", f"--data.data_dir={root}",
                f"--data.mask_dir={root / 'masks' / 'Eyeglasses'}", "--data.num_test=2",
                "--data.batch_size=2")  # fmt: skip
    assert not run.exists()


def test_completeness_check_decodes_only_files_without_their_end_marker(tmp_path, monkeypatch):
    """A complete JPEG or PNG is settled by its last bytes; one with bytes after its end marker is
    decoded in full, and passes when it decodes."""
    jpeg = write_image(tmp_path / "a.jpg", pattern_image(40, 30))
    png = write_image(tmp_path / "a.png", pattern_image(40, 30))
    trailing = tmp_path / "trailing.jpg"
    trailing.write_bytes(jpeg.read_bytes() + b"appended by a camera")
    decoded, decode = [], ImageFile.ImageFile.load

    def recording_decode(image: ImageFile.ImageFile):
        decoded.append(Path(image.filename).name)
        return decode(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_decode)
    check_images_complete([jpeg, png, trailing])
    assert decoded == ["trailing.jpg"]
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"^{truncated}: not a readable image"):
        check_images_complete([jpeg, truncated])


# ---- video clips -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["clip.mp4", "frames"])
def test_start_time_past_the_clip_is_one_clear_error(tmp_path, kind):
    """Before: a raw PyAV error, or an IndexError for a negative start in a frame folder."""
    path = write_clip(tmp_path / kind, moving_square_clip(num_frames=9), fps=8)
    expected = rf"^{path}: 9 frames \(1\.12 s\) in all, 0 of them from start_time=5 s \(frame 40 at 8 fps\) on, "
    with pytest.raises(ValueError, match=expected + "but num_frames=5 at stride=1 needs 5"):
        SingleVideoDataModule(str(path), num_frames=5, start_time=5.0, folder_fps=8, max_width=16, min_width=8)
    with pytest.raises(ValueError, match=r"^SingleVideoDataModule: start_time=-1\.0; expected at least 0"):
        SingleVideoDataModule(str(path), num_frames=5, start_time=-1.0, max_width=16, min_width=8)


def test_start_time_on_an_unreadable_video_names_the_file(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match=rf"^{broken}: cannot decode the video"):
        SingleVideoDataModule(str(broken), num_frames=5, start_time=1.0, max_width=16, min_width=8)


def test_frame_folders_are_read_by_the_image_reader(tmp_path):
    """Frames of a folder are read as images are (EXIF, transparency and 16 bits handled the same way)."""
    path = write_clip(tmp_path / "frames", moving_square_clip(num_frames=4))
    clip, fps = load_clip(path, num_frames=4, folder_fps=8)
    assert fps == 8 and torch.equal(clip[:, 2], load_image(path / "frame_0002.png"))
