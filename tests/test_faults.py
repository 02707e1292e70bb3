"""Numerical faults and running out of memory: a clear message, and the last good checkpoint kept."""

from contextlib import ExitStack

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from fmnist_lightning import cli
from fmnist_lightning.models.checkpoint_file import read_checkpoint
from fmnist_lightning.models.module import FashionMNISTModule
from fmnist_lightning.train import train
from fmnist_lightning.training.faults import NonFiniteLoss, OutOfMemory
from helpers.compose import tiny
from helpers.faults import disk_full_in

SMALL_MODEL = ["model.net.blocks=[[8],[16,16]]", "model.net.dense=[32,16]"]
STEPS_PER_EPOCH = 10  # 320 training images in batches of 32


def small(synthetic_root, run_dir, *extra: str):
    return tiny(synthetic_root, run_dir, *SMALL_MODEL, *extra)


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(synthetic_root, tmp_path):
    poison = [
        "+callbacks.poison._target_=helpers.faults.PoisonWeightsAtStep",
        f"+callbacks.poison.step={STEPS_PER_EPOCH + 3}",  # mid-way through the second epoch
    ]
    with pytest.raises(NonFiniteLoss) as stopped:
        train(small(synthetic_root, tmp_path, *poison))
    message = str(stopped.value)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert f"epoch 1, step {STEPS_PER_EPOCH + 4}" in message  # the first bad step, no later
    assert "the training loss became nan" in message
    assert f"The last good checkpoint is kept: {last.resolve()}" in message
    assert "a lower optimizer.lr, or trainer.precision=32-true" in message
    checkpoint = read_checkpoint(last)
    assert checkpoint["global_step"] == STEPS_PER_EPOCH  # the end of the first epoch
    assert all(torch.isfinite(w).all() for w in checkpoint["state_dict"].values())


def test_an_absurd_learning_rate_is_caught_before_any_checkpoint(synthetic_root, tmp_path):
    cfg = small(synthetic_root, tmp_path, "optimizer.lr=1e12", "scheduler=none")
    with pytest.raises(NonFiniteLoss, match="learning rate 1e\\+12") as stopped:
        train(cfg)
    assert "No checkpoint had been written yet" in str(stopped.value)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()


@pytest.mark.parametrize(
    ("error", "device"),
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "GPU"),
        (
            RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB"),
            "host",
        ),
        (MemoryError(), "host"),
    ],
    ids=["cuda", "cpu-allocator", "MemoryError"],
)
def test_out_of_memory_while_training_suggests_a_smaller_batch(
    error, device, synthetic_root, tmp_path, monkeypatch
):
    def run_out_of_memory(*args, **kwargs):
        raise error

    monkeypatch.setattr(FashionMNISTModule, "training_step", run_out_of_memory)
    with pytest.raises(OutOfMemory) as stopped:
        train(small(synthetic_root, tmp_path))
    message = str(stopped.value)
    assert f"Ran out of {device} memory during training with data.batch_size=32" in message
    assert "data.batch_size=16" in message


def test_out_of_memory_while_testing_names_the_eval_batch_size(
    synthetic_root, tmp_path, monkeypatch
):
    def run_out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(FashionMNISTModule, "test_step", run_out_of_memory)
    cfg = small(synthetic_root, tmp_path, "trainer.max_epochs=1")
    with pytest.raises(OutOfMemory, match="during testing with data.eval_batch_size=64"):
        train(cfg)


def test_other_errors_pass_through_unchanged(synthetic_root, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(FashionMNISTModule, "training_step", fail)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        train(small(synthetic_root, tmp_path))


def test_a_full_disk_at_a_checkpoint_stops_the_run_in_one_line(synthetic_root, tmp_path, capsys):
    folder = tmp_path / "checkpoints"

    class FillTheDiskInTheSecondEpoch(Callback):
        def on_train_epoch_start(self, trainer, *args):
            if trainer.current_epoch == 1:
                full.enter_context(disk_full_in(folder, 1000))

    with ExitStack() as full, pytest.raises(SystemExit) as exited:
        cli.run(lambda: train(small(synthetic_root, tmp_path), [FillTheDiskInTheSecondEpoch()]))
    assert exited.value.code == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"could not write '{folder}" in error and "No space left on device" in error
    command = f"python -m fmnist_lightning.train resume={tmp_path.resolve()}"
    assert f"Free some space. To continue this run in the same folder: {command}" in error
    assert read_checkpoint(folder / "last.ckpt")["global_step"] == STEPS_PER_EPOCH
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # no temporary


def test_the_command_line_prints_the_message_and_exits_without_a_traceback(capsys):
    def run_out_of_memory():
        raise OutOfMemory("Ran out of GPU memory ... data.batch_size=64")

    with pytest.raises(SystemExit) as exited:
        cli.run(run_out_of_memory)
    assert exited.value.code == 1
    captured = capsys.readouterr()
    assert "data.batch_size=64" in captured.err and "Traceback" not in captured.err
