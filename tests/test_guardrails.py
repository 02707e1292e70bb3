"""Guardrails of the restructuring: what main wrote before any code moved keeps working.

- a checkpoint written by main at 7e48f69 (tests/fixtures/main-7e48f69, see its README)
  predicts exactly what it predicted then, and its run folder, copied anywhere, resumes there
  (its config.yaml and checkpoints name the folder where it was made);
- every command answers its documented failures with its documented exit status and one
  line on stderr, never a traceback.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fmnist_lightning import load_classifier
from fmnist_lightning.models.checkpoint_file import read_checkpoint
from helpers.data import write_fashion_mnist

FIXTURES = Path(__file__).parent / "fixtures" / "main-7e48f69"
BEST = FIXTURES / "run" / "checkpoints" / "best-epoch04-val_acc0.7500.ckpt"


def test_the_checkpoint_of_main_7e48f69_predicts_what_it_predicted():
    with np.load(FIXTURES / "best_expected.npz") as arrays:
        pixels, expected = (torch.from_numpy(arrays[name]) for name in ("pixels", "probabilities"))
    assert pixels.shape == (200, 28, 28)
    probabilities = load_classifier(BEST).predict(pixels).probabilities
    assert torch.allclose(probabilities, expected, atol=1e-6, rtol=0)


@pytest.mark.slow
def test_the_run_folder_of_main_7e48f69_resumes_where_it_was_copied(tmp_path):
    made_at = Path("/tmp/gr")  # where the fixture was made (its README)
    existed = made_at.exists()
    run_dir = tmp_path / "a copy of" / "an old run"
    shutil.copytree(FIXTURES / "run", run_dir)
    data = write_fashion_mnist(tmp_path / "data", train=400, test=200)  # the run's data
    command = ["train", f"resume={run_dir}", "trainer.max_epochs=6", f"data.root={data}"]

    result = run_command(command, tmp_path)

    assert result.returncode == 0, result.stderr
    assert read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 6 * 10
    assert json.loads((run_dir / "test_metrics.json").read_text())["epochs"] == 6
    assert made_at.exists() == existed  # nothing written where the run was made


def run_command(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    name, *arguments = command
    return subprocess.run(
        [sys.executable, "-m", f"fmnist_lightning.{name}", *arguments],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )


# (command and its arguments, exit status, a phrase of the one line it prints). A refused
# config exits 2 since 0.2.0 (train and search exited 1 when main-7e48f69 was recorded).
DOCUMENTED_FAILURES = [
    ("train trainer.max_epochs=0", 2, "trainer.max_epochs=0 is out of range"),
    ("train data.batchsize=3", 2, "data.batchsize"),
    ("evaluate ckpt_path=missing.ckpt", 2, "No checkpoint file at 'missing.ckpt'"),
    ("ensemble members=[one]", 2, "members must list two or more"),
    ("predict missing.ckpt image.png", 2, "No checkpoint file at 'missing.ckpt'"),
    ("export missing.ckpt -o model.onnx", 2, "No checkpoint file at 'missing.ckpt'"),
    ("results .", 2, "no finished runs"),
    ("benchmark --steps 0", 2, "--steps must be at least 1"),
    ("search trainer.max_epochs=[1", 2, "Invalid override: 'trainer.max_epochs=[1'"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("command", "status", "phrase"), DOCUMENTED_FAILURES)
def test_each_command_answers_a_documented_failure_with_its_exit_status(
    command, status, phrase, tmp_path
):
    result = run_command(command.split(), tmp_path)
    assert result.returncode == status, result.stderr
    assert phrase in result.stderr
    assert "Traceback" not in result.stderr
