"""CelebA reading, attribute expressions, and the two-domain DataModules on synthetic CelebA-layout faces."""

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from datamodules.attribute_expressions import parse_attribute_expression
from datamodules.celeba import CELEBA_ATTRIBUTES, read_celeba
from datamodules.celeba_domains import CelebAAttributeDomains, celeba_domain_files
from datamodules.domain_labels import CelebADomainLabels
from datamodules.two_domains import load_face, load_mask
from datamodules.unpaired_folders import FolderDomains
from synthetic import pattern_image, write_image, write_synthetic_celeba

COLUMN = {name: index for index, name in enumerate(CELEBA_ATTRIBUTES)}
SMALL = {"size": 32, "batch_size": 4, "num_test": 8, "eval_batch_size": 8}  # fast CelebAAttributeDomains


@pytest.fixture(scope="module")
def celeba(tmp_path_factory):
    return write_synthetic_celeba(tmp_path_factory.mktemp("celeba"), count=200, seed=0)


@pytest.fixture
def tiny_celeba(tmp_path):
    """A 16-image tree that a test may damage."""
    return write_synthetic_celeba(tmp_path / "celeba", count=16, seed=1)


def column(index, name):
    return index.attributes[:, COLUMN[name]]


# ---- attribute expressions -------------------------------------------------------------------


def truth_table(names):
    return np.array(list(itertools.product([False, True], repeat=len(names))))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("a | b & c", lambda a, b, c: a | (b & c)),  # & binds tighter than |
        ("a & b | c", lambda a, b, c: (a & b) | c),
        ("(a | b) & c", lambda a, b, c: (a | b) & c),
        ("~a & b", lambda a, b, c: ~a & b),  # ~ binds tighter than &
        ("~(a & b)", lambda a, b, c: ~(a & b)),
        ("~~a|~ c", lambda a, b, c: a | ~c),
        ("((a))", lambda a, b, c: a),
        ("a & b & ~c | ~a & (b | c)", lambda a, b, c: (a & b & ~c) | (~a & (b | c))),
    ],
)
def test_expression_precedence_and_parentheses(expression, expected):
    values = truth_table("abc")
    mask = parse_attribute_expression(expression, names=("a", "b", "c"))(values)
    assert mask.dtype == bool and mask.shape == (8,)
    assert np.array_equal(mask, expected(*values.T))


def test_expression_over_celeba_names_including_one_starting_with_a_digit():
    values = np.zeros((3, 40), dtype=bool)
    values[0, COLUMN["5_o_Clock_Shadow"]] = True
    values[1, [COLUMN["Smiling"], COLUMN["Eyeglasses"]]] = True
    values[2, COLUMN["Smiling"]] = True
    assert parse_attribute_expression("5_o_Clock_Shadow")(values).tolist() == [True, False, False]
    mask = parse_attribute_expression("Smiling & ~Eyeglasses | 5_o_Clock_Shadow")(values)
    assert mask.tolist() == [True, False, True]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("Smilling & Male", "unknown attribute 'Smilling'; did you mean Smiling"),
        ("Gnome", "unknown attribute 'Gnome'; expected one of 5_o_Clock_Shadow"),
        ("(Smiling & Male", "'(' at position 0 is never closed"),
        ("Smiling & Male)", "')' at position 14 has no matching '('"),
        ("Smiling Male", "unexpected 'Male' at position 8"),
        ("Smiling &", "unexpected end of the expression; expected an attribute name"),
        ("& Smiling", "unexpected '&' at position 0"),
        ("()", "unexpected ')' at position 1"),
        ("(Smiling Male)", "unexpected 'Male' at position 9; expected '&', '|' or ')'"),
        ("Smiling + Male", "unexpected character '+' at position 8"),
    ],
)
def test_expression_errors_name_the_expression_and_the_problem(expression, message):
    with pytest.raises(ValueError) as caught:
        parse_attribute_expression(expression)
    assert f"attribute expression {expression!r}" in str(caught.value)
    assert message in str(caught.value)


def test_expression_rejects_values_of_the_wrong_width():
    with pytest.raises(ValueError, match=r"expected \[N, 40\]"):
        parse_attribute_expression("Smiling")(np.zeros((2, 39), dtype=bool))


# ---- the CelebA files ----------------------------------------------------------------------------


