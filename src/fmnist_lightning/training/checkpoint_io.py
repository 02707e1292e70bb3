"""Checkpoints never half-written, read with ``weights_only``, and which code wrote a run's
files (``provenance``: in test_metrics.json and in every checkpoint)."""

import io
import subprocess
from contextlib import suppress
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from fmnist_lightning.config.paths import PACKAGE_DIR
from fmnist_lightning.inference.output_files import write_atomically

# The checkpoint key that holds provenance(); test_metrics.json holds its keys at the top.
CHECKPOINT_KEY = "fmnist_lightning"


def git(*args: str) -> str | None:
    try:
        command = ["git", "-C", str(PACKAGE_DIR), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@cache  # three git calls, once per process: every checkpoint and the summary share them
def provenance() -> dict[str, str | bool | None]:
    """``commit`` and ``dirty`` None outside a checkout (an installed wheel); plain values, so a
    checkpoint holding them loads with weights_only."""
    package_version = commit = dirty = None
    with suppress(PackageNotFoundError):  # imported from a source tree that was never installed
        package_version = version("fmnist-lightning")
    # A wheel installed into a virtual environment inside some repository is not that
    # repository's code: the package's own files must be tracked there.
    if git("ls-files", "--error-unmatch", "__init__.py") is not None:
        commit = git("rev-parse", "HEAD")
        # Untracked files are not looked at: cheap, and they are not the package's code.
        changes = git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no")
        dirty = bool(changes) if commit and changes is not None else None
    return {"version": package_version, "commit": commit, "dirty": dirty}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Written with ``write_atomically`` (Lightning's default moves a temporary file from the
    system's temp folder: a copy, not a rename, across filesystems), serialised in memory
    first so that a full disk is one OutputFileError, not an error deep in torch's zip writer.
    Read with ``weights_only=True`` whatever the caller asks: a checkpoint never runs code."""

    def load_checkpoint(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return super().load_checkpoint(*args, **{**kwargs, "weights_only": True})

    def save_checkpoint(self, checkpoint: dict, path: Path | str, **options: Any) -> None:
        buffer = io.BytesIO()
        torch.save({**checkpoint, CHECKPOINT_KEY: provenance()}, buffer)
        write_atomically(path, buffer.getbuffer())
