"""Callbacks shared by all methods: progress, sample media, prediction files, metrics."""

from callbacks.checkpoint import ResumableCheckpoint
from callbacks.fid_kid import FIDKID
from callbacks.mask_iou import MaskIoU
from callbacks.miou import MeanIoU
from callbacks.perceptual import ContentStyleDistances
from callbacks.prediction_writer import (
    ClassPredictionWriter,
    ImagePredictionWriter,
    SegmentationPredictionWriter,
    VideoPredictionWriter,
)
from callbacks.progress import IterationProgressBar
from callbacks.samples import SampleGrid
from callbacks.sifid import SIFID
from callbacks.translation import TranslationAccuracy
from callbacks.video_metrics import VideoDiversity, VideoSIFID

__all__ = [
    "ClassPredictionWriter",
    "ContentStyleDistances",
    "FIDKID",
    "SIFID",
    "MaskIoU",
    "MeanIoU",
    "ImagePredictionWriter",
    "IterationProgressBar",
    "ResumableCheckpoint",
    "SampleGrid",
    "SegmentationPredictionWriter",
    "TranslationAccuracy",
    "VideoDiversity",
    "VideoPredictionWriter",
    "VideoSIFID",
]
