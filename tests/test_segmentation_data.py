"""GTAV -> Cityscapes segmentation data: label mapping, readers, transforms and the DataModule's batches,
on small trees written in the real layouts."""

import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules import GTAVCityscapesDataModule
from datamodules.paired_transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    colour_jitter,
    normalize_image,
    random_flip,
    random_scale_crop,
    resize,
)
from datamodules.segmentation_files import cityscapes_pairs, gtav_pairs, load_pair, read_label
from dfgen.cityscapes import CITYSCAPES_LABEL_TO_TRAIN_ID, cityscapes_palette, colourise, label_ids_to_train_ids
from synthetic import (
    SCENE_LABEL_IDS,
    draw_street_scene,
    pattern_image,
    write_cityscapes,
    write_gtav,
    write_image,
    write_label,
    write_segmentation_shift,
)

# label id -> train id of the 19 evaluated classes, written out independently of the module's table
EVALUATED = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
             27: 14, 28: 15, 31: 16, 32: 17, 33: 18}  # fmt: skip
SCENE_TRAIN_IDS = {0, 2, 10, 13, 255}  # road, building, sky, car, and the ignored ego vehicle
GTAV_SIZE, CITYSCAPES_SIZE = (48, 28), (64, 32)  # (w, h) of the written trees
SMALL = {"source_shape": (18, 32), "target_shape": (16, 32), "test_shape": (16, 32), "batch_size": 4}


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """A GTAV tree (palette labels) and a Cityscapes tree (train 6, val 4) that no test changes."""
    root = tmp_path_factory.mktemp("segmentation")
    gtav = write_gtav(root / "gtav", count=6, size=GTAV_SIZE, seed=0)
    cityscapes = write_cityscapes(root / "cityscapes", {"train": 6, "val": 4}, CITYSCAPES_SIZE, seed=1)
    pseudo = root / "pseudo"
    for image, label in cityscapes_pairs(cityscapes, "train"):
        name = image.name.removesuffix("_leftImg8bit.png")
        write_label(pseudo / f"{name}.png", np.asarray(label_ids_to_train_ids(read_label(label))))
    return gtav, cityscapes, pseudo


@pytest.fixture
def damaged(tmp_path):
    """Small trees that a test may damage: (gtav, cityscapes)."""
    gtav = write_gtav(tmp_path / "gtav", count=3, size=GTAV_SIZE, seed=2)
    return gtav, write_cityscapes(tmp_path / "cityscapes", {"train": 2, "val": 2}, CITYSCAPES_SIZE, seed=3)


def batch_of(datamodule, seed=0):
    return datamodule.training_batch(torch.Generator().manual_seed(seed))


# ---- label ids and colours -------------------------------------------------------------------


def test_label_ids_map_to_the_19_train_ids_and_everything_else_to_255():
    assert {k: v for k, v in CITYSCAPES_LABEL_TO_TRAIN_ID.items() if v != 255} == EVALUATED
    assert set(CITYSCAPES_LABEL_TO_TRAIN_ID) == set(range(-1, 34))
    ids = np.arange(256, dtype=np.uint8)
    mapped = label_ids_to_train_ids(ids)
    assert isinstance(mapped, np.ndarray) and mapped.dtype == np.uint8 and mapped.shape == (256,)
    expected = np.array([EVALUATED.get(i, 255) for i in range(256)])
    assert np.array_equal(mapped, expected)
    assert label_ids_to_train_ids(np.array([-1, 7, 26], dtype=np.int8)).tolist() == [255, 0, 13]
    tensor = torch.tensor([[-1, 7, 33], [34, 300, 26]])
    mapped = label_ids_to_train_ids(tensor)
    assert isinstance(mapped, torch.Tensor) and mapped.dtype == torch.int64
    assert mapped.tolist() == [[255, 0, 18], [255, 255, 13]]


def test_colourise_uses_the_cityscapes_colours_and_black_for_ignored():
    palette = cityscapes_palette()
    assert palette.shape == (19, 3) and palette.dtype == np.uint8
    assert palette[0].tolist() == [128, 64, 128] and palette[10].tolist() == [70, 130, 180]  # road, sky
    assert palette[13].tolist() == [0, 0, 142] and palette[18].tolist() == [119, 11, 32]  # car, bicycle
    assert len({tuple(colour) for colour in palette}) == 19
    train_ids = np.array([[0, 13], [255, 18]], dtype=np.uint8)
    colours = colourise(train_ids)
    assert colours.shape == (2, 2, 3) and colours.dtype == np.uint8
    assert colours[0, 0].tolist() == [128, 64, 128] and colours[0, 1].tolist() == [0, 0, 142]
    assert colours[1, 0].tolist() == [0, 0, 0] and colours[1, 1].tolist() == [119, 11, 32]
    with pytest.raises(ValueError, match="19"):
        colourise(np.array([[19]]))


