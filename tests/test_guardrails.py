"""Guardrails of the restructuring: what main wrote before any code moved keeps working.

- a checkpoint written by main at 7e48f69 (tests/fixtures/main-7e48f69, see its README)
  predicts exactly what it predicted then;
- every command answers its documented failures with its documented exit status and one
  line on stderr, never a traceback.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fmnist_lightning import load_classifier

FIXTURES = Path(__file__).parent / "fixtures" / "main-7e48f69"
BEST = FIXTURES / "run" / "checkpoints" / "best-epoch04-val_acc0.7500.ckpt"


def test_the_checkpoint_of_main_7e48f69_predicts_what_it_predicted():
    with np.load(FIXTURES / "best_expected.npz") as arrays:
        pixels, expected = (torch.from_numpy(arrays[name]) for name in ("pixels", "probabilities"))
    assert pixels.shape == (200, 28, 28)
    probabilities = load_classifier(BEST).predict(pixels).probabilities
    assert torch.allclose(probabilities, expected, atol=1e-6, rtol=0)


# (command and its arguments, exit status, a phrase of the one line it prints)
DOCUMENTED_FAILURES = [
    ("train trainer.max_epochs=0", 1, "trainer.max_epochs=0 is out of range"),
    ("train data.batchsize=3", 1, "data.batchsize"),
    ("evaluate ckpt_path=missing.ckpt", 2, "No checkpoint file at 'missing.ckpt'"),
    ("ensemble members=[one]", 2, "members must list two or more"),
    ("predict missing.ckpt image.png", 2, "No checkpoint file at 'missing.ckpt'"),
    ("export missing.ckpt -o model.onnx", 2, "No checkpoint file at 'missing.ckpt'"),
    ("results .", 2, "no finished runs"),
    ("benchmark --steps 0", 2, "--steps must be at least 1"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("command", "status", "phrase"), DOCUMENTED_FAILURES)
def test_each_command_answers_a_documented_failure_with_its_exit_status(
    command, status, phrase, tmp_path
):
    name, *arguments = command.split()
    result = subprocess.run(
        [sys.executable, "-m", f"fmnist_lightning.{name}", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == status, result.stderr
    assert phrase in result.stderr
    assert "Traceback" not in result.stderr
