"""The resolvers the configs use."""

import uuid
from pathlib import Path
from typing import NoReturn

from omegaconf import OmegaConf

from fmnist_lightning.config import launch, resume
from fmnist_lightning.config.schema import register_schemas


def fail_with(message: str) -> NoReturn:
    raise ValueError(message)


def register_resolvers() -> None:
    """``${unique_id:}``: six hex digits, so two runs started in the same second get two
    folders. ``${required:'message'}`` marks a key a preset needs from the command line:
    OmegaConf's ``???`` cannot, as merging ``???`` over an existing value keeps the value."""
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
