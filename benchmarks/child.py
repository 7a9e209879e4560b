"""Every benchmark measures in child processes, so that each measurement's peak memory is its own."""

from __future__ import annotations

import json
import subprocess
import sys


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
