"""The SinGAN iteration as a plain PyTorch loop, without Lightning: the benchmark's baseline.

It uses the same networks, losses and resampling as `lightning_modules.singan`, so the
difference in time is what the Lightning module and Trainer add.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.optim import Adam
from torch.optim.lr_scheduler import MultiStepLR

from dfgen.resize import resize
from lightning_modules.networks.losses import SinGANLoss
from lightning_modules.networks.pyramid import PatchCritic, ScaleGenerator, coarsest_noise, scale_noise, scale_width


def train_plain(
    pyramid: list[torch.Tensor], iters_per_scale: int, device: torch.device, on_iteration: Callable[[int], None]
) -> None:
    """Train every scale for `iters_per_scale` iterations; `on_iteration(scale)` runs after each."""
    loss = SinGANLoss(gp_weight=0.1, rec_weight=10.0, adversarial_weight=1.0)  # the official weights
    rng = torch.Generator(device=device).manual_seed(0)
    pyramid = [real.to(device) for real in pyramid]
    shapes = [tuple(real.shape[-2:]) for real in pyramid]
    generators, critics, amps = [], [], []
    rec_noise = coarsest_noise(1, shapes[0], rng)

    def noise(scale: int) -> torch.Tensor:
        return scale_noise(scale, 1, shapes[scale], rng)

    @torch.no_grad()
    def chain(scale: int, inputs: list[torch.Tensor]) -> torch.Tensor:
        x = torch.zeros_like(pyramid[0])
        for s, z in enumerate(inputs):
            x = generators[s](z, resize(x, shapes[s]))
        return resize(x, shapes[scale])

    for scale, real in enumerate(pyramid):
        width = scale_width(scale)
        generator, critic = ScaleGenerator(width).to(device), PatchCritic(width).to(device)
        if scale > 0 and scale_width(scale - 1) == width:
            generator.load_state_dict(generators[-1].state_dict())
            critic.load_state_dict(critics[-1].state_dict())
        rec_inputs = [amps[0] * rec_noise] + [torch.zeros_like(p) for p in pyramid[1:scale]] if scale else []
        rec_prev = chain(scale, rec_inputs) if scale else torch.zeros_like(real)
        amps.append(1.0 if scale == 0 else 0.1 * torch.sqrt(torch.mean((real - rec_prev) ** 2)))
        rec_input = amps[0] * rec_noise if scale == 0 else torch.zeros_like(real)
        opt_d = Adam(critic.parameters(), lr=5e-4, betas=(0.5, 0.999))
        opt_g = Adam(generator.parameters(), lr=5e-4, betas=(0.5, 0.999))
        milestone = [int(0.8 * iters_per_scale)]
        sched_d, sched_g = MultiStepLR(opt_d, milestone, 0.1), MultiStepLR(opt_g, milestone, 0.1)
        for _ in range(iters_per_scale):
            z = amps[scale] * noise(scale)
            for _ in range(3):
                prev = chain(scale, [amps[s] * noise(s) for s in range(scale)]) if scale else torch.zeros_like(real)
                with torch.no_grad():
                    fake = generator(z, prev)
                epsilon = torch.rand((), generator=rng, device=device)
                opt_d.zero_grad(set_to_none=True)
                loss.critic(critic, real, fake, epsilon)["loss"].backward()
                opt_d.step()
            critic.requires_grad_(False)
            for _ in range(3):
                terms = loss.generator(critic, generator(z, prev), generator(rec_input, rec_prev), real)
                opt_g.zero_grad(set_to_none=True)
                terms["loss"].backward()
                opt_g.step()
            critic.requires_grad_(True)
            sched_d.step()
            sched_g.step()
            on_iteration(scale)
        generators.append(generator.eval().requires_grad_(False))
        critics.append(critic)


def timed(device: torch.device) -> Callable[[], float]:
    """A clock that waits for the device first."""

    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    return now
