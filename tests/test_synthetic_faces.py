"""The synthetic CelebA-layout faces: the real file formats, and an oracle that reads every planted factor back."""

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.celeba import CELEBA_ATTRIBUTES, load_face, read_celeba
from datamodules.synthetic import (
    FACE_BACKGROUNDS,
    FACE_HAIR_COLOURS,
    FACE_POSES,
    read_face_factors,
    read_planted_factors,
    write_synthetic_celeba,
)

COUNT = 120


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    return write_synthetic_celeba(tmp_path_factory.mktemp("celeba"), count=COUNT, seed=3)


@pytest.fixture(scope="module")
def planted(faces):
    return read_planted_factors(faces)


@pytest.mark.parametrize("cropped", [True, False], ids=["crop178", "squash"])
@pytest.mark.parametrize("size", [32, 64, 128])
def test_oracle_reads_every_planted_factor(faces, planted, size, cropped):
    names, truth = planted
    images = torch.stack(
        [load_face(faces / "img_align_celeba" / name, 178 if cropped else None, size) for name in names]
    )
    read = read_face_factors(images, cropped=cropped)
    for factor in ("eyeglasses", "smiling", "mustache", "hair", "background", "pose"):
        assert read[factor].shape == (COUNT,)
        accuracy = (read[factor] == truth[factor]).float().mean().item()
        assert accuracy >= 0.98, f"{factor} read with accuracy {accuracy:.3f} at {size}px (cropped={cropped})"


def test_oracle_follows_a_mirrored_face(faces, planted):
    """Flipping the images left-right swaps the left and right poses and keeps the other factors."""
    names, truth = planted
    images = torch.stack([load_face(faces / "img_align_celeba" / name, 178, 64) for name in names])
    flipped = read_face_factors(images.flip(-1))
    assert torch.equal(flipped["pose"], 2 - truth["pose"])
    for factor in ("eyeglasses", "smiling", "mustache", "hair", "background"):
        assert torch.equal(flipped[factor], truth[factor]), factor


def test_factors_are_balanced_and_independent(planted):
    _, truth = planted
    assert 0.3 < truth["eyeglasses"].float().mean() < 0.7
    assert 0.3 < truth["smiling"].float().mean() < 0.7
    assert not (truth["mustache"] & ~truth["male"]).any(), "a mustache needs a male face"
    assert truth["mustache"].any()
    for factor, names in (("hair", FACE_HAIR_COLOURS), ("background", FACE_BACKGROUNDS), ("pose", FACE_POSES)):
        assert set(truth[factor].tolist()) == set(range(len(names)))


def test_attribute_file_marks_exactly_the_planted_values(faces, planted):
    names, truth = planted
    index = read_celeba(faces)
    assert [path.name for path in index.files] == names
    column = {name: i for i, name in enumerate(CELEBA_ATTRIBUTES)}
    expected = {
        "Eyeglasses": truth["eyeglasses"], "Smiling": truth["smiling"], "Male": truth["male"],
        "Mustache": truth["mustache"], "No_Beard": ~truth["mustache"],
        "Black_Hair": truth["hair"] == 0, "Blond_Hair": truth["hair"] == 1, "Brown_Hair": truth["hair"] == 2,
        "Gray_Hair": truth["hair"] == 3,
    }  # fmt: skip
    for name, values in expected.items():
        assert np.array_equal(index.attributes[:, column[name]], values.numpy()), name
    untouched = [column[name] for name in CELEBA_ATTRIBUTES if name not in expected and name != "Young"]
    assert not index.attributes[:, untouched].any()
    assert 0 < index.attributes[:, column["Young"]].mean() < 1
    assert np.bincount(index.partition, minlength=3).tolist() == [96, 12, 12]  # 80/10/10 by index
    assert (np.diff(index.partition) >= 0).all()


def test_real_text_formats_and_jpeg_size(faces):
    lines = (faces / "list_attr_celeba.txt").read_text().splitlines()
    assert lines[0] == str(COUNT)
    assert lines[1].split() == list(CELEBA_ATTRIBUTES)
    assert lines[2].startswith("000001.jpg ") and len(lines[2].split()) == 41
    assert set(lines[2].split()[1:]) <= {"1", "-1"}
    assert (faces / "list_eval_partition.txt").read_text().splitlines()[0] == "000001.jpg 0"
    for name in ("000001.jpg", f"{COUNT:06d}.jpg"):
        with Image.open(faces / "img_align_celeba" / name) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (178, 218))


def test_same_seed_same_faces_and_no_two_faces_alike(tmp_path):
    first = write_synthetic_celeba(tmp_path / "one", count=12, seed=5)
    second = write_synthetic_celeba(tmp_path / "two", count=12, seed=5)
    for name in ("list_attr_celeba.txt", "factors.csv"):
        assert (first / name).read_text() == (second / name).read_text()
    images = [np.asarray(Image.open(first / "img_align_celeba" / f"{i:06d}.jpg")) for i in range(1, 13)]
    assert np.array_equal(images[0], np.asarray(Image.open(second / "img_align_celeba" / "000001.jpg")))
    assert all(not np.array_equal(images[0], other) for other in images[1:])
