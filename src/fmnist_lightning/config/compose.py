"""Compose a config in Python as the command line would."""

from collections.abc import Sequence

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

import fmnist_lightning.config.checkpoint_commands  # noqa: F401  (registers their schemas)
from fmnist_lightning.config.paths import CONFIG_DIR
from fmnist_lightning.config.resolvers import register_resolvers


def compose(
    config_name: str = "train", overrides: Sequence[str] = (), return_hydra_config: bool = False
) -> DictConfig:
    """The config ``python -m fmnist_lightning.<config_name> <overrides>`` would run with
    (outside the command line Hydra sets no run folder: pass ``paths.run_dir=<folder>``)."""
    register_resolvers()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose(config_name, list(overrides), return_hydra_config=return_hydra_config)
