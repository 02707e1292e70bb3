"""Compose a config in Python as the command line would, and settle what "auto" means here.

:func:`finalise` resolves ``trainer.precision: auto`` once, before a run validates and saves
its config, so that config.yaml records what ran.
"""

from collections.abc import Sequence

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from fmnist_lightning.config.paths import CONFIG_DIR
from fmnist_lightning.config.resolvers import register_resolvers
from fmnist_lightning.models.runtime import resolve_precision


def compose(
    config_name: str = "train",
    overrides: Sequence[str] = (),
    return_hydra_config: bool = False,
) -> DictConfig:
    """The config ``python -m fmnist_lightning.<config_name> <overrides>`` would run with
    (outside the command line Hydra sets no run folder: pass ``paths.run_dir=<folder>``)."""
    register_resolvers()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose(
            config_name=config_name,
            overrides=list(overrides),
            return_hydra_config=return_hydra_config,
        )


def finalise(cfg: DictConfig) -> DictConfig:
    """A copy of a training config with ``trainer.precision: auto`` resolved for this machine."""
    cfg = cfg.copy()
    try:
        precision = OmegaConf.select(cfg, "trainer.precision")
        accelerator = OmegaConf.select(cfg, "trainer.accelerator", default="auto")
    except OmegaConfBaseException:  # an interpolation that fails: validate_config says so
        return cfg
    if precision == "auto":
        with open_dict(cfg):
            cfg.trainer.precision = resolve_precision(precision, accelerator)
    return cfg