# ---- readers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["P", "L"])
def test_gtav_labels_are_read_as_raw_ids_in_both_modes(tmp_path, mode):
    root = write_gtav(tmp_path / "gtav", count=2, size=GTAV_SIZE, seed=5, labels_mode=mode)
    pairs = gtav_pairs(root)
    assert [(image.name, label.name) for image, label in pairs] == [("00001.png",) * 2, ("00002.png",) * 2]
    with Image.open(pairs[0][1]) as opened:
        assert opened.mode == mode
    _, drawn = draw_street_scene(GTAV_SIZE, np.random.default_rng(5))  # the first scene of seed 5
    assert np.array_equal(read_label(pairs[0][1]), drawn)
    assert set(np.unique(drawn)) <= set(SCENE_LABEL_IDS.values())
    image, train_ids = load_pair(*pairs[0])
    assert image.shape == (3, GTAV_SIZE[1], GTAV_SIZE[0]) and image.min() >= 0 and image.max() <= 1
    expected = np.vectorize(lambda label_id: EVALUATED.get(int(label_id), 255))(drawn)
    assert train_ids.dtype == torch.int64 and np.array_equal(train_ids.numpy(), expected)


def test_colour_coded_label_is_rejected_with_its_name(tmp_path):
    path = write_image(tmp_path / "label.png", pattern_image(8, 8))  # RGB
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_label(path)


def test_gtav_label_of_another_size_is_resized_to_its_image_by_nearest_neighbour(damaged):
    gtav, _ = damaged
    image_path, label_path = gtav_pairs(gtav)[1]
    full = read_label(label_path)
    small = full[::2, ::2]  # 24x14
    write_label(label_path, small, "P")
    image, train_ids = load_pair(image_path, label_path, resize_label_to_image=True)
    assert train_ids.shape == image.shape[-2:] == (GTAV_SIZE[1], GTAV_SIZE[0])
    expected = label_ids_to_train_ids(np.repeat(np.repeat(small, 2, axis=0), 2, axis=1))
    assert np.array_equal(train_ids.numpy(), expected)
    # the DataModule reads it the same way and makes full batches of the three images
    datamodule = GTAVCityscapesDataModule(gtav, damaged[1], **{**SMALL, "batch_size": 3})
    assert batch_of(datamodule)["labels"].shape == (3, 18, 32)


def test_cityscapes_size_mismatch_names_both_files(damaged):
    gtav, cityscapes = damaged
    image_path, label_path = cityscapes_pairs(cityscapes, "val")[1]
    write_label(label_path, read_label(label_path)[::2, ::2])
    with pytest.raises(ValueError) as from_pairs:
        cityscapes_pairs(cityscapes, "val")
    with pytest.raises(ValueError) as from_datamodule:  # at construction, before any decoding
        GTAVCityscapesDataModule(gtav, cityscapes, **{**SMALL, "batch_size": 2})
    with pytest.raises(ValueError) as from_loading:
        load_pair(image_path, label_path)
    for caught in (from_pairs, from_datamodule, from_loading):
        message = str(caught.value)
        assert str(image_path) in message and str(label_path) in message
        assert "64x32" in message and "32x16" in message


@pytest.mark.parametrize("missing", ["label", "image"])
def test_cityscapes_missing_partner_names_both_files(damaged, missing):
    _, cityscapes = damaged
    image_path, label_path = cityscapes_pairs(cityscapes, "val")[0]
    (label_path if missing == "label" else image_path).unlink()
    with pytest.raises(FileNotFoundError) as caught:
        cityscapes_pairs(cityscapes, "val")
    message = str(caught.value)
    assert str(image_path) in message and str(label_path) in message and f"{missing} is missing" in message


@pytest.mark.parametrize("missing", ["label", "image"])
def test_gtav_missing_partner_names_both_files(damaged, missing):
    gtav, _ = damaged
    image_path, label_path = gtav_pairs(gtav)[2]
    (label_path if missing == "label" else image_path).unlink()
    with pytest.raises(FileNotFoundError) as caught:
        gtav_pairs(gtav)
    message = str(caught.value)
    assert str(image_path) in message and str(label_path) in message and f"{missing} is missing" in message


