"""SinGAN learns the training photograph: a known answer on a small real image.

Measured with seed 0 on CPU (assets/hubble_deep_field.jpg at 28x32, 5 scales, 100
iterations per scale, width 16): reconstruction PSNR 30.8 dB; RMSE of 8 samples to the
image 0.088-0.10 and between samples 0.084-0.09, against a reconstruction RMSE of 0.058.
Like every learning test it runs with 2 CPU threads on any machine (tests/conftest.py): with
1 thread the trajectory differs and the samples land 0.066-0.081 from each other, under the bar.
"""

import torch
from lightning.pytorch import Trainer, seed_everything

from datamodules.single_image import SingleImageDataModule
from lightning_modules.singan import SinGAN
from tests.helpers import REPO


def rmse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b) ** 2).mean(dim=(1, 2, 3)).sqrt()


def test_singan_reconstructs_the_image_and_samples_are_not_copies():
    seed_everything(0)
    data = SingleImageDataModule(str(REPO / "assets/hubble_deep_field.jpg"), max_size=32, min_size=12)
    model = SinGAN(iters_per_scale=100, base_width=16, max_width=16, pyramid_shapes=data.pyramid_shapes)
    trainer = Trainer(
        accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    data.setup("fit")
    real = data.pyramid[-1]
    untrained_rec = rmse(model.reconstruct(), real).item()
    trainer.fit(model, data)

    rec_error = rmse(model.reconstruct(), real).item()
    psnr = 10 * torch.log10(torch.tensor(4.0 / rec_error**2))  # peak-to-peak range of [-1, 1] is 2
    assert psnr > 26.0, psnr
    assert rec_error < untrained_rec / 4

    samples = model.sample(list(range(8)))
    assert samples.shape == real.expand(8, -1, -1, -1).shape
    assert rmse(samples, real).min() > 1.25 * rec_error  # samples are not the training image
    assert rmse(samples[:4], samples[4:]).min() > 1.25 * rec_error  # nor each other
