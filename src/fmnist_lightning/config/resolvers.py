"""The resolvers the configs use: ``${unique_id:}``, ``${required:...}``, ``${path_name:...}``, and resume's two."""

import uuid
from pathlib import Path
from typing import NoReturn

from omegaconf import OmegaConf

from fmnist_lightning.config import launch, resume
from fmnist_lightning.config.schema import register_schemas


def fail_with(message: str) -> NoReturn:
    """The ``${required:'message'}`` resolver: reached only when the key was left unset."""
    raise ValueError(message)


def register_resolvers() -> None:
    """``${unique_id:}``: six hex digits, so two runs started in the same second get two folders.

    ``${run_folder:...}`` and ``${hydra_subdir:...}`` point Hydra at a resumed run's folder.
    ``${launch_run_name:...}``, ``${launch_rank_zero:...}`` and ``${launch_rank_suffix:}``
    give every rank of a torchrun or SLURM launch one run folder (``config.launch``).
    ``${path_name:<path>}``: the last part of a path (a run's folder name, for MLflow).
    ``${required:'message'}`` marks a key a preset needs from the command line: resolving it
    (i.e. leaving it unset) fails with the message. OmegaConf's ``???`` cannot do this in a
    preset, because merging ``???`` over an existing value keeps the value.
    """
    register_schemas()
    if not OmegaConf.has_resolver("unique_id"):
        OmegaConf.register_new_resolver("unique_id", lambda: uuid.uuid4().hex[:6], use_cache=True)
    for name, function in (
        ("run_folder", resume.run_folder),
        ("hydra_subdir", resume.hydra_subdir),
        ("required", fail_with),
        ("path_name", lambda path: Path(str(path)).name),
        ("launch_run_name", launch.run_name),
        ("launch_rank_zero", launch.rank_zero_only),
        ("launch_rank_suffix", launch.rank_suffix),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