def test_empty_split_and_image_folders_name_the_folder_and_layout(damaged):
    gtav, cityscapes = damaged
    folder = cityscapes / "leftImg8bit" / "val"
    shutil.rmtree(folder)
    (folder / "aachen").mkdir(parents=True)
    with pytest.raises(ValueError, match=re.escape(str(folder))) as caught:
        cityscapes_pairs(cityscapes, "val")
    assert "leftImg8bit/<split>/<city>/<name>_leftImg8bit.png" in str(caught.value)
    with pytest.raises(FileNotFoundError, match=re.escape(str(cityscapes / "leftImg8bit" / "test"))):
        GTAVCityscapesDataModule(gtav, cityscapes, eval_split="test", **{**SMALL, "batch_size": 2})
    for path in (gtav / "images").iterdir():
        path.unlink()
    with pytest.raises(ValueError, match=re.escape(str(gtav / "images"))) as caught:
        gtav_pairs(gtav)
    assert "labels/<name>.png" in str(caught.value)


# ---- transforms ------------------------------------------------------------------------------


def test_resize_is_bicubic_for_images_and_nearest_for_labels():
    image = torch.rand(3, 8, 12)
    label = torch.randint(0, 3, (8, 12)) * 10
    resized_image, resized_label = resize(image, label, (6, 4))
    assert resized_image.shape == (3, 4, 6) and resized_label.shape == (4, 6)
    assert torch.equal(resized_label, label[1::2, 1::2])  # the source pixel under each output centre
    # PIL's BICUBIC, as the official transforms resize (a cubic filter stretched by the downscale factor)
    for size in ((6, 4), (20, 13)):
        pil = [np.asarray(Image.fromarray(channel.numpy()).resize(size, Image.BICUBIC)) for channel in image]
        expected = torch.from_numpy(np.stack(pil)).clamp(0, 1)
        assert torch.allclose(resize(image, label, size)[0], expected, atol=1e-5)
    with pytest.raises(ValueError, match="differ in size"):
        resize(image, label[:4], (6, 4))


def official_crop_offsets(seed: int, padded: tuple[int, int], crop: tuple[int, int]) -> tuple[int, int]:
    """(top, left) that random_scale_crop draws from torch.Generator(seed), after its scale draw."""
    rng = torch.Generator().manual_seed(seed)
    torch.rand((), generator=rng)
    top = int(torch.randint(padded[1] - crop[1] + 1, (), generator=rng))
    return top, int(torch.randint(padded[0] - crop[0] + 1, (), generator=rng))


def test_random_scale_crop_scales_from_the_own_size_and_pads_both_sides_as_the_official_crop():
    """RandomScale then RandomCrop(pad_if_needed) of `FADA/core/datasets/transform.py`, computed directly:
    a 10x8 pair at scale 0.5 is 5x4, padded by the shortfall on both sides to 15x12 (image 0, label
    255), then cropped at 10x8."""
    image, label = torch.rand(3, 8, 10), torch.randint(0, 19, (8, 10))
    small_image, small_label = resize(image, label, (5, 4))
    padded_image, padded_label = torch.zeros(3, 12, 15), torch.full((12, 15), 255)
    padded_image[:, 4:8, 5:10], padded_label[4:8, 5:10] = small_image, small_label
    for seed in range(4):
        top, left = official_crop_offsets(seed, (15, 12), (10, 8))
        cropped = random_scale_crop(image, label, (0.5, 0.5), (10, 8), torch.Generator().manual_seed(seed))
        assert torch.equal(cropped[0], padded_image[:, top : top + 8, left : left + 10])
        assert torch.equal(cropped[1], padded_label[top : top + 8, left : left + 10])
    # sizes truncate as int(): 10x8 at 0.75 is 7x6 (rounding would give 8x6), cropped whole at 7x6
    whole = random_scale_crop(image, label, (0.75, 0.75), (7, 6), torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(whole, resize(image, label, (7, 6))))


def test_random_flip_moves_image_and_label_together():
    image, label = torch.arange(6.0).reshape(1, 2, 3).repeat(3, 1, 1), torch.arange(6).reshape(2, 3)
    flips = 0
    for seed in range(20):
        flipped_image, flipped_label = random_flip(image, label, torch.Generator().manual_seed(seed))
        assert torch.equal(flipped_image[0].long(), flipped_label)
        flips += int(not torch.equal(flipped_label, label))
    assert 0 < flips < 20


