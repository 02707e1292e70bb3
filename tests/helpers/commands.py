"""A command's ``__main__`` in this process: its exit status and what it printed, without a
new Python (~10 s of imports apiece). For tests that are not about the process boundary;
each command still runs as a real subprocess somewhere in the suite."""

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from fmnist_lightning import cli


def run_command(command: Callable[[], object], capsys) -> tuple[int, str, str]:
    """``cli.run(command)``; its exit status, stdout and stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        cli.run(command)
    out, err = capsys.readouterr()
    return exited.value.code or 0, out, err


def run_train(*overrides: str, cwd: Path, monkeypatch, capsys) -> tuple[int, str]:
    """``python -m fmnist_lightning.train OVERRIDES`` in ``cwd`` (HYDRA_FULL_ERROR=1, as its
    ``__main__`` sets it); the exit status and stderr."""
    import fmnist_lightning.train as train_module

    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    monkeypatch.setattr(sys, "argv", ["train.py", *overrides])
    monkeypatch.setattr(train_module, "STARTED", [])
    monkeypatch.setattr(train_module, "REFUSED", [])
    # Hydra configures the root logger for its job: the next tests get it back as it was.
    monkeypatch.setattr(logging.root, "handlers", list(logging.root.handlers))
    monkeypatch.setattr(logging.root, "level", logging.root.level)
    status, _, err = run_command(train_module.command, capsys)
    return status, err
