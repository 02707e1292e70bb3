"""Compose a config in Python as the command line would, and settle what "auto" means here.

:func:`finalise` resolves ``trainer.precision: auto`` once, before a run validates and saves
its config, so that config.yaml records what ran.
"""

from collections.abc import Sequence
from pathlib import Path

import yaml
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from fmnist_lightning.config.messages import causes, yaml_message
from fmnist_lightning.config.paths import CONFIG_DIR
from fmnist_lightning.config.resolvers import register_resolvers
from fmnist_lightning.config.resume import resume_point_or_none
from fmnist_lightning.config.schema import resumed_run_folder_problem, run_folder_problem
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


def preflight_problem(
    config_name: str, overrides: Sequence[str], multirun: bool = False
) -> str | None:
    """What would stop ``python -m fmnist_lightning.<config_name> <overrides>`` before the app
    runs, in one line: a YAML syntax error, a run folder that cannot be created or a resumed
    run's that cannot be written; None for anything else (Hydra's message says it)."""
    try:
        cfg = compose(config_name, overrides, return_hydra_config=True)
    except Exception as error:  # Hydra raises many kinds; only a YAML error is answered here
        found = next((e for e in causes(error) if isinstance(e, yaml.YAMLError)), None)
        return yaml_message(found) if found is not None else None
    multirun = multirun or "MULTIRUN" in str(OmegaConf.select(cfg, "hydra.mode"))
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    try:
        folder = OmegaConf.select(cfg, key)
    except OmegaConfBaseException:
        return None
    if not folder:
        return None
    if not multirun and resume_point_or_none(cfg.get("resume"), cfg.get("ckpt_path")):
        return resumed_run_folder_problem(folder)
    return run_folder_problem(Path(folder), "paths.root")