def test_colour_jitter_is_a_function_of_the_generator_and_stays_in_range():
    image = torch.rand(3, 6, 6)
    first, again = (colour_jitter(image, 0.5, 0.5, 0.5, 0.2, torch.Generator().manual_seed(1)) for _ in range(2))
    other = colour_jitter(image, 0.5, 0.5, 0.5, 0.2, torch.Generator().manual_seed(2))
    assert torch.equal(first, again) and not torch.allclose(first, other)
    assert first.min() >= 0 and first.max() <= 1 and not torch.allclose(first, image)
    assert torch.allclose(colour_jitter(image, 0, 0, 0, 0, torch.Generator()), image, atol=1e-6)
    with pytest.raises(ValueError, match="hue"):
        colour_jitter(image, 0.5, 0.5, 0.5, 0.7, torch.Generator())


# ---- the DataModule's training batches -------------------------------------------------------


def check_images(images, shape, normalised):
    assert images.shape == shape and images.dtype == torch.float32
    low, high = (min((0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)), 2.7) if normalised else (0, 1)
    assert images.min() >= low - 1e-5 and images.max() <= high and images.std() > 0.05


def check_labels(labels, shape, allowed=SCENE_TRAIN_IDS):
    assert labels.shape == shape and labels.dtype == torch.int64
    assert set(labels.unique().tolist()) <= allowed and len(labels.unique()) > 1


def test_source_batches_and_their_determinism(trees):
    gtav, cityscapes, _ = trees
    options = {**SMALL, "flip": True, "colour_jitter": True}
    datamodule = GTAVCityscapesDataModule(gtav, cityscapes, normalize=False, **options)
    batch = batch_of(datamodule)
    assert set(batch) == {"images", "labels"}
    check_images(batch["images"], (4, 3, 18, 32), normalised=False)
    check_labels(batch["labels"], (4, 18, 32))
    again, other = batch_of(datamodule), batch_of(datamodule, seed=1)
    assert all(torch.equal(batch[key], again[key]) for key in batch)
    assert not torch.equal(batch["images"], other["images"])
    normalised = batch_of(GTAVCityscapesDataModule(gtav, cityscapes, **options))
    check_images(normalised["images"], (4, 3, 18, 32), normalised=True)
    assert torch.allclose(normalised["images"], normalize_image(batch["images"]), atol=1e-5)
    assert torch.equal(normalised["labels"], batch["labels"])


def test_source_batch_without_augmentation_is_the_resized_pairs(trees):
    gtav, cityscapes, _ = trees
    datamodule = GTAVCityscapesDataModule(gtav, cityscapes, normalize=False, **SMALL)
    batch = batch_of(datamodule, seed=3)
    picks = torch.randperm(6, generator=torch.Generator().manual_seed(3))[:4].tolist()
    for position, index in enumerate(picks):
        image, label = resize(*load_pair(*gtav_pairs(gtav)[index]), (32, 18))
        assert torch.equal(batch["images"][position], image) and torch.equal(batch["labels"][position], label)


def test_source_jitter_comes_before_the_resize_as_in_the_official_transforms(trees):
    """`build_transform` of the official code lists ColorJitter first: on the full image, then Resize."""
    gtav, cityscapes, _ = trees
    datamodule = GTAVCityscapesDataModule(gtav, cityscapes, normalize=False, colour_jitter=True, **SMALL)
    batch = batch_of(datamodule, seed=2)
    rng = torch.Generator().manual_seed(2)
    picks = torch.randperm(6, generator=rng)[:4].tolist()
    for position, index in enumerate(picks):
        image, label = load_pair(*gtav_pairs(gtav)[index])
        expected = resize(colour_jitter(image, 0.5, 0.5, 0.5, 0.2, rng), label, (32, 18))
        assert torch.equal(batch["images"][position], expected[0])
        assert torch.equal(batch["labels"][position], expected[1])


def test_adversarial_batches_hold_half_source_half_target(trees):
    gtav, cityscapes, _ = trees
    datamodule = GTAVCityscapesDataModule(gtav, cityscapes, stage="adversarial", flip=True, **SMALL)
    batch = batch_of(datamodule)
    assert set(batch) == {"images", "labels", "target_images"}
    check_images(batch["images"], (2, 3, 18, 32), normalised=True)
    check_labels(batch["labels"], (2, 18, 32))
    check_images(batch["target_images"], (2, 3, 16, 32), normalised=True)
    assert all(torch.equal(batch[key], batch_of(datamodule)[key]) for key in batch)
    with pytest.raises(ValueError, match="even"):
        GTAVCityscapesDataModule(gtav, cityscapes, stage="adversarial", **{**SMALL, "batch_size": 3})
    with pytest.raises(ValueError, match="source_root"):
        GTAVCityscapesDataModule(None, cityscapes, stage="adversarial", **SMALL)


