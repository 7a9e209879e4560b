import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from skimage import filters, morphology

from datamodules.single_image import SingleImageDataModule, feather_mask, pyramid_shapes
from dfgen.images import load_image
from synthetic import pattern_image, write_image


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (
            (188, 250),
            [
                (26, 34),
                (32, 42),
                (40, 53),
                (49, 66),
                (62, 82),
                (77, 102),
                (96, 128),
                (121, 160),
                (151, 200),
                (188, 250),
            ],
        ),
        ((250, 250), [(n, n) for n in (25, 32, 40, 50, 63, 80, 100, 126, 158, 199, 250)]),
        (
            (768, 1024),
            [(25, 34), (33, 43), (42, 56), (54, 71), (69, 92), (89, 118), (114, 151), (147, 195), (188, 250)],
        ),
    ],
)
def test_pyramid_matches_the_spec_table(size, expected):
    assert pyramid_shapes(*size) == expected


def test_rgb_roundtrip_and_range(tmp_path):
    array = pattern_image(20, 30)
    image = load_image(write_image(tmp_path / "x.png", array))
    assert image.shape == (3, 20, 30)
    assert torch.allclose(image, torch.from_numpy(array).permute(2, 0, 1).float() / 127.5 - 1)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    image = load_image(write_image(tmp_path / "g.png", pattern_image(20, 30)[..., 0]))
    assert image.shape == (3, 20, 30)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_rgba_is_composited_on_white(tmp_path):
    array = np.zeros((10, 12, 4), dtype=np.uint8)
    array[..., 0] = 255
    array[:, :6, 3] = 255  # left half opaque red, right half transparent
    image = load_image(write_image(tmp_path / "a.png", array))
    assert torch.allclose(image[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    assert torch.allclose(image[:, 0, -1], torch.ones(3))


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = write_image(tmp_path / "r.jpg", pattern_image(20, 30), exif=exif.tobytes())
    assert load_image(path).shape == (3, 30, 20)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(tmp_path / "nope.png")


def test_truncated_file_names_the_path(tmp_path):
    path = write_image(tmp_path / "t.png", pattern_image(64, 64))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"t\.png: not a readable image"):
        load_image(path)


def test_not_an_image_names_the_path(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello")
    with pytest.raises(ValueError, match="notes.png"):
        load_image(path)


def test_too_small_image_names_path_and_limit(tmp_path):
    path = write_image(tmp_path / "small.png", pattern_image(20, 40))
    with pytest.raises(ValueError, match=r"small\.png: image is 20x40, smaller than min_size=25"):
        SingleImageDataModule(str(path))


def test_pyramid_is_built_coarse_to_fine(tiny_image):
    data = SingleImageDataModule(str(tiny_image), max_size=32, min_size=12)
    data.setup("fit")
    assert [tuple(x.shape[-2:]) for x in data.pyramid] == data.pyramid_shapes
    assert data.pyramid_shapes[-1] == (25, 32)
    assert all(x.abs().max() <= 1 for x in data.pyramid)
    pyramid = next(iter(data.train_dataloader()))
    assert len(pyramid) == len(data.pyramid_shapes)


@pytest.mark.parametrize("radius", [0, 3, 7])
def test_feathered_mask_is_the_official_dilation_and_gaussian(radius):
    mask = np.zeros((30, 40), dtype=np.float32)
    mask[8:14, 5:12] = 1.0
    mask[20, 30] = 2 / 255  # a nearly black pixel still counts, as in the official uint8 reading
    dilated = ndimage.binary_dilation(mask > 0, structure=morphology.disk(radius)) if radius else mask > 0
    expected = filters.gaussian(dilated.astype(np.float64), sigma=5, mode="nearest", truncate=4.0)
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    feathered = feather_mask(torch.from_numpy(mask)[None, None], radius)
    assert torch.allclose(feathered[0, 0], torch.from_numpy(expected).float(), atol=1e-5)


def test_rgba_alpha_is_dropped_as_the_official_code_or_composited_on_request(tmp_path):
    array = np.zeros((16, 20, 4), dtype=np.uint8)
    array[..., 2] = 255  # blue everywhere, transparent on the right half
    array[:, :10, 3] = 255
    path = write_image(tmp_path / "rgba.png", array)
    dropped = SingleImageDataModule(str(path), max_size=20, min_size=12).images[0]
    composited = SingleImageDataModule(str(path), max_size=20, min_size=12, composite_alpha=True).images[0]
    blue, white = torch.tensor([-1.0, -1.0, 1.0]), torch.ones(3)
    assert torch.allclose(dropped[:, 0, -1], blue) and torch.allclose(composited[:, 0, -1], white)
    assert torch.allclose(composited[:, 0, 0], blue)


def test_injection_is_prepared_at_the_training_size(tiny_image, tmp_path):
    mask = write_image(tmp_path / "mask.png", np.full((10, 10), 255, dtype=np.uint8))
    data = SingleImageDataModule(str(tiny_image), max_size=32, min_size=12, inject_path=str(tiny_image),
                                 inject_scale=2, inject_mask_path=str(mask))  # fmt: skip
    batch = next(iter(data.predict_dataloader()))
    shape = data.pyramid_shapes[-1]
    assert batch["inject"].shape[-2:] == shape and batch["inject_mask"].shape[-2:] == shape
    assert torch.equal(batch["inject_mask"], torch.ones_like(batch["inject_mask"]))  # all white stays all white
    stop_scale = len(data.pyramid_shapes) - 1
    assert abs(data.pyramid_ratio - (12 / 25) ** (1 / stop_scale)) < 1e-9  # (min_size / short side) ** (1 / S)
    with pytest.raises(ValueError, match="inject_path=.* generates at the training size: sample_scale"):
        SingleImageDataModule(str(tiny_image), inject_path=str(tiny_image), sample_scale=(1.0, 2.0),
                              max_size=32, min_size=12).predict_dataloader()  # fmt: skip
