"""LightningModules, one file per method."""

from lightning_modules.classifier import ImageClassifier
from lightning_modules.content_transfer import MaskContentTransfer
from lightning_modules.domain_intersection import DomainIntersectionDifference
from lightning_modules.hp_vae_gan import HPVAEGAN
from lightning_modules.one_shot_translation import OneShotTranslation
from lightning_modules.segmenter import SemanticSegmenter
from lightning_modules.singan import SinGAN
from lightning_modules.structural_analogy import StructuralAnalogy

__all__ = [
    "DomainIntersectionDifference",
    "HPVAEGAN",
    "ImageClassifier",
    "MaskContentTransfer",
    "OneShotTranslation",
    "SemanticSegmenter",
    "SinGAN",
    "StructuralAnalogy",
]