def test_self_distill_batches_read_the_pseudo_labels(trees, tmp_path):
    gtav, cityscapes, pseudo = trees
    options = {**SMALL, "stage": "self_distill", "flip": True, "colour_jitter": True}
    datamodule = GTAVCityscapesDataModule(None, cityscapes, pseudo_label_dir=str(pseudo), **options)
    batch = batch_of(datamodule)
    assert set(batch) == {"images", "labels"}
    check_images(batch["images"], (4, 3, 16, 32), normalised=True)
    check_labels(batch["labels"], (4, 16, 32))
    assert all(torch.equal(batch[key], batch_of(datamodule)[key]) for key in batch)
    # constant pseudo-labels (pole, 5) of half the image's size: every unpadded pixel reads 5
    constant = tmp_path / "constant"
    for path in pseudo.iterdir():
        write_label(constant / path.name, np.full((16, 32), 5, dtype=np.uint8), "P")
    options |= {"scale_range": (0.75, 1.25), "pseudo_label_dir": str(constant)}
    labels = batch_of(GTAVCityscapesDataModule(None, cityscapes, **options))["labels"]
    assert set(labels.unique().tolist()) <= {5, 255} and (labels == 5).float().mean() > 0.5
    unscaled = batch_of(GTAVCityscapesDataModule(None, cityscapes, **(options | {"scale_range": (1.0, 1.0)})))
    assert (unscaled["labels"] == 5).all()


def test_self_distill_crops_come_from_the_full_resolution_image(trees):
    """At scale 1 a crop of target_shape is a window of the image at its own size (64x32 here; 2048x1024
    in Cityscapes), as the official RandomScale scales relative to the image's own size."""
    _, cityscapes, pseudo = trees
    options = {**SMALL, "stage": "self_distill", "scale_range": (1.0, 1.0), "normalize": False}
    datamodule = GTAVCityscapesDataModule(None, cityscapes, pseudo_label_dir=str(pseudo), **options)
    batch = batch_of(datamodule, seed=5)
    rng = torch.Generator().manual_seed(5)
    picks = torch.randperm(6, generator=rng)[:4].tolist()
    for position, index in enumerate(picks):
        image, label = load_pair(datamodule.target_images[index], datamodule.pseudo_labels[index], label_ids=False)
        torch.rand((), generator=rng)  # the scale
        top = int(torch.randint(32 - 16 + 1, (), generator=rng))
        left = int(torch.randint(64 - 32 + 1, (), generator=rng))
        assert torch.equal(batch["images"][position], image[:, top : top + 16, left : left + 32])
        assert torch.equal(batch["labels"][position], label[top : top + 16, left : left + 32])


def test_self_distill_pseudo_label_errors(trees, tmp_path):
    _, cityscapes, pseudo = trees
    options = {**SMALL, "stage": "self_distill"}
    with pytest.raises(ValueError, match="pseudo_label_dir"):
        GTAVCityscapesDataModule(None, cityscapes, **options)
    partial = shutil.copytree(pseudo, tmp_path / "partial")
    removed = sorted(partial.iterdir())[0]
    removed.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(removed))) as caught:
        GTAVCityscapesDataModule(None, cityscapes, pseudo_label_dir=str(partial), **options)
    assert removed.stem + "_leftImg8bit.png" in str(caught.value)
    label_ids = shutil.copytree(pseudo, tmp_path / "label_ids")
    for path in label_ids.iterdir():  # label ids, not train ids: 26 is not a train id
        write_label(path, np.full((32, 64), 26, dtype=np.uint8))
    datamodule = GTAVCityscapesDataModule(None, cityscapes, pseudo_label_dir=str(label_ids), **options)
    with pytest.raises(ValueError, match=r"value 26; expected train ids"):
        batch_of(datamodule)


def test_train_loader_streams_the_batches_of_seed_and_iteration(trees):
    gtav, cityscapes, _ = trees
    datamodule = GTAVCityscapesDataModule(gtav, cityscapes, batch_seed=7, **{**SMALL, "batch_size": 2})
    stream = iter(datamodule.train_dataloader())
    for iteration in range(2):
        expected = datamodule.training_batch(torch.Generator().manual_seed(7 * 1_000_003 + iteration))
        assert torch.equal(next(stream)["images"], expected["images"])


