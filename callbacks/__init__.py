"""Callbacks shared by all methods: progress, sample media, prediction files."""

from callbacks.checkpoint import ResumableCheckpoint
from callbacks.prediction_writer import ImagePredictionWriter
from callbacks.progress import PyramidProgressBar
from callbacks.samples import SampleGrid

__all__ = ["ImagePredictionWriter", "PyramidProgressBar", "ResumableCheckpoint", "SampleGrid"]