def test_read_celeba_gives_files_attributes_and_partition(celeba):
    index = read_celeba(celeba)
    assert len(index.files) == 200 and index.files[0] == celeba / "img_align_celeba" / "000001.jpg"
    assert all(path.is_file() for path in index.files)
    assert index.attributes.shape == (200, 40) and index.attributes.dtype == bool
    lines = (celeba / "list_attr_celeba.txt").read_text().splitlines()
    assert np.array_equal(index.attributes[4], [value == "1" for value in lines[6].split()[1:]])
    assert index.partition.shape == (200,) and index.partition.tolist() == [0] * 160 + [1] * 20 + [2] * 20


def test_read_celeba_errors_name_the_path(tiny_celeba, tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere" / "img_align_celeba")):
        read_celeba(tmp_path / "nowhere")
    attribute_file = tiny_celeba / "list_attr_celeba.txt"
    text = attribute_file.read_text()
    attribute_file.unlink()
    with pytest.raises(FileNotFoundError, match=f"{attribute_file} is missing; expected img_align_celeba"):
        read_celeba(tiny_celeba)
    lines = text.splitlines()

    def fails_with(changed_lines, message):
        attribute_file.write_text("\n".join(changed_lines) + "\n")
        with pytest.raises(ValueError) as caught:
            read_celeba(tiny_celeba)
        assert str(attribute_file) in str(caught.value) and message in str(caught.value)

    fails_with(lines[:5] + [lines[5] + " 1"] + lines[6:], "line 6: 41 values after the file name; expected 40")
    fails_with(lines[:7] + [lines[7].replace("-1", "0", 1)] + lines[8:], "line 8: value '0'; expected -1 or 1")
    renamed = [lines[0], lines[1].replace("Smiling", "Grinning")] + lines[2:]
    fails_with(renamed, "line 2: attribute names differ from the 40 CelebA names (missing ['Smiling'], unexpected")
    fails_with(["17"] + lines[1:], "line 1 announces 17 images but 16 rows follow")
    fails_with(["15"] + lines[1:], "line 1 announces 15 images but line 18 holds one more")
    fails_with(["sixteen"] + lines[1:], "line 1: 'sixteen'; expected the number of images")


def test_partition_is_needed_only_for_the_official_split(tiny_celeba):
    partition_file = tiny_celeba / "list_eval_partition.txt"
    lines = partition_file.read_text().splitlines()
    partition_file.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    celeba_domain_files(tiny_celeba, "Smiling", "~Smiling", "first_n", num_test=1)  # does not read it
    with pytest.raises(ValueError, match=r"line 1: '000002.jpg', but image 1 of list_attr_celeba.txt is '000001.jpg'"):
        celeba_domain_files(tiny_celeba, "Smiling", "~Smiling", "official")
    partition_file.unlink()
    with pytest.raises(FileNotFoundError, match="list_eval_partition.txt is missing"):
        celeba_domain_files(tiny_celeba, "Smiling", "~Smiling", "official")


# ---- domains and splits -------------------------------------------------------------------------


def test_first_n_split_takes_the_first_matches_of_each_domain_as_test(celeba):
    index = read_celeba(celeba)
    files = celeba_domain_files(celeba, "Smiling & ~Eyeglasses", "~Smiling & Eyeglasses", "first_n", num_test=8)
    in_a = column(index, "Smiling") & ~column(index, "Eyeglasses")
    in_b = ~column(index, "Smiling") & column(index, "Eyeglasses")
    for domain, member in (("a", in_a), ("b", in_b)):
        matches = [index.files[i] for i in np.flatnonzero(member)]
        assert files[f"test_{domain}"] == matches[:8]
        assert files[f"train_{domain}"] == matches[8:]


def test_official_split_follows_the_partition_file(celeba):
    index = read_celeba(celeba)
    files = celeba_domain_files(celeba, "Eyeglasses", "~Eyeglasses", "official")
    glasses = column(index, "Eyeglasses")
    for domain, member in (("a", glasses), ("b", ~glasses)):
        assert files[f"train_{domain}"] == [index.files[i] for i in np.flatnonzero(member & (index.partition == 0))]
        assert files[f"test_{domain}"] == [index.files[i] for i in np.flatnonzero(member & (index.partition == 2))]


def test_an_image_matching_both_expressions_belongs_to_a(celeba):
    index = read_celeba(celeba)
    files = celeba_domain_files(celeba, "Smiling", "Male", "first_n", num_test=4)
    in_b = column(index, "Male") & ~column(index, "Smiling")
    assert files["test_b"] + files["train_b"] == [index.files[i] for i in np.flatnonzero(in_b)]


def test_domain_errors(celeba):
    with pytest.raises(ValueError, match=r"domain A \('Bald & Smiling'\) in .*list_attr_celeba.txt matches no image"):
        CelebAAttributeDomains(str(celeba), domain_a="Bald & Smiling", **SMALL)
    with pytest.raises(ValueError, match=r"domain B \('Smiling'\) .* matches no image \(images matching domain A"):
        CelebAAttributeDomains(str(celeba), domain_a="Smiling", domain_b="Smiling", **SMALL)
    with pytest.raises(ValueError, match="unknown attribute 'Eyeglases'; did you mean Eyeglasses"):
        CelebAAttributeDomains(str(celeba), domain_b="Eyeglases", **SMALL)
    with pytest.raises(ValueError, match=r"split='random'; expected one of 'first_n', 'official'"):
        CelebAAttributeDomains(str(celeba), split="random", **SMALL)
    with pytest.raises(ValueError, match="none for train with split='first_n'"):
        CelebAAttributeDomains(str(celeba), **{**SMALL, "num_test": 150})
    with pytest.raises(
        ValueError, match=r"domain train_a \('Smiling & ~Eyeglasses', train by first 8 .*batch_size=150"
    ):
        CelebAAttributeDomains(str(celeba), **{**SMALL, "batch_size": 150})


def test_a_corrupt_jpeg_fails_at_construction_naming_the_file(celeba, tmp_path):
    root = tmp_path / "celeba"
    shutil.copytree(celeba, root)
    victim = celeba_domain_files(root, "Smiling & ~Eyeglasses", "~Smiling & Eyeglasses", num_test=8)["train_b"][3]
    victim.write_bytes(np.random.default_rng(0).integers(0, 256, size=5000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=f"{victim}: not a readable image"):
        CelebAAttributeDomains(str(root), **SMALL)
    CelebAAttributeDomains(str(root), verify_images=False, **SMALL)  # the check can be skipped


# ---- training batches ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def domains(celeba):
    return CelebAAttributeDomains(str(celeba), **SMALL)


def batch(datamodule, seed):
    return datamodule.training_batch(torch.Generator().manual_seed(seed))


def test_training_batches_are_resumable_and_of_the_right_shape(domains):
    first, again, other = batch(domains, 7), batch(domains, 7), batch(domains, 8)
    for domain in ("a", "b"):
        assert first[domain].shape == (4, 3, 32, 32) and first[domain].dtype == torch.float32
        assert first[domain].min() >= -1 and first[domain].max() <= 1
        assert torch.equal(first[domain], again[domain])
        assert not torch.equal(first[domain], other[domain])


def nearest_training_image(drawn, images):
    """For each drawn image [K, 3, S, S], the index of the identical image of `images` [N, 3, S, S] (-1: none)."""
    distances = (drawn[:, None] - images[None]).abs().flatten(2).amax(2)  # [K, N]
    return torch.where(distances.min(1).values < 1e-6, distances.argmin(1), -1)


def test_training_batches_draw_distinct_images_of_each_domain_and_flip_some(celeba):
    plain = CelebAAttributeDomains(str(celeba), flip=False, **{**SMALL, "batch_size": 6})
    flipping = CelebAAttributeDomains(str(celeba), **{**SMALL, "batch_size": 6})
    mirrored = 0
    for domain in ("a", "b"):
        images = torch.stack([load_face(path, 178, 32) for path in plain.files[f"train_{domain}"]])
        picks = nearest_training_image(batch(plain, 3)[domain], images)
        assert (picks >= 0).all() and len(set(picks.tolist())) == 6  # drawn without replacement
        drawn = batch(flipping, 3)[domain]
        same, flipped = nearest_training_image(drawn, images), nearest_training_image(drawn, images.flip(-1))
        assert ((same >= 0) | (flipped >= 0)).all()
        mirrored += int((flipped >= 0).sum())
    assert 0 < mirrored < 12


def test_in_memory_gives_the_batches_of_on_disk_loading(celeba, domains):
    cached = CelebAAttributeDomains(str(celeba), in_memory=True, **SMALL)
    assert cached.images["train_a"].cache is None  # filled on first use, not at construction
    for seed in (0, 1):
        on_disk, in_memory = batch(domains, seed), batch(cached, seed)
        for domain in ("a", "b"):
            torch.testing.assert_close(in_memory[domain], on_disk[domain], atol=1 / 127.5 + 1e-6, rtol=0)
    assert cached.images["train_a"].cache.dtype == torch.uint8
    pairs, cached_pairs = next(iter(domains.val_dataloader())), next(iter(cached.val_dataloader()))
    torch.testing.assert_close(cached_pairs["b"], pairs["b"], atol=1 / 127.5 + 1e-6, rtol=0)


def test_training_loader_gives_the_same_batches_with_worker_processes(celeba):
    batches = {}
    for workers in (0, 2):
        datamodule = CelebAAttributeDomains(str(celeba), num_workers=workers, batch_seed=5, **SMALL)
        loader = datamodule.train_dataloader()
        batches[workers] = list(itertools.islice(loader, 5))
        del loader  # stop the workers
    for k in range(5):
        assert torch.equal(batches[0][k]["a"], batches[2][k]["a"]) and torch.equal(
            batches[0][k]["b"], batches[2][k]["b"]
        )
    assert torch.equal(batches[0][0]["a"], batch(datamodule, 5 * 1_000_003)["a"])  # batch 0 of seed 5


# ---- evaluation and predict ------------------------------------------------------------------------


def test_evaluation_pairs(domains):
    loader = domains.val_dataloader()
    items = list(loader)
    assert len(loader.dataset) == 8  # min(num_test of A, num_test of B)
    assert items[0]["a"].shape == (8, 3, 32, 32) and items[0]["index"].tolist() == list(range(8))
    assert torch.equal(items[0]["a"][5], load_face(domains.files["test_a"][5], 178, 32))
    assert torch.equal(items[0]["b"][2], load_face(domains.files["test_b"][2], 178, 32))
    capped = CelebAAttributeDomains(domains.hparams.data_dir, num_eval=3, **SMALL).test_dataloader()
    assert len(capped.dataset) == 3


def test_predict_uses_the_given_folders(celeba, tmp_path):
    for index, name in enumerate(["c.png", "a.png", "b.jpg"]):
        write_image(tmp_path / "mine" / name, pattern_image(218 + index, 180, seed=index))
    (tmp_path / "mine" / "notes.txt").write_text("not an image")
    datamodule = CelebAAttributeDomains(str(celeba), predict_dir_a=str(tmp_path / "mine"), **SMALL)
    items = next(iter(datamodule.predict_dataloader()))
    assert items["a"].shape == (3, 3, 32, 32) and items["index"].tolist() == [0, 1, 2]
    for i, name in enumerate(["a.png", "b.jpg", "c.png"]):  # sorted
        assert torch.equal(items["a"][i], load_face(tmp_path / "mine" / name, 178, 32))
        assert torch.equal(items["b"][i], load_face(datamodule.files["test_b"][i], 178, 32))  # B from the test set
    both = CelebAAttributeDomains(
        str(celeba), predict_dir_a=str(tmp_path / "mine"), predict_dir_b=str(tmp_path / "mine"), **SMALL
    )
    items = next(iter(both.predict_dataloader()))
    assert torch.equal(items["a"], items["b"])
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing")):
        CelebAAttributeDomains(str(celeba), predict_dir_b=str(tmp_path / "missing"), **SMALL)


# ---- object masks -----------------------------------------------------------------------------------


def mask_of(image_path, mask_dir):
    return mask_dir / f"{image_path.stem}.png"


def two_tone(mask, object_rgb=(20, 40, 60), background_rgb=(230, 220, 200)):
    """An RGB image [H, W, 3] uint8: `object_rgb` where the bool mask [H, W] is set, else `background_rgb`."""
    return np.where(mask[..., None], np.array(object_rgb, dtype=np.uint8), np.array(background_rgb, dtype=np.uint8))


def shapes_mask(seed):
    """A 178x218 bool mask of a disc, a blob and lines 1 to 4 pixels wide, at random sub-pixel positions."""
    rng = np.random.default_rng(seed)
    canvas = Image.new("L", (178, 218), 0)
    draw = ImageDraw.Draw(canvas)
    draw.ellipse(tuple(rng.uniform(20, 60, size=2)) + tuple(rng.uniform(90, 130, size=2)), fill=255)
    draw.rounded_rectangle((100, 140, 160, 170), radius=6, fill=255)
    for width in range(1, 5):
        y0, y1 = rng.uniform(30, 200, size=2)
        draw.line((10, y0, 168, y1), fill=255, width=width)
    return np.asarray(canvas) > 0


@pytest.mark.parametrize(("crop_size", "size"), [(178, 64), (178, 32), (None, 64), (None, 200)])
def test_load_mask_marks_the_pixels_the_loaded_image_shows_as_object(tmp_path, crop_size, size):
    """On a two-tone image, each loaded pixel mixes the two colours; the mask is 1 exactly where the
    object's share of the mix is at least half, thin lines included (resized as a float, then thresholded)."""
    for seed in range(3):
        mask = shapes_mask(seed)
        write_image(tmp_path / "mask.png", (mask * 255).astype(np.uint8))
        write_image(tmp_path / "image.png", two_tone(mask))
        loaded = load_mask(tmp_path / "mask.png", crop_size, size)
        assert loaded.shape == (1, size, size) and loaded.dtype == torch.float32
        assert set(loaded.unique().tolist()) == {0.0, 1.0}
        image = load_face(tmp_path / "image.png", crop_size, size)
        colours = [
            torch.tensor(rgb, dtype=torch.float32)[:, None, None] / 127.5 - 1 for rgb in ((20, 40, 60), (230, 220, 200))
        ]
        share = ((image - colours[1]) / (colours[0] - colours[1])).mean(0)  # the object's weight per pixel
        clear = (share - 0.5).abs() > 1e-3  # leave out exact ties
        assert clear.float().mean() > 0.98
        assert torch.equal(loaded[0][clear], (share >= 0.5)[clear]), f"seed {seed}"


def test_load_mask_crops_like_load_face(tmp_path):
    """A mask covering only the rows that the 178 centre crop drops is empty when cropped, not when squashed."""
    mask = np.zeros((218, 178), dtype=np.uint8)
    mask[:20] = mask[-20:] = 255
    write_image(tmp_path / "edges.png", mask)
    assert not load_mask(tmp_path / "edges.png", 178, 32).any()
    squashed = load_mask(tmp_path / "edges.png", None, 32)
    assert squashed[0, :2].all() and squashed[0, -2:].all() and not squashed[0, 4:-4].any()


def test_load_mask_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "absent.png")):
        load_mask(tmp_path / "absent.png", 178, 32)
    (tmp_path / "notes.png").write_text("not a mask")
    with pytest.raises(ValueError, match=f"{tmp_path / 'notes.png'}: not a readable image"):
        load_mask(tmp_path / "notes.png", 178, 32)
    labels = np.zeros((218, 178), dtype=np.uint8)
    labels[50:90, 40:100] = 1
    write_image(tmp_path / "labels.png", labels)
    with pytest.raises(ValueError, match=f"{tmp_path / 'labels.png'}: mask values are 0 and 1; expected 0"):
        load_mask(tmp_path / "labels.png", 178, 32)
    write_image(tmp_path / "labels.png", labels * 255)
    assert load_mask(tmp_path / "labels.png", 178, 32).any()
    with pytest.raises(ValueError, match=r"labels\.png: 178x218 image is smaller than crop_size=200"):
        load_mask(tmp_path / "labels.png", 200, 32)


