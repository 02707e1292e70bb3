"""Train the seed CNN on Fashion-MNIST, then test its best checkpoint.

    python -m fmnist_lightning.train [hydra overrides, e.g. model.dropout=0.3 trainer.max_epochs=3]

One run writes one folder (``paths.run_dir``, by default ``lightning_logs/runs/<time>-<id>``)
holding the composed config, metrics.csv, checkpoints/, test_metrics.json and plots/.
"""

import os
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from fmnist_lightning import runs
from fmnist_lightning.config import CONFIG_DIR, register_resolvers
from fmnist_lightning.config_schema import (
    ConfigValidationError,
    exit_on_bad_overrides,
    validate_config,
)
from fmnist_lightning.data import DataError, FashionMNISTDataModule
from fmnist_lightning.module import FashionMNISTClassifier
from fmnist_lightning.plots import save_figure, training_curves
from fmnist_lightning.precision import resolve_precision

register_resolvers()


def plain(node: Any) -> Any:
    """A resolved config node as plain dicts and lists, safe to store in a checkpoint."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def build_classifier(cfg: DictConfig, class_names: list[str]) -> FashionMNISTClassifier:
    return FashionMNISTClassifier(
        model=plain(cfg.model),
        optimizer=plain(cfg.optimizer),
        scheduler=plain(cfg.scheduler),
        label_smoothing=cfg.label_smoothing,
        class_names=class_names,
        mean=cfg.data.mean,
        std=cfg.data.std,
    )


def build_trainer(cfg: DictConfig) -> L.Trainer:
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None]
    loggers = [instantiate(lg) for lg in cfg.logger.values() if lg is not None]
    precision = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers, precision=precision)


@rank_zero_only
def write_run_summary(run_dir: Path, trainer: L.Trainer, test: dict, seconds: float) -> dict:
    """test_metrics.json and plots/curves.png, from what the run logged."""
    checkpoint = trainer.checkpoint_callback
    best_path, best_score = (
        (checkpoint.best_model_path, checkpoint.best_model_score) if checkpoint else ("", None)
    )
    summary = {
        **{k: float(v) for k, v in test.items()},
        # Relative to the run folder, so that a moved or copied run still makes sense.
        "best_checkpoint": os.path.relpath(best_path, run_dir) if best_path else None,
        "best_val_acc": float(best_score) if best_score is not None else None,
        "epochs": trainer.current_epoch,
        "precision": str(trainer.precision),
        "fit_seconds": round(seconds, 1),
        "seconds_per_epoch": round(seconds / max(trainer.current_epoch, 1), 2),
        "parameters": sum(p.numel() for p in trainer.lightning_module.parameters()),
        "device": str(trainer.strategy.root_device),
    }
    runs.write_json(run_dir / runs.TEST_METRICS_JSON, summary)
    epochs = runs.epoch_metrics(run_dir / runs.METRICS_CSV)
    save_figure(training_curves(epochs), run_dir / runs.PLOTS_DIR / "curves.png")
    return summary


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, test the best checkpoint, write the run's artifacts; return the test metrics."""
    validate_config(cfg)  # bad values stop here, before any data is read
    run_dir = Path(cfg.paths.run_dir)
    L.seed_everything(cfg.seed, workers=True)
    if cfg.get("float32_matmul_precision"):
        torch.set_float32_matmul_precision(cfg.float32_matmul_precision)

    datamodule: FashionMNISTDataModule = instantiate(cfg.data)
    datamodule.prepare_data()  # fail on missing data before building anything else
    classifier = build_classifier(cfg, list(datamodule.classes))
    trainer = build_trainer(cfg)
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run_dir / runs.CONFIG_YAML, resolve=True)

    started = time.perf_counter()
    trainer.fit(classifier, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    seconds = time.perf_counter() - started
    has_best = (
        trainer.checkpoint_callback is not None and trainer.checkpoint_callback.best_model_path
    )
    (test,) = trainer.test(
        classifier, datamodule=datamodule, ckpt_path="best" if has_best else None
    )
    summary = write_run_summary(run_dir, trainer, test, seconds) or test
    if trainer.is_global_zero:
        print(f"\nTest accuracy: {summary['test_acc']:.4f}   Run folder: {run_dir.resolve()}")
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        summary = train(cfg)
    except (ConfigValidationError, DataError) as error:
        # A user's mistake gets its message, not a stack trace, and exit status 1. In a
        # sweep the launcher records the failed job instead, and the other jobs still run.
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        raise SystemExit(f"Error: {error}") from None
    # Hydra sweepers (Optuna) optimise the value returned here.
    return summary.get(cfg.objective)


if __name__ == "__main__":
    exit_on_bad_overrides(sys.argv[1:])
    main()
