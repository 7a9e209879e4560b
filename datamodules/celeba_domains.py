"""CelebA images split into two domains by attribute expressions (the DID and MBU setups).

Two domains A and B are defined by boolean expressions over the attribute names, e.g.
A = "Smiling & ~Eyeglasses" and B = "~Smiling & Eyeglasses".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.attribute_expressions import parse_attribute_expression
from datamodules.celeba import read_celeba
from datamodules.two_domains import TwoDomainDataModule
from dfgen.settings import AT_LEAST_1, OneOf, check_settings

SPLITS = ("first_n", "official")


def celeba_domain_files(
    data_dir: str | Path, domain_a: str, domain_b: str, split: str = "first_n", num_test: int = 64
) -> dict[str, list[Path]]:
    """The image files of domains A and B, keyed "train_a", "train_b", "test_a", "test_b".

    An image belongs to A when it satisfies `domain_a`, else to B when it satisfies
    `domain_b` (the official code's order, so overlapping expressions favour A).
    split "first_n": in attribute-file order, the first `num_test` images of each domain are
    its test set and the rest its training set (the official DID/MBU rule); "official": train
    = partition 0, test = partition 2 of list_eval_partition.txt (partition 1 is unused).
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; expected one of {SPLITS}")
    if split == "first_n" and num_test < 1:
        raise ValueError(f"num_test={num_test}; expected at least one test image per domain")
    index = read_celeba(data_dir)
    in_a = parse_attribute_expression(domain_a)(index.attributes)
    in_b = parse_attribute_expression(domain_b)(index.attributes) & ~in_a
    files = {}
    for domain, expression, member in (("a", domain_a, in_a), ("b", domain_b, in_b)):
        where = f"domain {domain.upper()} ({expression!r}) in {Path(data_dir) / 'list_attr_celeba.txt'}"
        positions = np.flatnonzero(member)
        if not len(positions):
            overlap = " (images matching domain A's expression go to A)" if domain == "b" else ""
            raise ValueError(f"{where} matches no image{overlap}")
        if split == "first_n":
            test, train = positions[:num_test], positions[num_test:]
        else:
            test, train = positions[index.partition[positions] == 2], positions[index.partition[positions] == 0]
        for part, chosen in (("train", train), ("test", test)):
            if not len(chosen):
                raise ValueError(f"{where}: {len(positions)} images but none for {part} with split={split!r}")
            files[f"{part}_{domain}"] = [index.files[position] for position in chosen]
    return files


class CelebAAttributeDomains(TwoDomainDataModule):
    """CelebA images split into domains A and B by attribute expressions (DID and MBU setups).

    Args:
        data_dir: the CelebA folder (img_align_celeba/, list_attr_celeba.txt, list_eval_partition.txt).
        domain_a: expression over CELEBA_ATTRIBUTES selecting A, e.g. "Smiling & ~Eyeglasses";
            ~ not, & and, | or, parentheses.
        domain_b: the same for B; an image matching both expressions belongs to A.
        split: "first_n" (the first num_test images of each domain, in file order, are its
            test set; the official code's rule) or "official" (train: partition 0, test:
            partition 2 of list_eval_partition.txt).
        num_test: test images per domain with split="first_n".
        size: images are size x size.
        crop_size: side of the centre crop taken before resizing (178: CelebA's face square, the
            DID recipe); None resizes the whole 178x218 image to a square (the MBU recipe).
        flip: flip each training image horizontally with probability 1/2.
        batch_size: images per domain per training step, drawn without replacement.
        batch_seed: seed of the training batches (rank r adds r).
        num_workers: loader processes (the same batches in the same order for any number).
        in_memory: decode every image once and keep it, resized, as uint8 (small data, CPU runs).
        eval_batch_size: batch size of the validation, test and predict loaders.
        num_eval: test pairs used by validation and test (None: all).
        predict_dir_a: a folder of images that predict uses as domain A (default: test A).
        predict_dir_b: the same for domain B (default: test B).
        verify_images: check every image file at construction (fails early, naming a file that
            is not an image or is truncated).
        mask_dir: a folder of object masks named <image stem>.png (e.g. masks/Eyeglasses/ of
            write_synthetic_celeba); evaluation items then carry "mask_a" and "mask_b" [1, size,
            size] in {0, 1}. Every evaluation image must have its mask (checked at construction).
    """

    setting_rules = TwoDomainDataModule.setting_rules | {"split": OneOf(SPLITS), "num_test": AT_LEAST_1}

    def __init__(
        self,
        data_dir: str,
        domain_a: str = "Smiling & ~Eyeglasses",
        domain_b: str = "~Smiling & Eyeglasses",
        split: str = "first_n",
        num_test: int = 64,
        size: int = 128,
        crop_size: int | None = 178,
        flip: bool = True,
        batch_size: int = 32,
        batch_seed: int = 0,
        num_workers: int = 0,
        in_memory: bool = False,
        eval_batch_size: int = 64,
        num_eval: int | None = None,
        predict_dir_a: str | None = None,
        predict_dir_b: str | None = None,
        verify_images: bool = True,
        mask_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_settings(self)
        files = celeba_domain_files(data_dir, domain_a, domain_b, split, num_test)
        rule = f"first {num_test} matches" if split == "first_n" else "official partition"
        definitions = {f"{part}_{d}": f"{e!r}, {part} by {rule}" for d, e in (("a", domain_a), ("b", domain_b))
                       for part in ("train", "test")}  # fmt: skip
        self._set_domains(files, definitions)