@pytest.fixture(scope="module")
def glasses_masks(celeba):
    return CelebAAttributeDomains(str(celeba), mask_dir=str(celeba / "masks" / "Eyeglasses"), **SMALL)


def test_evaluation_pairs_carry_the_masks_of_their_images(glasses_masks, domains):
    mask_dir = glasses_masks.hparams.data_dir + "/masks/Eyeglasses"
    items = next(iter(glasses_masks.val_dataloader()))
    plain = next(iter(domains.val_dataloader()))
    assert set(items) == {"a", "b", "index", "mask_a", "mask_b"}
    assert items["mask_a"].shape == items["mask_b"].shape == (8, 1, 32, 32)
    assert torch.equal(items["a"], plain["a"]) and torch.equal(items["b"], plain["b"])
    # A = "Smiling & ~Eyeglasses": no glasses to mark; B = "~Smiling & Eyeglasses": every face wears them
    assert not items["mask_a"].any()
    assert items["mask_b"].flatten(1).sum(1).min() > 20
    for i in (0, 5):
        expected = load_mask(mask_of(glasses_masks.files["test_b"][i], Path(mask_dir)), 178, 32)
        assert torch.equal(items["mask_b"][i], expected)
    # aligned with the images: the masked pixels of B are the dark glasses (black, navy or maroon:
    # mean luminance -0.46 measured), the others are not
    luminance = (items["b"] * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1, keepdim=True)
    inside = items["mask_b"].bool()
    assert luminance[inside].mean() < -0.35 and luminance[~inside].mean() > -0.2
    test = next(iter(glasses_masks.test_dataloader()))
    assert torch.equal(test["mask_b"], items["mask_b"])


