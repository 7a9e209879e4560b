import os

import pytest

from datamodules.synthetic import pattern_image, write_image

os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture
def tiny_image(tmp_path):
    """A 28x36 structured PNG."""
    return write_image(tmp_path / "tiny.png", pattern_image(28, 36))
