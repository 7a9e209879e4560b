"""One-shot translation learns to translate from ONE handwritten digit: a known answer on real data.

A = scikit-learn's handwritten digits, B = the same kind of digits blended onto photographs
(`datamodules.digits`), A's sample and B from disjoint halves of the training scans, so that
B holds no textured copy of the sample nor of the A test digits. A small classifier of B
labels the translations of the 360 A test digits; chance is 0.10. A shortened version of
benchmarks/ost_digits.py at half the official widths (ngf = ndf = 32): phase 1 300
iterations of batch 32, phase 2 300 iterations on the sample of index 0, the classifier 15
epochs.

The bar sits between what the method reaches and what its ablation without selective
backpropagation reaches. Measured on CPU at 1 thread with seed 0 (the classifier, lr 0.02,
scores 0.933 on B's test digits; at lr 0.05 it scored 0.51 to 0.80 depending on the seed and
the data order, too unstable a judge):

    phase 2                      translation accuracy (bar: above 0.21)
    unmodified                   0.269
    selective backprop off       0.153  (the sample's losses move the shared core)
    one-way cycle off            0.183  (not a mutant: 0.027 below the bar is too thin a margin)

CPU time at 1 thread (user+sys): classifier 54 s, phase 1 48 s (shared by the module), each
phase 2 22-28 s.
"""

import pytest
from lightning.pytorch import Trainer, seed_everything

from callbacks.translation import TranslationAccuracy
from datamodules.digits import DigitsDataModule, OneShotDigitsDataModule
from lightning_modules.classifier import ImageClassifier
from lightning_modules.networks.classifiers import DigitClassifier
from lightning_modules.one_shot_translation import OneShotTranslation

pytestmark = pytest.mark.slow  # minutes of training: `make test` runs it, `make test-fast` does not


WIDTHS = {"ngf": 32, "ndf": 32}
MUTANTS = {"selective_backprop_off": {"selective_backprop": False}}  # the paper's ablation switch
MIN_ACCURACY = 0.21  # translation accuracy of the 360 A test digits (chance 0.10)


def trainer(root, epochs: int = 1, **kwargs) -> Trainer:
    return Trainer(
        accelerator="cpu", max_epochs=epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=root, **kwargs,
    )  # fmt: skip


def train_classifier(root) -> tuple[DigitClassifier, float]:
    """The B classifier of the evaluation and its accuracy on B's test digits."""
    seed_everything(0)
    classifier = ImageClassifier(
        num_classes=10, padain_p=0.0, lr=0.02, warmup_epochs=0, schedule="cosine", min_lr=0.0,
        network=DigitClassifier(channels=3),
    )  # fmt: skip
    run = trainer(root / "classifier", epochs=15, enable_checkpointing=False)
    data = DigitsDataModule("textured", batch_size=64)
    run.fit(classifier, data)
    return classifier.network, run.test(classifier, data, verbose=False)[0]["test/top1"]


def train_phase_one(root) -> str:
    """B's autoencoder; returns its checkpoint."""
    seed_everything(0)
    phase_one = OneShotTranslation(phase=1, iterations=300, **WIDTHS)
    data = OneShotDigitsDataModule("handwritten", "textured", phase=1, batch_size=32)
    trainer(root / "phase1", limit_val_batches=0).fit(phase_one, data)
    return str(next((root / "phase1").rglob("*.ckpt")))


def phase_two_accuracy(root, classifier: DigitClassifier, checkpoint: str, mutant: str | None) -> float:
    """Translation accuracy after phase 2 on the sample of index 0, with `mutant`'s switch if any."""
    seed_everything(0)
    accuracy = TranslationAccuracy(classifier=classifier)
    model = OneShotTranslation(
        phase=2, iterations=300, phase_one_checkpoint=checkpoint, **WIDTHS, **MUTANTS.get(mutant, {})
    )
    data = OneShotDigitsDataModule("handwritten", "textured", phase=2, sample_index=0)
    run = trainer(root / f"phase2_{mutant}", callbacks=[accuracy], enable_checkpointing=False, num_sanity_val_steps=0)
    run.fit(model, data)
    return accuracy.last["val/translation_accuracy"]


@pytest.fixture(scope="module")
def phase_one(tmp_path_factory):
    root = tmp_path_factory.mktemp("ost_learning")
    classifier, classifier_accuracy = train_classifier(root)
    return root, classifier, classifier_accuracy, train_phase_one(root)


@pytest.mark.parametrize("mutant", [None, pytest.param("selective_backprop_off", marks=pytest.mark.slow)])
def test_one_sample_is_translated_with_its_label_kept(phase_one, mutant):
    root, classifier, classifier_accuracy, checkpoint = phase_one
    assert classifier_accuracy > 0.6
    accuracy = phase_two_accuracy(root, classifier, checkpoint, mutant)
    failed = [] if accuracy > MIN_ACCURACY else ["translation_accuracy"]
    if mutant is None:
        assert not failed, f"translation accuracy {accuracy:.3f}, required above {MIN_ACCURACY}"
    else:
        assert "translation_accuracy" in failed, f"{mutant}: accuracy {accuracy:.3f} still above {MIN_ACCURACY}"
