"""The synthetic CelebA-layout faces: the real file formats, an oracle that reads every planted factor
back (and no object into a smear), and the ground-truth masks of the drawn objects."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter

from datamodules.celeba import CELEBA_ATTRIBUTES, read_celeba
from datamodules.two_domains import load_face, load_mask
from synthetic import (
    FACE_BACKGROUNDS,
    FACE_GLASSES_COLOURS,
    FACE_GLASSES_SHAPES,
    FACE_HAIR_COLOURS,
    FACE_OBJECT_STYLES,
    FACE_OBJECTS,
    FACE_POSES,
    FACE_SMILE_SHAPES,
    draw_face_with_masks,
    face_measurements,
    face_object_colours,
    read_face_factors,
    read_planted_factors,
    sample_face_factors,
    write_synthetic_celeba,
)

COUNT = 120
FACTOR_OF = {"Eyeglasses": "eyeglasses", "Mustache": "mustache", "Smiling": "smiling"}  # mask folder -> factor


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
    for flag, styles in FACE_OBJECT_STYLES.items():  # the object's own colour and shape, where it is
        for style in styles:
            where = truth[flag]
            accuracy = (read[style][where] == truth[style][where]).float().mean().item()
            assert accuracy >= 0.98, f"{style} read with accuracy {accuracy:.3f} at {size}px (cropped={cropped})"


def test_oracle_follows_a_mirrored_face(faces, planted):
    """Flipping the images left-right swaps the left and right poses and keeps the other factors."""
    names, truth = planted
    images = torch.stack([load_face(faces / "img_align_celeba" / name, 178, 64) for name in names])
    flipped = read_face_factors(images.flip(-1))
    assert torch.equal(flipped["pose"], 2 - truth["pose"])
    for factor in ("eyeglasses", "smiling", "mustache", "hair", "background"):
        assert torch.equal(flipped[factor], truth[factor]), factor
    for flag, styles in FACE_OBJECT_STYLES.items():
        for style in styles:
            assert torch.equal(flipped[style][truth[flag]], truth[style][truth[flag]]), style


SMEARS = {  # object, its colour, the smear's shape, its box around the object's centre (dx, top, dy, bottom), blur
    "dark band over the eyes": ("eyeglasses", (30, 30, 40), "rectangle", (40, 20, 40, 20), 4),
    "dark blob over the eyes": ("eyeglasses", (30, 30, 40), "ellipse", (42, 24, 42, 24), 4),
    "dark strip across both eyes": ("eyeglasses", (30, 30, 40), "rectangle", (38, 8, 38, 8), 2),  # lens-high
    "red blob at the mouth": ("smiling", (200, 35, 45), "ellipse", (30, 12, 30, 18), 3),
    "red band at the mouth": ("smiling", (200, 35, 45), "rectangle", (34, 14, 34, 16), 4),
}


def smeared_faces(directory, smear: str, count: int = 40) -> list:
    """Faces without glasses and smile, each with a blurred dark or red smear where the object would be.

    The smear's centre is the object's own: the face is drawn twice from the same random stream
    (the objects draw nothing from it), with the object for its mask and without it for the image.
    """
    factor, rgb, shape, (left, top, right, bottom), blur = SMEARS[smear]
    kind = {"eyeglasses": "Eyeglasses", "smiling": "Smiling"}[factor]
    factors = sample_face_factors(count, np.random.default_rng(7))
    paths = []
    for index in range(count):
        face = {key: values[index] for key, values in factors.items()} | {"eyeglasses": False, "smiling": False}
        _, masks = draw_face_with_masks(face | {factor: True}, np.random.default_rng(index))
        image, _ = draw_face_with_masks(face, np.random.default_rng(index))
        rows, columns = np.nonzero(masks[kind])
        x, y = columns.mean(), rows.min() if factor == "smiling" else rows.mean()  # the smile: its straight top
        layer = Image.new("L", (image.shape[1], image.shape[0]), 0)
        getattr(ImageDraw.Draw(layer), shape)((x - left, y - top, x + right, y + bottom), fill=255)
        layer = layer.filter(ImageFilter.GaussianBlur(blur))
        smeared = Image.composite(Image.new("RGB", layer.size, rgb), Image.fromarray(image), layer)
        paths.append(directory / f"{index:03d}.jpg")
        smeared.save(paths[-1], quality=95)
    return paths


@pytest.mark.parametrize("smear", list(SMEARS))
def test_oracle_reads_no_object_into_a_smear(tmp_path, smear):
    """A dark smear over the eyes or a red blob at the mouth has the object's colour where the object
    would be, so an oracle of region averages reads it as glasses or a smile (all of them: the
    core region is darker than the forehead by 0.8 to 1.3, or redder by 0.7 to 0.9); the shape
    checks read none of them (measured: 0 of 40 for each smear, size and loading). The strip
    across both eyes, as high as the wide lenses, is caught by the skin between the lenses
    alone: there it is 0.4 to 0.6 times as dark as the lenses, drawn glasses 0.28 at most."""
    factor, paths = SMEARS[smear][0], smeared_faces(tmp_path, smear)
    for size, cropped in ((32, True), (32, False), (64, True), (64, False)):
        images = torch.stack([load_face(path, 178 if cropped else None, size) for path in paths])
        measured = face_measurements(images, cropped=cropped)
        core = measured["darkness_lenses"] if factor == "eyeglasses" else measured["redness_mouth"]
        assert (core > 0.6).all(), f"the smear should cover the object's core with its colour ({size}, {cropped})"
        read = read_face_factors(images, cropped=cropped)[factor].float().mean().item()
        assert read <= 0.02, f"{smear}: {read:.2f} read as {factor} at {size}px (cropped={cropped})"


def test_factors_are_balanced_and_independent(planted):
    _, truth = planted
    assert 0.3 < truth["eyeglasses"].float().mean() < 0.7
    assert 0.3 < truth["smiling"].float().mean() < 0.7
    assert not (truth["mustache"] & ~truth["male"]).any(), "a mustache needs a male face"
    assert truth["mustache"].any()
    named = {"hair": FACE_HAIR_COLOURS, "background": FACE_BACKGROUNDS, "pose": FACE_POSES,
             "glasses_colour": FACE_GLASSES_COLOURS, "glasses_shape": FACE_GLASSES_SHAPES,
             "smile_shape": FACE_SMILE_SHAPES}  # fmt: skip
    for factor, names in named.items():
        assert set(truth[factor].tolist()) == set(range(len(names))), factor
    for flag, styles in FACE_OBJECT_STYLES.items():  # every style is drawn on some faces with the object
        for style in styles:
            assert set(truth[style][truth[flag]].tolist()) == set(range(len(named[style]))), style


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


# ---- object masks ---------------------------------------------------------------------------------


def read_mask(faces, kind, name):
    return np.asarray(Image.open(faces / "masks" / kind / name.replace(".jpg", ".png")))


def test_every_image_has_a_binary_mask_of_each_object_kind(faces, planted):
    names, _ = planted
    assert sorted(path.name for path in (faces / "masks").iterdir()) == sorted(FACE_OBJECTS)
    for kind in FACE_OBJECTS:
        assert sorted(path.name for path in (faces / "masks" / kind).iterdir()) == [
            name.replace(".jpg", ".png") for name in names
        ]
    for name in (names[0], names[-1]):
        for kind in FACE_OBJECTS:
            with Image.open(faces / "masks" / kind / name.replace(".jpg", ".png")) as mask:
                assert (mask.format, mask.mode, mask.size) == ("PNG", "L", (178, 218))
                assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}


def test_a_mask_is_non_empty_exactly_when_its_object_is_planted(faces, planted):
    names, truth = planted
    for kind in FACE_OBJECTS:
        present = torch.tensor([bool(read_mask(faces, kind, name).any()) for name in names])
        assert torch.equal(present, truth[FACTOR_OF[kind]]), kind
        assert present.any() and not present.all()


def test_masks_mark_exactly_the_object_pixels_of_the_flat_drawing():
    """Without pixel grain, a pixel has its object's colour exactly where the object's mask is 255."""
    rng = np.random.default_rng(11)
    factors = sample_face_factors(40, rng)
    drawn = {kind: 0 for kind in FACE_OBJECTS}
    for index in range(40):
        face = {key: values[index] for key, values in factors.items()}
        image, masks = draw_face_with_masks(face, rng, grain=0)
        for kind, rgb in face_object_colours(face).items():
            assert masks[kind].shape == (218, 178) and masks[kind].dtype == np.uint8
            assert np.array_equal((image == np.array(rgb)).all(-1), masks[kind] == 255), (index, kind)
            drawn[kind] += int(masks[kind].any())
    assert all(count > 5 for count in drawn.values()), drawn


def test_masks_agree_with_the_objects_in_the_jpegs(faces, planted):
    """Full size: the object-coloured pixels near a mask are that mask (IoU); at 64 px, cropped to 178
    as DID loads faces, the masked pixels have the object's colour and the pixels just outside do not."""
    names, truth = planted
    colours = [face_object_colours({key: values[i] for key, values in truth.items()}) for i in range(COUNT)]
    for kind in FACE_OBJECTS:
        for index in [i for i in range(COUNT) if truth[FACTOR_OF[kind]][i]][:10]:
            name, rgb = names[index], colours[index][kind]
            image = np.asarray(Image.open(faces / "img_align_celeba" / name), dtype=np.float64)
            mask = torch.from_numpy(read_mask(faces, kind, name) > 0)
            near = F.max_pool2d(mask[None].float(), 9, 1, 4)[0].bool().numpy()  # within 4 pixels
            coloured = (np.linalg.norm(image - np.array(rgb), axis=-1) < 50) & near
            iou = (coloured & mask.numpy()).sum() / (coloured | mask.numpy()).sum()
            # measured down to 0.89: JPEG halves the colour resolution, which blurs the navy and
            # maroon glasses' edges
            assert iou > 0.85, f"{kind} mask of {name}: IoU {iou:.3f} with the object-coloured pixels"
    images = torch.stack([load_face(faces / "img_align_celeba" / name, 178, 64) for name in names])
    luminance = (images * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1)  # [N, 64, 64]
    skin = (images - torch.tensor([232, 190, 160])[:, None, None] / 127.5 + 1).norm(dim=1) < 0.3
    for kind in FACE_OBJECTS:
        rgb = torch.tensor([colour[kind] for colour in colours])[:, :, None, None]  # [N, 3, 1, 1]
        masks = torch.stack(
            [load_mask(faces / "masks" / kind / name.replace(".jpg", ".png"), 178, 64) for name in names]
        )
        assert torch.equal(masks.flatten(1).any(1), truth[FACTOR_OF[kind]]), kind  # still empty exactly without it
        inside = masks[:, 0].bool()
        ring = F.max_pool2d(masks, 3, 1, 1)[:, 0].bool() & ~inside
        distance = (images - (rgb / 127.5 - 1)).norm(dim=1)
        assert distance[inside].mean() < 0.3, kind  # measured 0.11 to 0.17
        assert distance[ring].mean() > 1.0, kind  # measured 1.3 to 2.0
        if kind != "Smiling":  # glasses and moustache are dark: far darker than the face's skin
            assert luminance[skin].mean() - luminance[inside].mean() > 1.0, kind  # measured 1.15 to 1.25


def test_images_do_not_depend_on_writing_masks(tmp_path):
    with_masks = write_synthetic_celeba(tmp_path / "with", count=8, seed=2)
    without = write_synthetic_celeba(tmp_path / "without", count=8, seed=2, masks=False)
    assert not (without / "masks").exists()
    for path in sorted((with_masks / "img_align_celeba").iterdir()):
        assert path.read_bytes() == (without / "img_align_celeba" / path.name).read_bytes()
    for name in ("factors.csv", "list_attr_celeba.txt", "list_eval_partition.txt"):
        assert (with_masks / name).read_text() == (without / name).read_text()
