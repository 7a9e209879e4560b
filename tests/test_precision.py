"""bf16 mixed precision (`--trainer.precision=bf16-mixed`) trains every method: two iterations of each
method's tiny run, gradient penalties' double backward included, end with finite weights and
buffers close to those of the same two iterations in fp32.

On the CPU, bf16 convolutions run far slower than fp32 ones (a tiny SinGAN iteration takes seconds),
so these runs are in the slow tier; their speed on a GPU is a benchmark, not a test.
"""

from __future__ import annotations

import pytest
import torch

from tests.methods import METHODS, PERIOD, fit, load

ITERATIONS = PERIOD  # the uninterrupted fp32 run keeps a checkpoint at every PERIOD iterations
TOLERANCE = 0.05  # largest relative distance of a bf16 tensor from its fp32 counterpart


def relative_distance(bf16: torch.Tensor, fp32: torch.Tensor) -> float:
    return ((bf16 - fp32).norm() / fp32.norm().clamp(min=1e-8)).item()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(METHODS))
def test_bf16_mixed_trains_every_method_close_to_fp32(name, tiny_runs, tmp_path):
    method = METHODS[name]
    fp32 = load(tiny_runs.reference(name).parent / f"iteration={ITERATIONS}.ckpt")["state_dict"]
    root = tmp_path / "bf16"
    fit(tiny_runs.config(name), root, "--trainer.precision=bf16-mixed",
        f"--trainer.max_steps={method.steps(ITERATIONS)}")  # fmt: skip
    bf16 = load(root / "checkpoints" / "last.ckpt")["state_dict"]
    floats = [key for key, value in fp32.items() if value.is_floating_point()]
    assert all(torch.isfinite(bf16[key]).all() for key in floats)
    distances = {key: relative_distance(bf16[key], fp32[key]) for key in floats if fp32[key].norm() > 0}
    assert max(distances.values()) < TOLERANCE, sorted(distances.items(), key=lambda item: -item[1])[:3]
