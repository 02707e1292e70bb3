"""Time to accuracy (training/callbacks/time_to_accuracy.py): elapsed_seconds on every validation
row of metrics.csv, time_to_val_acc / fit_seconds / seconds_per_epoch in test_metrics.json,
counted across resumes, and the line every run prints."""

import json
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from fmnist_lightning.models.checkpoint_file import read_checkpoint
from fmnist_lightning.train import train
from fmnist_lightning.training.callbacks.time_to_accuracy import (
    TimeToAccuracy,
    time_to_accuracy_line,
)
from fmnist_lightning.training.faults import TrainingInterrupted
from helpers.compose import compose, tiny

SMALL_MODEL = ["model.net.blocks=[[8],[16]]", "model.net.dense=[16]", "~analysis"]
KEYS = ["0.90", "0.92", "0.93", "0.94", "0.95"]
SLEEP = 0.1  # seconds per training step (helpers.faults.SlowSteps): 1 s per epoch of 10 steps


class FakeModule:
    """What the callback needs of a LightningModule: ``log``."""

    def __init__(self) -> None:
        self.logged: list[tuple[str, float]] = []

    def log(self, name: str, value: float, **kwargs) -> None:
        self.logged.append((name, value))


def fake_clock(monkeypatch, readings: list[float]) -> None:
    """The callback's time.perf_counter() returns ``readings``, one per call."""
    clock = iter(readings)
    fake_time = SimpleNamespace(perf_counter=lambda: next(clock))
    monkeypatch.setattr("fmnist_lightning.training.callbacks.time_to_accuracy.time", fake_time)


def validate(callback: TimeToAccuracy, module: FakeModule, accuracy: float, sanity=False) -> None:
    metrics = {"val_acc": torch.tensor(accuracy)}
    trainer = SimpleNamespace(sanity_checking=sanity, callback_metrics=metrics)
    callback.on_validation_epoch_end(trainer, module)
    callback.on_validation_end(trainer, module)


def test_first_times_are_kept_and_thresholds_never_reached_stay_null(monkeypatch):
    fake_clock(monkeypatch, [100.0, 110.0, 130.0, 160.0, 200.0])
    callback, module = TimeToAccuracy(), FakeModule()
    callback.setup(None, module, "fit")  # t = 100
    validate(callback, module, 0.99, sanity=True)  # the sanity check counts for nothing
    validate(callback, module, 0.915)  # t = 110: 10 s, reaches 0.90
    validate(callback, module, 0.935)  # t = 130: 30 s, reaches 0.92 and 0.93
    validate(callback, module, 0.920)  # t = 160: lower again, nothing new
    callback.on_fit_end(SimpleNamespace(current_epoch=3), module)  # t = 200
    assert module.logged == [("elapsed_seconds", 10.0), ("elapsed_seconds", 30.0), ("elapsed_seconds", 60.0)]  # fmt: skip
    assert callback.summary() == {
        "time_to_val_acc": {"0.90": 10.0, "0.92": 30.0, "0.93": 30.0, "0.94": None, "0.95": None},
        "fit_seconds": 100.0,
        "seconds_per_epoch": 33.33,
        "test_seconds": None,  # not tested yet
    }
    assert time_to_accuracy_line(callback.summary()) == "Time to 93% validation accuracy: 30.0 s"
    assert time_to_accuracy_line({"time_to_val_acc": {"0.93": None}}).endswith("not reached")


def test_the_test_after_the_fit_is_timed_and_printed_with_it(monkeypatch):
    fake_clock(monkeypatch, [0.0, 40.0, 50.0, 53.0, 54.5])
    callback, module = TimeToAccuracy(), FakeModule()
    callback.setup(None, module, "fit")  # t = 0
    callback.on_fit_end(SimpleNamespace(current_epoch=1), module)  # t = 40
    callback.on_test_start(None, module)  # t = 50
    assert callback.summary()["test_seconds"] == 3.0  # t = 53: asked while the test ends
    callback.on_test_end(None, module)  # t = 54.5
    summary = callback.summary()
    assert (summary["fit_seconds"], summary["test_seconds"]) == (40.0, 4.5)
    line = time_to_accuracy_line({**summary, "time_to_val_acc": {"0.93": 12.0}})
    assert line == "Time to 93% validation accuracy: 12.0 s (fit + test: 44.5 s)"