def test_masks_leave_training_batches_alone_and_follow_predict(glasses_masks, domains):
    for seed in (0, 1):
        with_masks, without = batch(glasses_masks, seed), batch(domains, seed)
        assert set(with_masks) == {"a", "b"}
        assert torch.equal(with_masks["a"], without["a"]) and torch.equal(with_masks["b"], without["b"])
    predicted = next(iter(glasses_masks.predict_dataloader()))
    assert predicted["mask_b"].shape == (8, 1, 32, 32) and predicted["mask_b"].flatten(1).any(1).all()
    assert not predicted["mask_a"].any()
    assert "mask_a" not in next(iter(domains.predict_dataloader()))


def test_mask_dir_problems_fail_at_construction_naming_the_files(tiny_celeba):
    setup = {"domain_a": "Eyeglasses", "domain_b": "~Eyeglasses", "num_test": 2, "size": 32, "batch_size": 2}
    mask_dir = tiny_celeba / "masks" / "Eyeglasses"
    files = celeba_domain_files(tiny_celeba, "Eyeglasses", "~Eyeglasses", num_test=2)
    mask_of(files["train_a"][0], mask_dir).unlink()  # training images need no mask
    datamodule = CelebAAttributeDomains(str(tiny_celeba), mask_dir=str(mask_dir), **setup)
    assert next(iter(datamodule.val_dataloader()))["mask_a"].flatten(1).any(1).all()
    missing = mask_of(files["test_b"][1], mask_dir)
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=f"{missing}: mask file is missing; expected the mask of .*"):
        CelebAAttributeDomains(str(tiny_celeba), mask_dir=str(mask_dir), **setup)
    write_image(missing, np.zeros((218, 177), dtype=np.uint8))
    with pytest.raises(ValueError) as caught:
        CelebAAttributeDomains(str(tiny_celeba), mask_dir=str(mask_dir), **setup)
    assert f"{missing}: mask is 177x218 but its image {files['test_b'][1]} is 178x218" in str(caught.value)
    with pytest.raises(FileNotFoundError, match=f"mask_dir {tiny_celeba / 'nowhere'} is not a folder"):
        CelebAAttributeDomains(str(tiny_celeba), mask_dir=str(tiny_celeba / "nowhere"), **setup)


