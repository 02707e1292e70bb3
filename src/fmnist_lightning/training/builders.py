"""The pieces of a training run, built from its composed config.

    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.classes)   # starting weights loaded here
    trainer = build_trainer(cfg)                     # callbacks, loggers, plugins

``cfg.trainer.precision`` must be resolved already (``config.compose.finalise``), so that
the precision that runs is the one the run's config.yaml records.
"""

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf

from fmnist_lightning.data.datamodule import FashionMNISTDataModule
from fmnist_lightning.models.hparams import config_values
from fmnist_lightning.models.module import FashionMNISTModule
from fmnist_lightning.models.transfer import load_starting_weights
from fmnist_lightning.training.faults import TrainerSettingsRefused
from fmnist_lightning.training.run_folder import refuse_ddp_in_multirun


def plain(node: Any) -> Any:
    """A resolved config node as plain dicts and lists, safe to store in a checkpoint."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def build_datamodule(cfg: DictConfig) -> FashionMNISTDataModule:
    return instantiate(cfg.data)


def build_module(cfg: DictConfig, class_names: Sequence[str]) -> FashionMNISTModule:
    """The LightningModule of ``cfg``; a fresh run's network starts from ``model.weights`` or
    ``model.init_from`` when one is set. A run with ``ckpt_path`` (a resume, or a new run
    from a full training state) gets its weights from that checkpoint instead, so the
    starting files are not read, and need not exist any more."""
    module = FashionMNISTModule(**config_values(cfg, class_names))
    if not cfg.get("ckpt_path"):
        message = load_starting_weights(module.net, cfg.model.weights, cfg.model.init_from)
        if message:
            rank_zero_info(message)
    return module


def build_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """The callbacks of ``cfg.callbacks``; trainer.enable_progress_bar=false drops the progress
    callback (Lightning refuses a progress bar with it)."""
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None]
    if cfg.trainer.get("enable_progress_bar", True) is False:
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    return callbacks


def build_loggers(cfg: DictConfig) -> list[Any]:
    return [instantiate(lg) for lg in cfg.logger.values() if lg is not None]


def build_trainer(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with the run's callbacks (and ``callbacks``) and loggers.

    Also sets ``float32_matmul_precision`` (null: torch's default), and refuses DDP that
    Lightning would start inside a Hydra multirun. Settings Lightning refuses (an accelerator
    this machine lacks) raise TrainerSettingsRefused with Lightning's words.
    """
    if cfg.trainer.precision == "auto":  # a programming error, not the user's
        raise ValueError("pass the config through config.compose.finalise(cfg) first")
    if cfg.get("float32_matmul_precision"):
        torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    every = [*build_callbacks(cfg), *callbacks]
    try:
        trainer = instantiate(cfg.trainer, callbacks=every, logger=build_loggers(cfg))
    except InstantiationException as error:
        if not isinstance(error.__cause__, MisconfigurationException):
            raise
        raise TrainerSettingsRefused(
            "Lightning refused the trainer settings (fix or drop the trainer.* override "
            "concerned; trainer.accelerator=auto and trainer.devices=auto use what this machine "
            f"has): {error.__cause__}"
        ) from error
    refuse_ddp_in_multirun(trainer)
    return trainer
