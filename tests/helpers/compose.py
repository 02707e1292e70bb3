"""The one way tests compose configs: ``fmnist_lightning.config.compose.compose``.

``tiny(data_root, run_dir, ...)`` is the training config of fits that take seconds on the
synthetic data (``conf/debug/tiny.yaml``); ``tiny_overrides`` is the same as overrides,
for the command line.
"""

from pathlib import Path

from omegaconf import DictConfig

from fmnist_lightning.config.compose import compose
from fmnist_lightning.training.builders import finalise

__all__ = ["compose", "finalise", "tiny", "tiny_overrides"]


def tiny_overrides(data_root: Path, run_dir: Path | None = None, *extra: str) -> list[str]:
    """``debug=tiny`` on ``data_root``, in ``run_dir`` (None: Hydra's own run folder)."""
    run = [f"paths.run_dir={run_dir}"] if run_dir is not None else []
    return ["debug=tiny", f"data.root={data_root}", *run, *extra]


def tiny(data_root: Path, run_dir: Path, *extra: str) -> DictConfig:
    """The training config of a tiny fit on ``data_root`` in ``run_dir``; ``extra`` overrides."""
    return compose("train", tiny_overrides(data_root, run_dir, *extra))