def test_only_the_evaluation_images_that_are_used_need_masks(tiny_celeba, tmp_path):
    """num_eval limits validation and test, but predict (by default the test images) pairs them all."""
    setup = {"domain_a": "Eyeglasses", "domain_b": "~Eyeglasses", "num_test": 2, "size": 32, "batch_size": 2}
    mask_dir = tiny_celeba / "masks" / "Smiling"
    files = celeba_domain_files(tiny_celeba, "Eyeglasses", "~Eyeglasses", num_test=2)
    mask_of(files["test_a"][1], mask_dir).unlink()
    with pytest.raises(FileNotFoundError, match=str(mask_of(files["test_a"][1], mask_dir))):
        CelebAAttributeDomains(str(tiny_celeba), mask_dir=str(mask_dir), num_eval=1, **setup)
    for index in range(2):  # predict from a folder of other images, which have their masks
        write_image(tmp_path / "mine" / f"own{index}.png", pattern_image(218, 178, seed=index))
        write_image(tmp_path / "mine_masks" / f"own{index}.png", np.full((218, 178), 255 * index, dtype=np.uint8))
    shutil.copy(mask_of(files["test_a"][0], mask_dir), tmp_path / "mine_masks")
    for path in files["test_b"]:
        shutil.copy(mask_of(path, mask_dir), tmp_path / "mine_masks")
    mine = {"predict_dir_a": str(tmp_path / "mine"), "mask_dir": str(tmp_path / "mine_masks")}
    datamodule = CelebAAttributeDomains(str(tiny_celeba), num_eval=1, **mine, **setup)
    predicted = next(iter(datamodule.predict_dataloader()))
    assert predicted["mask_a"].flatten(1).mean(1).tolist() == [0.0, 1.0]
    evaluated = next(iter(datamodule.val_dataloader()))
    assert evaluated["mask_a"].shape == (1, 1, 32, 32)


