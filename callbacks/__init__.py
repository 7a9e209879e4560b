"""Callbacks shared by all methods: progress, sample media, prediction files."""

from callbacks.checkpoint import ResumableCheckpoint
from callbacks.fid_kid import FIDKID
from callbacks.miou import MeanIoU
from callbacks.prediction_writer import ImagePredictionWriter
from callbacks.progress import PyramidProgressBar
from callbacks.samples import SampleGrid
from callbacks.sifid import SIFID

__all__ = [
    "FIDKID",
    "SIFID",
    "MeanIoU",
    "ImagePredictionWriter",
    "PyramidProgressBar",
    "ResumableCheckpoint",
    "SampleGrid",
]
