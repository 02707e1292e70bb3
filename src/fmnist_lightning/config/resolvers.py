"""The resolvers the configs use."""

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from omegaconf import OmegaConf

from fmnist_lightning.config.schema import RunFolderError

# Set in a launch of several ranks (torchrun, SLURM) only: a plain run's start-up need not
# import config/launch.py.
LAUNCH_VARIABLES = ("TORCHELASTIC_RUN_ID", "SLURM_JOB_ID")


def fail_with(message: str) -> NoReturn:
    raise ValueError(message)


def resumed_run_dir(resume: str | None, ckpt_path: str | None) -> Path | None:
    """The folder of the run ``resume`` / ``ckpt_path`` continue, or None: a fresh run, or a
    bad ``resume=`` (Hydra resolves the run folder before the app runs, with a stack trace;
    train() then stops with the clear error)."""
    if not (resume or ckpt_path):
        return None
    # Imported here: a fresh run needs none of it (the startup cost of a plain run).
    from fmnist_lightning.config.resume import resume_point

    try:
        point = resume_point(resume, ckpt_path)
    except RunFolderError:
        return None
    return point and point[0]


def hydra_subdir(resume: str | None, ckpt_path: str | None, stamp: str) -> str:
    return f".hydra/resumed-{stamp}" if resumed_run_dir(resume, ckpt_path) else ".hydra"


def launch_resolver(name: str, alone: Callable[..., Any]) -> Callable[..., Any]:
    """config/launch.py's resolver ``name``, or ``alone`` outside a launch of several ranks."""

    def resolve(*args: Any) -> Any:
        if not any(os.environ.get(variable) for variable in LAUNCH_VARIABLES):
            return alone(*args)
        from fmnist_lightning.config import launch

        return getattr(launch, name)(*args)

    return resolve


def register_resolvers() -> None:
    """``${unique_id:}``: six hex digits, so two runs started in the same second get two
    folders. ``${required:'message'}`` marks a key a preset needs from the command line:
    OmegaConf's ``???`` cannot, as merging ``???`` over an existing value keeps the value.
    ``${run_folder:...}``/``${hydra_subdir:...}``: a resumed run keeps its folder and its
    original ``.hydra`` files."""
    for name, function in (
        ("unique_id", lambda: uuid.uuid4().hex[:6]),
        ("run_folder", lambda resume, ckpt, fresh: str(resumed_run_dir(resume, ckpt) or fresh)),
        ("hydra_subdir", hydra_subdir),
        ("required", fail_with),
        ("path_name", lambda path: Path(str(path)).name),
        ("launch_run_name", launch_resolver("run_name", lambda default: default)),
        ("launch_rank_zero", launch_resolver("rank_zero_only", lambda value: value)),
        ("launch_rank_suffix", launch_resolver("rank_suffix", lambda: "")),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function, use_cache=name == "unique_id")