# ---- other datamodules ----------------------------------------------------------------------------


def test_folder_domains(tmp_path):
    counts = {"trainA": 5, "trainB": 6, "testA": 2, "testB": 3}
    for folder, count in counts.items():
        for index in range(count):
            write_image(tmp_path / folder / f"{index:02d}.png", pattern_image(48, 64, seed=index + 10 * count))
    datamodule = FolderDomains(str(tmp_path), size=16, batch_size=4, eval_batch_size=8)
    assert [len(datamodule.files[key]) for key in ("train_a", "train_b", "test_a", "test_b")] == [5, 6, 2, 3]
    first = batch(datamodule, 0)
    assert first["a"].shape == first["b"].shape == (4, 3, 16, 16)
    pairs = next(iter(datamodule.val_dataloader()))
    assert pairs["a"].shape == (2, 3, 16, 16)
    assert torch.equal(pairs["b"][1], load_face(tmp_path / "testB" / "01.png", None, 16))  # squashed, not cropped
    too_small = FolderDomains(str(tmp_path), size=16, crop_size=100, batch_size=4)
    with pytest.raises(ValueError, match=r"\.png: 64x48 image is smaller than crop_size=100"):
        batch(too_small, 0)
    shutil.rmtree(tmp_path / "testB")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "testB")):
        FolderDomains(str(tmp_path), size=16, batch_size=4)


