import os

import pytest
import torch

from synthetic import pattern_image, write_image

os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture
def tiny_image(tmp_path):
    """A 28x36 structured PNG."""
    return write_image(tmp_path / "tiny.png", pattern_image(28, 36))


LEARNING_TEST_THREADS = 2  # the CPU threads the learning tests' known answers were measured with
# unless a learning module says otherwise with its own MEASURED_THREADS


@pytest.fixture(autouse=True)
def measured_thread_count(request):
    """The learning tests (tests/*_learning.py) run with the thread count their bars were measured at
    (the module's MEASURED_THREADS, or LEARNING_TEST_THREADS) on any machine: the order of
    floating-point sums depends on the thread count, and so does a long training run."""
    if not request.module.__name__.endswith("_learning"):
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(getattr(request.module, "MEASURED_THREADS", LEARNING_TEST_THREADS))
    yield
    torch.set_num_threads(threads)
