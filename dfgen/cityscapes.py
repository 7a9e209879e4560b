"""Cityscapes metadata, the one source for the data, the segmenter and the mIoU: the 19 evaluated
classes, their colours, the ignore label, and the map from the 34 label ids to the train ids."""

from __future__ import annotations

import numpy as np
import torch

IGNORE_LABEL = 255
NUM_CLASSES = 19
CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip


# The 34 Cityscapes label ids (and -1, the licence plate) -> the 19 train ids; 255 is ignored.
CITYSCAPES_LABEL_TO_TRAIN_ID: dict[int, int] = {label_id: IGNORE_LABEL for label_id in range(-1, 34)} | {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip

_TRAIN_ID_TABLE = np.full(256, IGNORE_LABEL, dtype=np.uint8)
for _label_id, _train_id in CITYSCAPES_LABEL_TO_TRAIN_ID.items():
    if _label_id >= 0:
        _TRAIN_ID_TABLE[_label_id] = _train_id


def label_ids_to_train_ids(labels: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Cityscapes label ids -> train ids through a 256-entry lookup table; any id outside 0..255
    (e.g. -1) and every id of a class that is not evaluated becomes 255.

    A numpy array gives a uint8 array, a tensor an int64 tensor, of the same shape.
    """
    if isinstance(labels, torch.Tensor):
        table = torch.from_numpy(_TRAIN_ID_TABLE).long().to(labels.device)
        inside = (labels >= 0) & (labels <= 255)
        return torch.where(inside, table[labels.long().clamp(0, 255)], IGNORE_LABEL)
    labels = np.asarray(labels)
    if labels.dtype == np.uint8:
        return _TRAIN_ID_TABLE[labels]
    wide = labels.astype(np.int64)
    inside = (wide >= 0) & (wide <= 255)
    return np.where(inside, _TRAIN_ID_TABLE[np.clip(wide, 0, 255)], IGNORE_LABEL).astype(np.uint8)


def cityscapes_palette() -> np.ndarray:
    """The standard colours of the 19 train classes (CITYSCAPES_CLASSES order): uint8 [19, 3]."""
    return np.array(
        [
            (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
            (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
            (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
        ],
        dtype=np.uint8,
    )  # fmt: skip


def colourise(train_ids: np.ndarray) -> np.ndarray:
    """Train ids [H, W] (0..18, or 255 for ignored pixels) -> colours [H, W, 3] uint8; 255 is black.

    Raises ValueError for any other value (label ids, or logits' argmax over too many classes).
    """
    train_ids = np.asarray(train_ids)
    if train_ids.ndim != 2:
        raise ValueError(f"train ids of shape {train_ids.shape}; expected [H, W]")
    bad = ((train_ids < 0) | (train_ids >= NUM_CLASSES)) & (train_ids != IGNORE_LABEL)
    if bad.any():
        raise ValueError(f"value {train_ids[bad].flat[0]} in train ids; expected 0..{NUM_CLASSES - 1} or 255")
    table = np.zeros((256, 3), dtype=np.uint8)
    table[:NUM_CLASSES] = cityscapes_palette()
    return table[np.where(train_ids == IGNORE_LABEL, 255, train_ids).astype(np.intp)]