def test_folder_domains_with_masks(tmp_path):
    for folder, prefix in (("trainA", "ta"), ("trainB", "tb"), ("testA", "a"), ("testB", "b")):
        for index in range(4):
            mask = shapes_mask(index)
            write_image(tmp_path / folder / f"{prefix}{index}.png", two_tone(mask))
            write_image(tmp_path / "masks" / f"{prefix}{index}.png", (mask * 255).astype(np.uint8))
    datamodule = FolderDomains(str(tmp_path), size=16, batch_size=2, mask_dir=str(tmp_path / "masks"))
    pairs = next(iter(datamodule.val_dataloader()))
    assert pairs["mask_a"].shape == pairs["mask_b"].shape == (4, 1, 16, 16)
    assert torch.equal(pairs["mask_b"][2], load_mask(tmp_path / "masks" / "b2.png", None, 16))  # squashed
    (tmp_path / "testB" / "b1.png").rename(tmp_path / "testB" / "a1.png")  # the name of a testA image
    with pytest.raises(ValueError, match=r"testA/a1\.png and .*testB/a1\.png would share the mask .*masks/a1\.png"):
        FolderDomains(str(tmp_path), size=16, batch_size=2, mask_dir=str(tmp_path / "masks"))


def test_celeba_domain_labels(celeba):
    datamodule = CelebADomainLabels(str(celeba), size=32, num_test=8, batch_size=8)
    domains = celeba_domain_files(celeba, "Smiling & ~Eyeglasses", "~Smiling & Eyeglasses", num_test=8)
    datamodule.setup("fit")
    train, test = datamodule.train_set, datamodule.test_sets[0]
    assert train.labels == [0] * len(domains["train_a"]) + [1] * len(domains["train_b"])
    assert test.labels == [0] * 8 + [1] * 8
    image, label = test[9]
    assert label == 1 and torch.equal(image, load_face(domains["test_b"][1], 178, 32))
    images, labels = next(iter(datamodule.train_dataloader()))
    assert images.shape == (8, 3, 32, 32) and labels.dtype == torch.int64
    assert datamodule.num_classes == 2
