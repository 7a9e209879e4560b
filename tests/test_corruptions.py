"""The corruption suite and the test sets of the real-data experiment (benchmarks/padain_digits.py)."""

import numpy as np
import pytest

from benchmarks.padain_digits import STYLES, styled_test_sets
from datamodules.cifar import read_corruption
from datamodules.corruptions import CORRUPTION_FUNCTIONS
from synthetic import class_pattern_images, write_corruption_suite


@pytest.mark.parametrize("name", sorted(CORRUPTION_FUNCTIONS))
def test_corruptions_keep_the_layout_and_grow_with_severity(name):
    images = class_pattern_images(np.arange(6) % 3, 3)
    rng = np.random.default_rng(0)
    changes = []
    for severity in range(1, 6):
        corrupted = CORRUPTION_FUNCTIONS[name](images, severity, rng)
        assert corrupted.shape == images.shape and corrupted.dtype == np.uint8
        changes.append(np.abs(corrupted.astype(float) - images).mean())
    assert changes[0] > 0 and changes[-1] > changes[0]


def test_suite_is_read_back_as_cifar_c(tmp_path):
    labels = np.arange(4) % 2
    write_corruption_suite(tmp_path, class_pattern_images(labels, 2), labels)
    images, read_labels = read_corruption(tmp_path, "pixelate", 2)
    assert images.shape == (20, 32, 32, 3) and np.array_equal(read_labels, np.tile(labels, 5))


def test_digit_styles_keep_each_digit_and_change_its_style():
    sets, labels = styled_test_sets()
    assert list(sets) == ["clean", *STYLES] and labels.shape == (360,) and np.bincount(labels).min() >= 35
    assert all(images.shape == (360, 32, 32, 3) and images.dtype == np.uint8 for images in sets.values())
    clean = sets["clean"].astype(np.float64)
    strokes = clean[..., 0]
    assert np.array_equal(sets["inverted"], 255 - sets["clean"])
    assert np.allclose(sets["low_contrast"], np.round(0.35 * 255 + 0.3 * clean), atol=1)
    for image, stroke in zip(sets["colour"].astype(np.float64), strokes):  # background + (ink - background) * stroke
        slopes, intercepts = np.polyfit(stroke.ravel() / 255, image.reshape(-1, 3), 1)  # per channel
        fitted = intercepts + np.outer(stroke.ravel() / 255, slopes)
        assert np.abs(fitted - image.reshape(-1, 3)).max() <= 1 and np.abs(slopes).mean() >= 99
    # every style moves the pixels far from the clean digits (clean - style, mean absolute: 65 to 186)
    for name in STYLES:
        assert np.abs(sets[name].astype(np.float64) - clean).mean() > 50, name
