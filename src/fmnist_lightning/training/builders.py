"""The pieces of a training run, built from its composed config.

``cfg.trainer.precision`` must be resolved already (``finalise``), so that the precision
that runs is the one the run's config.yaml records."""

from collections.abc import Sequence
from functools import partial

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf

from fmnist_lightning.data.datamodule import FashionMNISTDataModule
from fmnist_lightning.errors import Stopped
from fmnist_lightning.models.hparams import config_values
from fmnist_lightning.models.module import FashionMNISTModule
from fmnist_lightning.models.runtime import resolve_precision
from fmnist_lightning.training.run_folder import refuse_ddp_in_multirun


def finalise(cfg: DictConfig) -> DictConfig:
    """A copy of a training config with ``trainer.precision: auto`` resolved for this machine,
    before the run validates and saves it, so that config.yaml records what ran."""
    cfg = cfg.copy()
    # An interpolation that fails is left as it is: validate_config says so.
    select = partial(OmegaConf.select, cfg, throw_on_resolution_failure=False)
    if select("trainer.precision") == "auto":
        accelerator = select("trainer.accelerator", default="auto")
        cfg.trainer.precision = resolve_precision("auto", accelerator)
    return cfg


def build_datamodule(cfg: DictConfig) -> FashionMNISTDataModule:
    return instantiate(cfg.data)


def build_module(cfg: DictConfig, class_names: Sequence[str]) -> FashionMNISTModule:
    """The LightningModule of ``cfg``; a fresh run's network starts from ``model.weights`` or
    ``model.init_from``. A run with ``ckpt_path`` gets its weights from that checkpoint, so
    the starting files are not read, and need not exist any more."""
    module = FashionMNISTModule(**config_values(cfg, class_names))
    if not cfg.get("ckpt_path") and (cfg.model.weights or cfg.model.init_from):
        # Imported here: a plain run starts from fresh weights (startup cost of a plain run).
        from fmnist_lightning.models.transfer import load_starting_weights

        rank_zero_info(load_starting_weights(module.net, cfg.model.weights, cfg.model.init_from))
    return module


def build_trainer(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with the run's callbacks (and ``callbacks``) and loggers;
    refuses DDP that Lightning would start inside a Hydra multirun."""
    if cfg.get("float32_matmul_precision"):
        torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    every = [*(instantiate(c) for c in cfg.callbacks.values() if c is not None), *callbacks]
    if cfg.trainer.get("enable_progress_bar", True) is False:  # Lightning refuses a bar then
        every = [c for c in every if not isinstance(c, ProgressBar)]
    loggers = [instantiate(lg) for lg in cfg.logger.values() if lg is not None]
    try:
        trainer = instantiate(cfg.trainer, callbacks=every, logger=loggers)
    except InstantiationException as error:
        if not isinstance(error.__cause__, MisconfigurationException):
            raise
        raise Stopped(
            f"Lightning refused the trainer settings (fix or drop the trainer.* override): {error.__cause__}"
        ) from error
    refuse_ddp_in_multirun(trainer)
    return trainer
