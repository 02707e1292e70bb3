"""Ctrl-C and SIGTERM at any point of a run: one message and exit code, and the right checkpoint.

The signals come from ``helpers.faults.SendSignal``, a callback that sends one to this very
process from a chosen Lightning hook, so each test stops a real (tiny) run at that point.
"""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fmnist_lightning.models.checkpoint_file import read_checkpoint
from fmnist_lightning.train import train
from fmnist_lightning.training.faults import TrainingInterrupted
from helpers import faults
from helpers.compose import tiny, tiny_overrides

STEPS_PER_EPOCH = 10  # 320 training images in batches of 32
SMALL_MODEL = ["model.net.blocks=[[8],[16]]", "model.net.dense=[16]"]
TESTS_DIR = Path(__file__).parent


def send(name: str, hook: str, signum: int = signal.SIGINT, **options: int) -> list[str]:
    """Overrides that add a SendSignal callback called ``name``."""
    added = [
        f"+callbacks.{name}._target_=helpers.faults.SendSignal",
        f"+callbacks.{name}.hook={hook}",
        f"+callbacks.{name}.signum={int(signum)}",
    ]
    return added + [f"+callbacks.{name}.{key}={value}" for key, value in options.items()]


def stopped_run(synthetic_root: Path, run_dir: Path, *overrides: str) -> BaseException:
    """Run ``train`` and return what it raised (anything: a SystemExit or KeyboardInterrupt too)."""
    try:
        train(tiny(synthetic_root, run_dir, *SMALL_MODEL, *overrides))
    except BaseException as error:  # noqa: B036 - what the run raised is what is tested
        return error
    raise AssertionError("the run was not interrupted")


def test_sigterm_while_testing_keeps_the_final_checkpoint(synthetic_root, tmp_path):
    stop = stopped_run(
        synthetic_root, tmp_path, *send("stop", "on_test_batch_start", signal.SIGTERM)
    )
    assert isinstance(stop, TrainingInterrupted), repr(stop)
    assert stop.exit_status == 143
    message = str(stop)
    assert "during testing, after training" in message and "Checkpoint saved" not in message
    last = tmp_path / "checkpoints" / "last.ckpt"
    # Written at the end of training, not again when the signal came during testing.
    assert last.stat().st_mtime < faults.SENT["on_test_batch_start"][0]
    assert read_checkpoint(last)["global_step"] == 2 * STEPS_PER_EPOCH
    assert not (tmp_path / "test_metrics.json").exists()
    assert f"resume={tmp_path.resolve()}" in message


def test_ctrl_c_during_the_sanity_check_is_an_interrupt_like_any_other(synthetic_root, tmp_path):
    stop = stopped_run(synthetic_root, tmp_path, *send("stop", "on_sanity_check_start"))
    assert isinstance(stop, TrainingInterrupted), repr(stop)
    assert stop.exit_status == 130
    assert "during the sanity check" in str(stop) and "nothing was saved" in str(stop)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()


def test_ctrl_c_during_the_analysis_stops_and_leaves_no_analysis_folder(
    synthetic_root, tmp_path, monkeypatch
):
    from fmnist_lightning.analysis import evaluation

    draw = evaluation.write_figures

    def interrupted_drawing(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        return draw(*args, **kwargs)

    monkeypatch.setattr(evaluation, "write_figures", interrupted_drawing)
    stop = stopped_run(synthetic_root, tmp_path)
    assert isinstance(stop, TrainingInterrupted), repr(stop)
    assert stop.exit_status == 130
    assert "during the end-of-run summary and analysis" in str(stop)
    assert not (tmp_path / "analysis").exists()
    assert read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == 20


def test_a_second_ctrl_c_stops_at_once_and_saves_nothing(synthetic_root, tmp_path):
    stop = stopped_run(
        synthetic_root,
        tmp_path,
        *send("first", "on_train_batch_end", after=3),
        *send("second", "on_save_checkpoint"),  # while the first one's checkpoint is saved
    )
    assert isinstance(stop, TrainingInterrupted), repr(stop)
    assert stop.exit_status == 130
    assert "second Ctrl-C" in str(stop) and "nothing was saved" in str(stop)
    assert list(tmp_path.rglob("*.ckpt*")) == []  # no half-written file either


def test_one_ctrl_c_is_not_reported_as_a_sigterm(synthetic_root, tmp_path):
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger("lightning.pytorch.trainer.connectors.signal_connector")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    try:
        stop = stopped_run(synthetic_root, tmp_path, *send("stop", "on_train_batch_end", after=3))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert isinstance(stop, TrainingInterrupted), repr(stop)
    assert "Training interrupted by SIGINT (Ctrl-C) at epoch 0, step 3" in str(stop)
    assert not [r for r in records if "SIGTERM" in r]


@pytest.mark.slow
def test_a_double_ctrl_c_on_the_command_line_gives_no_traceback(synthetic_root, tmp_path):
    run_dir = tmp_path / "run with space"
    command = [
        sys.executable,
        "-m",
        "fmnist_lightning.train",
        *tiny_overrides(synthetic_root, None, *SMALL_MODEL),
        f"hydra.run.dir='{run_dir}'",
        "+callbacks.slow._target_=helpers.faults.SlowSteps",
        "+callbacks.slow.seconds=0.5",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(TESTS_DIR)}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        for line in process.stdout:
            if "[slow-steps] global_step=2" in line:
                break
        process.send_signal(signal.SIGINT)
        time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "second Ctrl-C" in stderr
    assert "Received SIGTERM" not in stderr
