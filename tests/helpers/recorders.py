"""A callback that records what a run trains on and with, for tests to compare runs.

Add it with ``+callbacks.record._target_=helpers.recorders.Recorder``; the run's instance
is then ``Recorder.last()``.
"""

from typing import Any, ClassVar

import torch
from lightning.pytorch.callbacks import Callback


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the module's parameters (by name), on the CPU."""
    return {name: p.detach().cpu().clone() for name, p in module.named_parameters()}


class Recorder(Callback):
    """Per training step: the labels of the batch and the raw weights after the step; per
    validation epoch (not the sanity check) and per test: the weights the network ran with."""

    instances: ClassVar[list["Recorder"]] = []

    def __init__(self) -> None:
        self.labels: list[torch.Tensor] = []
        self.trained: list[dict[str, torch.Tensor]] = []
        self.validated: list[dict[str, torch.Tensor]] = []
        self.tested: dict[str, torch.Tensor] | None = None
        Recorder.instances.append(self)

    @classmethod
    def last(cls) -> "Recorder":
        return cls.instances[-1]

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, *args: Any) -> None:
        self.labels.append(batch[1].detach().cpu().clone())

    def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
        self.trained.append(weights(pl_module))

    def on_validation_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, *args: Any
    ) -> None:
        if batch_idx == 0 and not trainer.sanity_checking:
            self.validated.append(weights(pl_module))

    def on_test_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, *args: Any
    ) -> None:
        if batch_idx == 0:
            self.tested = weights(pl_module)
