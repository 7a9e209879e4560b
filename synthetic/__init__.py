"""Small datasets drawn for tests, benchmarks and the README's experiments, written in the real
on-disk layouts so that the DataModules' own reading code is what runs. Not installed with the
package; importable from the repository root, and runnable as `python -m synthetic KIND ROOT`.

images: patterns, painted label maps, single images and clips; datasets: CIFAR, CIFAR-C,
ImageNet(-C) trees; faces: drawn CelebA faces, their masks and the pixel oracle; street_scenes:
GTAV and Cityscapes trees.
"""

from synthetic.datasets import (
    class_pattern_images,
    write_cifar,
    write_cifar_arrays,
    write_cifar_c,
    write_corruption_suite,
    write_imagenet,
    write_imagenet_c,
)
from synthetic.faces import (
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
from synthetic.images import ANALOGY_PALETTES, moving_square_clip, paint, pattern_image, write_clip, write_image
from synthetic.street_scenes import (
    SCENE_LABEL_IDS,
    draw_street_scene,
    write_cityscapes,
    write_gtav,
    write_label,
    write_segmentation_shift,
)

__all__ = [
    "ANALOGY_PALETTES",
    "FACE_BACKGROUNDS",
    "FACE_GLASSES_COLOURS",
    "FACE_GLASSES_SHAPES",
    "FACE_HAIR_COLOURS",
    "FACE_OBJECTS",
    "FACE_OBJECT_STYLES",
    "FACE_POSES",
    "FACE_SMILE_SHAPES",
    "SCENE_LABEL_IDS",
    "class_pattern_images",
    "draw_face_with_masks",
    "draw_street_scene",
    "face_measurements",
    "face_object_colours",
    "moving_square_clip",
    "paint",
    "pattern_image",
    "read_face_factors",
    "read_planted_factors",
    "sample_face_factors",
    "write_cifar",
    "write_cifar_arrays",
    "write_cifar_c",
    "write_cityscapes",
    "write_clip",
    "write_corruption_suite",
    "write_gtav",
    "write_image",
    "write_imagenet",
    "write_imagenet_c",
    "write_label",
    "write_segmentation_shift",
    "write_synthetic_celeba",
]
