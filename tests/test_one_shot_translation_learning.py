"""One-shot translation learns to translate from ONE handwritten digit: a known answer on real data.

A = scikit-learn's handwritten digits, B = the same kind of digits blended onto photographs
(`datamodules.digits`). A small classifier of B labels the translations of the 360 A test
digits; chance is 0.10. A shortened version of benchmarks/ost_digits.py (phase 1 300
iterations, phase 2 300, the classifier 15 epochs).

Measured with seed 0 on CPU: classifier accuracy on B 0.75, translation accuracy 0.30 with
the sample of index 0 (the test requires 0.6 and 0.2; 2.5 minutes on 2 cores).
"""

from lightning.pytorch import Trainer, seed_everything

from callbacks.translation import TranslationAccuracy
from datamodules.digits import DigitsDataModule, OneShotDigitsDataModule
from lightning_modules.classifier import ImageClassifier
from lightning_modules.networks.classifiers import DigitClassifier
from lightning_modules.one_shot_translation import OneShotTranslation


def trainer(root, epochs: int = 1, **kwargs) -> Trainer:
    return Trainer(
        accelerator="cpu", max_epochs=epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=root, **kwargs,
    )  # fmt: skip


def test_one_sample_is_translated_with_its_label_kept(tmp_path):
    seed_everything(0)
    classifier = ImageClassifier(
        num_classes=10, padain_p=0.0, lr=0.05, warmup_epochs=0, schedule="cosine", min_lr=0.0,
        network=DigitClassifier(channels=3),
    )  # fmt: skip
    classifier_run = trainer(tmp_path / "classifier", epochs=15, enable_checkpointing=False)
    classifier_data = DigitsDataModule("textured", batch_size=64)
    classifier_run.fit(classifier, classifier_data)
    classifier_accuracy = classifier_run.test(classifier, classifier_data, verbose=False)[0]["test/top1"]
    assert classifier_accuracy > 0.6

    phase_one = OneShotTranslation(phase=1, iterations=300)
    trainer(tmp_path / "phase1", limit_val_batches=0).fit(
        phase_one, OneShotDigitsDataModule("handwritten", "textured", phase=1)
    )
    checkpoint = next((tmp_path / "phase1").rglob("*.ckpt"))

    accuracy = TranslationAccuracy(classifier=classifier.network)
    phase_two = OneShotTranslation(phase=2, iterations=300, phase_one_checkpoint=str(checkpoint))
    data = OneShotDigitsDataModule("handwritten", "textured", phase=2, sample_index=0)
    trainer(tmp_path / "phase2", callbacks=[accuracy], enable_checkpointing=False).fit(phase_two, data)
    assert accuracy.last["val/translation_accuracy"] > 0.2  # chance: 0.1