# ---- evaluation and prediction ---------------------------------------------------------------


def test_validation_items_keep_the_full_resolution_label(trees):
    gtav, cityscapes, _ = trees
    datamodule = GTAVCityscapesDataModule(gtav, cityscapes, eval_batch_size=2, num_eval=3, **SMALL)
    batches = list(datamodule.val_dataloader())
    assert [len(batch["index"]) for batch in batches] == [2, 1]
    batch = batches[0]
    check_images(batch["images"], (2, 3, 16, 32), normalised=True)
    check_labels(batch["labels"], (2, 32, 64))
    assert batch["index"].tolist() == [0, 1]
    label_path = cityscapes_pairs(cityscapes, "val")[1][1]
    assert np.array_equal(batch["labels"][1].numpy(), label_ids_to_train_ids(read_label(label_path)))
    assert len(list(datamodule.test_dataloader())) == 2


def test_predict_items_carry_names_and_original_sizes(trees, tmp_path):
    gtav, cityscapes, _ = trees
    datamodule = GTAVCityscapesDataModule(gtav, cityscapes, eval_batch_size=2, **SMALL)
    batch = next(iter(datamodule.predict_dataloader()))
    assert set(batch) == {"images", "sizes", "names"}
    assert batch["names"] == ["aachen_000000_000019", "aachen_000001_000019"]
    assert batch["sizes"].tolist() == [[32, 64], [32, 64]] and batch["images"].shape == (2, 3, 16, 32)
    folder = tmp_path / "predict"
    write_image(folder / "b.png", pattern_image(20, 30))
    write_image(folder / "a.jpg", pattern_image(40, 24))
    datamodule = GTAVCityscapesDataModule(gtav, cityscapes, predict_dir=str(folder), normalize=False, **SMALL)
    batches = list(datamodule.predict_dataloader())
    assert [batch["names"] for batch in batches] == [["a"], ["b"]]
    assert [batch["sizes"].tolist() for batch in batches] == [[[40, 24]], [[20, 30]]]
    check_images(batches[1]["images"], (1, 3, 16, 32), normalised=False)


def test_construction_errors_are_early_and_clear(trees):
    gtav, cityscapes, _ = trees
    with pytest.raises(ValueError, match="stage='target'"):
        GTAVCityscapesDataModule(gtav, cityscapes, stage="target")
    with pytest.raises(ValueError, match="fewer than the 8"):
        GTAVCityscapesDataModule(gtav, cityscapes, batch_size=8)
    with pytest.raises(FileNotFoundError, match="predict_dir"):
        GTAVCityscapesDataModule(gtav, cityscapes, predict_dir=str(gtav / "absent"), **SMALL)
    with pytest.raises(ValueError, match="source_shape"):
        GTAVCityscapesDataModule(gtav, cityscapes, source_shape=(10, 0))


# ---- the generated task with a domain shift --------------------------------------------------


def test_segmentation_shift_writes_both_layouts_with_a_colour_shift(tmp_path):
    gtav, cityscapes = write_segmentation_shift(tmp_path, count_source=4, count_target=2, size=(32, 16), seed=0)
    assert len(gtav_pairs(gtav)) == 4
    assert len(cityscapes_pairs(cityscapes, "train")) == len(cityscapes_pairs(cityscapes, "val")) == 2
    source = torch.stack([load_pair(*pair)[0] for pair in gtav_pairs(gtav)])
    target = torch.stack([load_pair(*pair)[0] for pair in cityscapes_pairs(cityscapes, "train")])
    for labels in [load_pair(*pair)[1] for pair in gtav_pairs(gtav) + cityscapes_pairs(cityscapes, "val")]:
        assert set(labels.unique().tolist()) <= SCENE_TRAIN_IDS and {0, 10} <= set(labels.unique().tolist())
    # the target's sky is not blue: its red channel leads where the source's blue one does
    source_sky = [image[:, label == 10].mean(1) for image, label in (load_pair(*p) for p in gtav_pairs(gtav))]
    target_sky = [
        image[:, label == 10].mean(1) for image, label in (load_pair(*p) for p in cityscapes_pairs(cityscapes, "val"))
    ]
    assert all(sky.argmax() == 2 for sky in source_sky) and all(sky.argmax() == 0 for sky in target_sky)
    assert target.mean() > source.mean()
