import os

# Read when torch loads its OpenMP runtime, so before the import: a thread that waits for the others
# sleeps instead of spinning. Results are the same; on 2 cores shared with other work, a 2-thread
# training step spun 10 times the CPU time and took 10 times as long with the default policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("WANDB_MODE", "disabled")

import pytest  # noqa: E402
import torch  # noqa: E402

from synthetic import pattern_image, write_image  # noqa: E402
from tests.methods import TinyRuns  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n 2`: two workers share the cores, so each computes with one thread, and so do the
    # command-line runs it starts (OMP_NUM_THREADS is what torch reads at start-up)
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture
def tiny_image(tmp_path):
    """A 28x36 structured PNG."""
    return write_image(tmp_path / "tiny.png", pattern_image(28, 36))


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> TinyRuns:
    """Every method's tiny config and uninterrupted run (tests/methods.py), made on first use."""
    return TinyRuns(tmp_path_factory.mktemp("tiny_runs"))


LEARNING_TEST_THREADS = 1  # the CPU threads the learning tests' known answers were measured with
# (one thread also keeps two workers on two cores from competing for them)


@pytest.fixture(scope="module", autouse=True)
def measured_thread_count(request):
    """The learning tests (tests/*_learning.py) run with the thread count their bars were measured at
    (LEARNING_TEST_THREADS) on any machine, in parallel runs too:
    the order of floating-point sums depends on the thread count, and so does a long training run.
    Module-scoped and automatic, so it comes before the module's own fixtures, which may train."""
    if not request.module.__name__.endswith("_learning"):
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(LEARNING_TEST_THREADS)
    yield
    torch.set_num_threads(threads)
