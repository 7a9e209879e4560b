"""Content and style distances of translations (one-shot translation's style and drawing tasks).

Content distance: how far a translation's VGG-19 relu4_2 features are from its source's,
mean squared difference per element, averaged over images. Style distance (Gatys et al.):
the squared Frobenius distance between the Gram matrices of a translation's relu1_1 ..
relu5_1 features and the mean Gram matrices of reference images of the target domain,
summed over layers and averaged over translations. Both are sums over the set, so they are
exact under DDP.

The LightningModule's `validation_step` / `test_step` returns `dfgen.contract.SourceTranslationOutputs`,
{"sources": [B, C, H, W], "translations": [B, 3, H, W]} in [-1, 1]; the DataModule provides
`dfgen.contract.StyleReferences`, `style_references()` -> [N, 3, H, W], target-domain images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from torch import nn
from torchmetrics import MeanMetric

from callbacks.evaluation import SetMetric
from dfgen.contract import SourceTranslationOutputs, StyleReferences

VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's ImageNet VGG-19
STYLE_LAYERS = {1: "relu1_1", 6: "relu2_1", 11: "relu3_1", 20: "relu4_1", 29: "relu5_1"}  # index in vgg19().features
CONTENT_LAYER = 22  # relu4_2


class VGGFeatures(nn.Module):
    """images [B, 3, H, W] in [-1, 1] -> {"content": relu4_2, "style": [relu1_1 .. relu5_1]}.

    Args:
        weights_path: torchvision's `vgg19-dcbb9e9d.pth`; None looks in the torch hub cache.
    """

    def __init__(self, weights_path: str | None = None) -> None:
        super().__init__()
        from torchvision.models import vgg19

        path = Path(weights_path) if weights_path else Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"VGG-19 weights not found at {path}: download torchvision's {VGG19_FILE} "
                f"(https://download.pytorch.org/models/{VGG19_FILE}) and put it there, or pass weights_path=<file>"
            )
        network = vgg19()
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.layers = network.features[: max(STYLE_LAYERS) + 1]
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> dict[str, Any]:
        x = ((images + 1) / 2 - self.mean) / self.std
        features: dict[str, Any] = {"style": []}
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index in STYLE_LAYERS:
                features["style"].append(x)
            if index == CONTENT_LAYER:
                features["content"] = x
        return features


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices [B, C, C] of feature maps [B, C, H, W], normalised by C * H * W."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def as_rgb(images: torch.Tensor) -> torch.Tensor:
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


class ContentStyleDistances(SetMetric):
    """Logs `<stage>/content_distance` and `<stage>/style_distance` after validation and test.

    Args:
        feature_extractor: maps images to {"content": map, "style": [maps]}; None loads VGGFeatures.
        weights_path: VGG-19 weights file for the default extractor.
    """

    reads = SourceTranslationOutputs
    datamodule_needs = (StyleReferences,)

    def __init__(self, feature_extractor: nn.Module | None = None, weights_path: str | None = None) -> None:
        self.feature_extractor = feature_extractor if feature_extractor is not None else VGGFeatures(weights_path)
        self.feature_extractor.eval().requires_grad_(False)
        self.content = MeanMetric()
        self.style = MeanMetric()
        self.reference_grams: list[torch.Tensor] | None = None
        self.last: dict[str, float] = {}

    @torch.no_grad()
    def _start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        device = pl_module.device
        self.feature_extractor.to(device)
        self.content.to(device).reset()
        self.style.to(device).reset()
        if self.reference_grams is None:  # once per run: the references do not change
            references = trainer.datamodule.style_references().to(device)
            styles = self.feature_extractor(as_rgb(references))["style"]
            self.reference_grams = [gram(layer).mean(dim=0) for layer in styles]
        self.reference_grams = [g.to(device) for g in self.reference_grams]

    @torch.no_grad()
    def _update(self, outputs: SourceTranslationOutputs) -> None:
        sources = self.feature_extractor(as_rgb(outputs["sources"]))
        translations = self.feature_extractor(as_rgb(outputs["translations"]))
        content = (sources["content"] - translations["content"]).square().flatten(1).mean(dim=1)
        style = sum(
            (gram(layer) - reference).square().sum(dim=(1, 2))
            for layer, reference in zip(translations["style"], self.reference_grams)
        )
        self.content.update(content)
        self.style.update(style)

    def _finish(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.content.update_count == 0:
            return
        values = {f"{stage}/content_distance": self.content.compute(), f"{stage}/style_distance": self.style.compute()}
        self.last = {key: value.item() for key, value in values.items()}
        for key, value in values.items():
            pl_module.log(key, value.to(pl_module.device), sync_dist=False)