def test_a_resumed_callback_continues_the_count(monkeypatch):
    fake_clock(monkeypatch, [0.0, 5.0, 7.0, 1000.0, 1004.0, 1010.0])
    first, module = TimeToAccuracy(), FakeModule()
    first.setup(None, module, "fit")  # t = 0
    validate(first, module, 0.91)  # t = 5
    state = first.state_dict()  # t = 7: a checkpoint, then the process dies
    assert state == {"elapsed_seconds": 7.0, "reached": {**dict.fromkeys(KEYS), "0.90": 5.0}}
    resumed = TimeToAccuracy()
    resumed.setup(None, module, "fit")  # t = 1000
    resumed.load_state_dict(state)  # Lightning restores a checkpoint after the setup
    validate(resumed, module, 0.95)  # t = 1004: 7 + 4 = 11 s
    resumed.on_fit_end(SimpleNamespace(current_epoch=2), module)  # t = 1010: 7 + 10 = 17 s
    assert module.logged[-1] == ("elapsed_seconds", 11.0)
    summary = resumed.summary()
    assert summary["time_to_val_acc"] == {"0.90": 5.0, "0.92": 11.0, "0.93": 11.0, "0.94": 11.0, "0.95": 11.0}  # fmt: skip
    assert (summary["fit_seconds"], summary["seconds_per_epoch"]) == (17.0, 8.5)
    # Testing a checkpoint after fitting reloads its state: the count of this fit stays.
    resumed.load_state_dict(state)
    assert resumed.summary() == summary


def test_a_run_logs_elapsed_seconds_and_writes_the_times(synthetic_root, tmp_path, capsys):
    overrides = [*SMALL_MODEL, "callbacks.time_to_accuracy.thresholds=[0.0,0.5,0.999]"]
    summary = train(tiny(synthetic_root, tmp_path, *overrides))
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    validation = metrics.dropna(subset=["val_acc"])
    assert len(validation) == 2 and validation["elapsed_seconds"].notna().all()
    assert metrics.dropna(subset=["elapsed_seconds"]).index.equals(validation.index)
    elapsed = validation["elapsed_seconds"].tolist()
    assert 0 < elapsed[0] < elapsed[1] <= summary["fit_seconds"] + 0.05
    written = json.loads((tmp_path / "test_metrics.json").read_text())
    assert written == summary
    times = summary["time_to_val_acc"]
    assert times["0.00"] == pytest.approx(elapsed[0], abs=0.05)  # reached at the first validation
    assert times["0.999"] is None or times["0.999"] >= elapsed[0]
    assert summary["seconds_per_epoch"] == pytest.approx(
        summary["fit_seconds"] / 2, abs=0.03
    )  # fit_seconds: 0.1 s
    assert isinstance(summary["test_seconds"], float) and 0 <= summary["test_seconds"] < 60
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("Time to 93% validation accuracy: ")
    fit_and_test = summary["fit_seconds"] + summary["test_seconds"]
    assert lines[-2].endswith(f"(fit + test: {fit_and_test:.1f} s)")
    assert lines[-1].startswith("Test accuracy: ")


def test_the_default_thresholds_are_declared(tmp_path):
    cfg = compose("train", [f"paths.run_dir={tmp_path}"])
    callback = cfg.callbacks.time_to_accuracy
    assert callback.thresholds == [0.90, 0.92, 0.93, 0.94, 0.95]
    assert TimeToAccuracy().summary()["time_to_val_acc"] == dict.fromkeys(KEYS)


def test_fit_seconds_of_a_resumed_run_add_the_interrupted_part(synthetic_root, tmp_path):
    slow = ["+callbacks.slow._target_=helpers.faults.SlowSteps", f"+callbacks.slow.seconds={SLEEP}"]
    stop = ["+callbacks.stop._target_=helpers.faults.SignalAtEpochEnd", "+callbacks.stop.epoch=0"]
    overrides = [*SMALL_MODEL, *slow, *stop, "trainer.num_sanity_val_steps=0"]
    with pytest.raises(TrainingInterrupted):
        train(tiny(synthetic_root, tmp_path, *overrides))
    interrupted = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    first_part = interrupted["callbacks"]["TimeToAccuracy"]["elapsed_seconds"]
    assert first_part >= 10 * SLEEP  # one epoch of slow steps

    summary = train(tiny(synthetic_root, tmp_path, *overrides, f"resume={tmp_path}"))
    validation = pd.read_csv(tmp_path / "metrics.csv").dropna(subset=["val_acc"])
    elapsed = validation["elapsed_seconds"].tolist()
    assert len(elapsed) == 2
    assert elapsed[0] <= first_part  # epoch 1's validation, before its checkpoint
    assert elapsed[1] >= first_part + 10 * SLEEP  # epoch 2 continues the count
    assert summary["fit_seconds"] >= elapsed[1] - 0.05
    assert summary["fit_seconds"] >= first_part + 10 * SLEEP  # not the resumed part alone
    assert summary["epochs"] == 2
    assert summary["seconds_per_epoch"] == pytest.approx(
        summary["fit_seconds"] / 2, abs=0.03
    )  # fit_seconds: 0.1 s
