"""Callbacks state what they need of the method and the DataModule, and check it once at setup."""

from __future__ import annotations

from typing import ClassVar

from lightning.pytorch import LightningModule, Trainer

from dfgen.contract import require


class ChecksContract:
    """Mixin of every callback that needs something of the module or the DataModule.

    `module_needs` and `datamodule_needs` name protocols of `dfgen.contract`; `setup` checks
    them before anything else and fails with one line naming what is missing. A subclass that
    defines `setup` calls `super().setup(...)` first.
    """

    module_needs: ClassVar[tuple[type, ...]] = ()
    datamodule_needs: ClassVar[tuple[type, ...]] = ()

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        name = type(self).__name__
        for protocol in self.module_needs:
            require(pl_module, protocol, name)
        for protocol in self.datamodule_needs:
            require(trainer.datamodule, protocol, name, role="DataModule")
        super().setup(trainer, pl_module, stage)
