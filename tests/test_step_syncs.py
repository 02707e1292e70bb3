"""Training steps read no tensor values back to the host between logging intervals.

On a GPU every such read (``.item()``, ``bool()``, ``float()``, ``.tolist()``, ``.cpu()``, an
output whose size depends on the values) waits for the device, so the step that reads
cannot queue the next one. The project's code may read at Lightning's logging steps
(``trainer.log_every_n_steps``, where Lightning reads the logged values itself) and on an
epoch's last batch, nowhere else in a step. A ``TorchFunctionMode`` sees every such call on
the CPU, with the Python stack that made it.
"""

import io
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.overrides import TorchFunctionMode

import fmnist_lightning
from fmnist_lightning.train import train
from fmnist_lightning.training.callbacks.progress import progress_for_output
from fmnist_lightning.training.faults import NonFiniteLoss
from helpers.compose import tiny

LOG_EVERY = 4
# 320 training images in batches of 32, two epochs: Lightning logs after global steps
# 4, 8, 12, 16 and 20; 10 and 20 end the epochs.
LOGGING_STEPS, EPOCH_ENDS = {4, 8, 12, 16, 20}, {10, 20}
# Calls that hand a tensor's values to Python, or whose output's size depends on them.
HOST_READS = frozenset({
    "item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__",
    "__complex__", "__format__", "__repr__", "equal", "allclose", "nonzero", "unique",
    "unique_consecutive", "masked_select", "bincount",
})  # fmt: skip
# Lightning's own reads between logging steps: torch's optimiser reads its step count,
# which it keeps on the host (no wait for a GPU), inside Lightning's optimizer_step.
LIGHTNINGS_OWN = {"lightning/pytorch/plugins/precision/precision.py optimizer_step"}
PROJECT = Path(fmnist_lightning.__file__).parent
LIGHTNING = Path(L.__file__).parent


@dataclass(frozen=True)
class Read:
    call: str
    step: int  # the global step it came in (from 1, as Lightning's logging counts); 0: none
    owner: str  # "project" or "lightning": whose code asked for it
    where: str  # that code's file and function


def owner_of(stack: traceback.StackSummary) -> tuple[str, str]:
    """The innermost frame of the project's code or Lightning's: what they call (torch,
    torchmetrics) reads on their behalf."""
    for frame in reversed(stack):
        path = Path(frame.filename)
        for owner, root in (("project", PROJECT), ("lightning", LIGHTNING)):
            if path.is_relative_to(root):
                return owner, f"{path.relative_to(root.parent)} {frame.name}"
    return "other", f"{stack[-1].filename} {stack[-1].name}"


class HostReads(TorchFunctionMode, Callback):
    """The host reads of training steps; a step lasts from its ``on_train_batch_start`` to the
    next one's, or to validation or the epoch's end."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[Read] = []
        self.step = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None):
        if self.step and func.__name__ in HOST_READS:
            owner, where = owner_of(traceback.extract_stack()[:-1])
            self.reads.append(Read(func.__name__, self.step, owner, where))
        return func(*args, **(kwargs or {}))

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self.step = trainer.global_step + 1

    def outside_steps(self, *args: Any) -> None:
        self.step = 0

    on_validation_start = on_train_epoch_end = on_train_end = outside_steps

    def between_logging_steps(self, owner: str) -> list[Read]:
        allowed = LOGGING_STEPS | EPOCH_ENDS
        return [read for read in self.reads if read.owner == owner and read.step not in allowed]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_counter_sees_each_kind_of_read():
    counter, values = HostReads(), torch.tensor([1.0, 0.0])
    counter.step = 1
    with counter:
        values[0].item(), bool(values[0]), float(values[0]), int(values[0]), values.tolist()
        values.cpu(), values.numpy(), f"{values[0]:.1f}", [0, 1][values[0].long()]
        values.nonzero()
    assert [read.call for read in counter.reads] == [
        "item", "__bool__", "__float__", "__int__", "tolist", "cpu", "numpy", "__format__",
        "__index__", "nonzero",
    ]  # fmt: skip


def test_training_steps_read_nothing_back_between_logging_steps(synthetic_root, tmp_path):
    cfg = tiny(synthetic_root, tmp_path, f"trainer.log_every_n_steps={LOG_EVERY}",
               "trainer.max_epochs=2", "callbacks.early_stopping=null", "~analysis",
               "trainer.enable_progress_bar=true")  # fmt: skip
    counter = HostReads()
    # The terminal's bar, redrawn after every step: the progress output with step hooks.
    with counter:
        train(cfg, [progress_for_output(refresh_rate=1, stream=Terminal()), counter])
    # The counter sees the project's reads (the NaN check, the bar's loss) where they belong.
    assert {read.step for read in counter.reads if read.owner == "project"} == (
        LOGGING_STEPS | EPOCH_ENDS
    )
    assert counter.between_logging_steps("project") == []
    assert {read.where for read in counter.between_logging_steps("lightning")} <= LIGHTNINGS_OWN


class GpuSyncCheck(Callback):
    """CUDA's own check: a synchronising call raises in a step that is not a logging step."""

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        logging = trainer.global_step + 1 in LOGGING_STEPS | EPOCH_ENDS
        torch.cuda.set_sync_debug_mode(0 if logging else "error")

    def off(self, *args: Any) -> None:
        torch.cuda.set_sync_debug_mode(0)

    on_validation_start = on_train_epoch_end = on_train_end = off


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_steps_do_not_synchronise_a_gpu_between_logging_steps(synthetic_root, tmp_path):
    cfg = tiny(synthetic_root, tmp_path, f"trainer.log_every_n_steps={LOG_EVERY}",
               "trainer.max_epochs=2", "callbacks.early_stopping=null", "~analysis",
               "trainer.enable_progress_bar=true", "trainer.accelerator=gpu",
               "trainer.precision=bf16-mixed")  # fmt: skip
    try:
        train(cfg, [progress_for_output(refresh_rate=1, stream=Terminal()), GpuSyncCheck()])
    finally:
        torch.cuda.set_sync_debug_mode(0)


def test_a_nan_loss_after_the_last_logging_step_stops_the_run_at_the_epochs_end(
    synthetic_root, tmp_path
):
    """Weights ruined in step 9 (after logging step 8): the check on the epoch's last batch
    stops the run before validation and the epoch's checkpoint."""
    poison = [
        "+callbacks.poison._target_=helpers.faults.PoisonWeightsAtStep",
        "+callbacks.poison.step=8",
    ]
    with pytest.raises(NonFiniteLoss, match="epoch 0, step 10: the training loss became nan"):
        train(tiny(synthetic_root, tmp_path, f"trainer.log_every_n_steps={LOG_EVERY}", *poison))
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()
