"""Progress output: Lightning's bar in a terminal, one line per epoch in a log file or CI."""

import io
import re

import pandas as pd
import pytest
from hydra.utils import instantiate
from lightning.pytorch.callbacks import TQDMProgressBar

from fmnist_lightning.analysis import run_files
from fmnist_lightning.train import train
from fmnist_lightning.training.callbacks.progress import EpochLines, progress_for_output
from helpers.compose import compose, tiny


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_redrawn_bar_and_a_file_gets_epoch_lines():
    bar = progress_for_output(refresh_rate=7, stream=Terminal())
    assert isinstance(bar, TQDMProgressBar) and bar.refresh_rate == 7
    assert isinstance(progress_for_output(stream=io.StringIO()), EpochLines)


def test_the_default_callbacks_choose_by_stdout(capsys):
    # Under pytest stdout is captured, not a terminal: the config builds EpochLines.
    spec = compose("train", ["paths.run_dir=/tmp/run"]).callbacks.progress_bar
    assert isinstance(instantiate(spec), EpochLines)


@pytest.fixture(scope="module")
def lines_of_a_fit(synthetic_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    stream = io.StringIO()
    cfg = tiny(synthetic_root, run_dir, "trainer.max_epochs=3", "~analysis",
               "trainer.enable_progress_bar=true", "callbacks.early_stopping=null")  # fmt: skip
    train(cfg, [EpochLines(stream)])
    return stream.getvalue().splitlines(), run_dir


def test_one_line_per_epoch_with_its_step_metrics_and_seconds(lines_of_a_fit):
    lines, run_dir = lines_of_a_fit
    assert len(lines) == 3 and not any("\r" in line for line in lines)
    epochs = run_files.epoch_metrics(run_dir / run_files.METRICS_CSV)
    for number, line in enumerate(lines):
        assert line.startswith(f"epoch {number + 1}/3  step {10 * (number + 1)}  ")
        assert re.search(r"  \d+\.\d s$", line)
        fields = dict(re.findall(r"(\w[\w-]*) (-?[\d.e+-]+|nan)(?=  )", line))
        assert {"train_loss_epoch", "train_acc", "val_loss", "val_acc"} <= set(fields)
        assert not any(name.endswith("_step") for name in fields) and "train_loss" not in fields
        # The epoch's own validation accuracy, as metrics.csv has it.
        assert float(fields["val_acc"]) == pytest.approx(epochs["val_acc"].iloc[number], abs=1e-4)


def test_the_line_shows_the_learning_rate_at_the_end_of_its_epoch(lines_of_a_fit):
    """The rate the next step will use, as LearningRateMonitor logs it at that step's start
    (its own lr-* value in callback_metrics is the epoch start's, so it is not shown)."""
    lines, run_dir = lines_of_a_fit
    logged = pd.read_csv(run_dir / run_files.METRICS_CSV).dropna(subset=["lr-AdamW"])
    rate_at = dict(zip(logged["step"], logged["lr-AdamW"], strict=True))
    for number, line in enumerate(lines[:-1]):  # the last epoch has no next step
        shown = float(re.search(r"  lr (\S+)  ", line).group(1))
        assert shown == pytest.approx(rate_at[10 * (number + 1)], rel=1e-3)
    assert not any(" lr-" in line for line in lines)


def test_an_epoch_without_validation_shows_no_validation_metrics(synthetic_root, tmp_path):
    """With validation every second epoch, epochs 1 and 3 show no val_* (Lightning still
    holds epoch 2's), and epochs 2 and 4 show their own."""
    stream = io.StringIO()
    cfg = tiny(synthetic_root, tmp_path, "trainer.max_epochs=4", "~analysis",
               "trainer.check_val_every_n_epoch=2", "trainer.enable_progress_bar=true",
               "callbacks.early_stopping=null")  # fmt: skip
    train(cfg, [EpochLines(stream)])
    lines = stream.getvalue().splitlines()
    validated = [" val_acc " in line and " val_loss " in line for line in lines]
    assert validated == [False, True, False, True]
    assert all(" train_acc " in line for line in lines)
