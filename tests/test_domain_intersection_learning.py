"""Domain intersection/difference separates what two face domains share from what each adds:
a known answer on drawn faces whose factors are planted (synthetic).

A = smiling faces without glasses, B = faces with glasses and no smile; the glasses' colour and
shape and the smile's shape vary from face to face, and hair colour, background and pose vary
independently in both domains. After a short training with the official losses and weights
(small networks, a raised learning rate), the pixel oracle that reads the planted factors
checks the paper's membership of guided translations (A -> B shows glasses and no smile, B -> A
a smile and no glasses) and that the translations keep the source's common factors. The
intersection and the union are not asserted: the official recipe does not deliver them here
(see the README).

Measured at 400 iterations (seed 0, 1 thread; 27.5 CPU-seconds a run): A -> B membership
0.48, B -> A 0.84; hair kept 0.89 and 0.94, background 0.91 and 0.97. Without the zero loss
the A -> B translations lose the source's hair colour (0.69). Removing the domain confusion
does not harm the translations at this budget (0.67 and 0.84, hair 0.94 and 0.98), so it is
no mutant of this test.
"""

import pytest
from lightning.pytorch import Trainer, seed_everything

from benchmarks.did_faces import operation_scores
from datamodules.celeba_domains import CelebAAttributeDomains
from lightning_modules.domain_intersection import DomainIntersectionDifference
from synthetic import write_synthetic_celeba
from tests.helpers import assert_mutant_outcome

pytestmark = pytest.mark.slow  # minutes of training: `make test` runs it, `make test-fast` does not

NETWORK = {"image_size": 32, "depth": 4, "code_channels": 32, "separate_channels": 8, "base_channels": 16}
RECIPE = {"lr": 1e-3, "lr_critic": 1e-3, "iterations": 400}  # otherwise the official recipe
# (score, operation, measure, bar): each must be reached
BARS = [
    ("a_to_b membership", "a_to_b", "membership", 0.3),
    ("b_to_a membership", "b_to_a", "membership", 0.6),
    ("a_to_b hair kept", "a_to_b", "hair", 0.8),
    ("b_to_a hair kept", "b_to_a", "hair", 0.8),
    ("a_to_b background kept", "a_to_b", "background", 0.8),
    ("b_to_a background kept", "b_to_a", "background", 0.8),
]
# a defect of the method, planted through its settings -> the bars it must miss (at least one)
MUTANTS = {
    "zero_loss_removed": ({"zero_weight": 0.0}, {"a_to_b hair kept", "b_to_a hair kept"}),
}


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    return write_synthetic_celeba(tmp_path_factory.mktemp("faces"), count=800, seed=0, masks=False)


def trained_scores(faces, **changes) -> dict[str, dict[str, float]]:
    seed_everything(0)
    data = CelebAAttributeDomains(str(faces), size=32, in_memory=True, batch_size=8, eval_batch_size=64)
    model = DomainIntersectionDifference(**NETWORK, **(RECIPE | changes))
    Trainer(
        accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0,
    ).fit(model, data)  # fmt: skip
    batch = next(iter(data.val_dataloader()))
    return operation_scores(model, batch["a"], batch["b"])


def missed_bars(scores: dict[str, dict[str, float]]) -> set[str]:
    return {name for name, operation, measure, bar in BARS if not scores[operation][measure] >= bar}


@pytest.mark.parametrize("mutant", [None, *(pytest.param(name, marks=pytest.mark.slow) for name in MUTANTS)])
def test_translations_swap_the_domain_parts_and_keep_the_common_factors(faces, mutant):
    changes, targets = MUTANTS[mutant] if mutant else ({}, set())
    scores = trained_scores(faces, **changes)
    assert_mutant_outcome(missed_bars(scores), mutant, targets, scores)
