"""The standard FID Inception-v3 network, loaded from a local file and never from a checkpoint.

FID, KID and SIFID use torch-fidelity's port of the TensorFlow Inception-v3
("inception-v3-compat"). Its weights file is looked up in the usual torch hub cache
(`$TORCH_HOME/hub/checkpoints/`) or at a configured path; when it is absent and cannot be
downloaded, the error names the exact file and where to put it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"


def inception_weights(path: str | None = None, download: bool = True) -> Path:
    """Path of the Inception weights: `path`, else the torch hub cache (downloading once if allowed)."""
    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"Inception weights not found at {path} (expected the file {INCEPTION_FILE})")
        return Path(path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if cached.is_file():
        return cached
    if download:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(INCEPTION_URL, str(cached), progress=False)
            return cached
        except Exception as error:  # no network, proxy, disk: all end in the same instruction
            reason = f" (download failed: {error})"
    else:
        reason = ""
    raise FileNotFoundError(
        f"Inception weights {INCEPTION_FILE} are missing{reason}. Download {INCEPTION_URL} on a machine with "
        f"network access and place it at {cached} (or set TORCH_HOME, or pass weights_path=<file>)."
    )


def load_inception(features: list[str], weights_path: str | None = None) -> nn.Module:
    """torch-fidelity's Inception-v3 returning `features` (e.g. ["2048"]), in eval mode, frozen."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    network = FeatureExtractorInceptionV3(
        "inception-v3-compat", features, feature_extractor_weights_path=str(inception_weights(weights_path))
    )
    return network.eval().requires_grad_(False)


class InceptionPool(nn.Module):
    """uint8 images [N, 3, H, W] -> pooled Inception features [N, dim] (dim in 64, 192, 768, 2048)."""

    def __init__(self, dim: int = 2048, weights_path: str | None = None) -> None:
        super().__init__()
        self.num_features = dim
        self.network = load_inception([str(dim)], weights_path)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)[0].reshape(images.shape[0], -1)


class InceptionSpatial(nn.Module):
    """uint8 images [N, 3, H, W] -> spatial Inception activations [N, C, h, w] for SIFID.

    `channels=64`: the activations before the first max-pool (Conv2d_2b_3x3), as the released
    SinGAN SIFID code does; `channels=192`: before the second max-pool (Conv2d_4a_3x3), as
    the paper describes. Images are not resized.
    """

    def __init__(self, channels: int = 64, weights_path: str | None = None) -> None:
        super().__init__()
        if channels not in (64, 192):
            raise ValueError(f"SIFID features have 64 or 192 channels, not {channels}")
        network = load_inception(["64"], weights_path)
        layers = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"]
        if channels == 192:
            layers += ["MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
        self.layers = nn.Sequential(*(getattr(network, name) for name in layers))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() - 128) / 128  # the [-1, 1] input range of the TensorFlow Inception
        return self.layers(x)
