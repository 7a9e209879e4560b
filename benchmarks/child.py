"""Every benchmark measures in child processes, so that each measurement's peak memory is its own."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import torch


def measure_in_child(module: str, *arguments: object) -> dict:
    """Runs `python -m module arguments` and returns the JSON object on the last line of its output.

    A child that fails raises with the end of its error output, so that a failure on a remote
    or batch machine says why instead of only naming the command.
    """
    command = [sys.executable, "-m", module, *map(str, arguments)]
    child = subprocess.run(command, capture_output=True, text=True)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {child.returncode}:\n{child.stderr[-4000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def peak_memory_mib(device: torch.device) -> dict[str, float | None]:
    """This process's peak GPU memory (None off the GPU) and peak resident memory, in MiB."""
    gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"peak_gpu_mib": gpu, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
