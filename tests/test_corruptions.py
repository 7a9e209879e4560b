"""The corruption suite and the real-data experiment's data preparation."""

import numpy as np
import pytest

from benchmarks.padain_digits import digits_split
from datamodules.cifar import read_corruption
from datamodules.corruptions import CORRUPTION_FUNCTIONS
from datamodules.synthetic import class_pattern_images, write_corruption_suite


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


def test_digits_are_split_stratified_at_32_pixels():
    (train_images, train_labels), (test_images, test_labels) = digits_split()
    assert train_images.shape == (1437, 32, 32, 3) and test_images.shape == (360, 32, 32, 3)
    assert np.bincount(test_labels).min() >= 35  # about 36 of each digit
