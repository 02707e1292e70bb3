"""Train the seed CNN on Fashion-MNIST, then test its best checkpoint.

    python -m fmnist_lightning.train [hydra overrides, e.g. model.dropout=0.3 trainer.max_epochs=3]

One run writes one folder (``paths.run_dir``, by default ``lightning_logs/runs/<time>-<id>``)
holding the composed config, metrics.csv, checkpoints/, test_metrics.json and plots/.
"""

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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

from fmnist_lightning import resume, runs
from fmnist_lightning.augment import expand_augment_preset, save_augmentation_preview
from fmnist_lightning.config import CONFIG_DIR, register_resolvers
from fmnist_lightning.config_schema import (
    ConfigValidationError,
    exit_on_bad_overrides,
    validate_config,
)
from fmnist_lightning.data import DataError, FashionMNISTDataModule
from fmnist_lightning.evaluate import analyse_training_run
from fmnist_lightning.faults import RunStopped, explain_training_faults
from fmnist_lightning.module import FashionMNISTClassifier
from fmnist_lightning.plots import save_figure, training_curves
from fmnist_lightning.precision import resolve_precision
from fmnist_lightning.sweeps import refuse_ddp_in_multirun

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
    save_augmentation_preview(trainer.datamodule, run_dir / runs.PLOTS_DIR / "augmented.png")
    return summary


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, test the best checkpoint, write the run's artifacts; return the test metrics."""
    cfg = resume.config_to_run(cfg)  # a resumed run continues with its saved settings
    validate_config(cfg)  # bad values stop here, before any data is read
    run_dir, resuming = Path(cfg.paths.run_dir), bool(cfg.get("resume"))
    resume.check_run_dir(run_dir, resuming)  # never write into another run's folder
    L.seed_everything(cfg.seed, workers=True)
    if cfg.get("float32_matmul_precision"):
        torch.set_float32_matmul_precision(cfg.float32_matmul_precision)

    expand_augment_preset(cfg)  # data.augment=standard works like data/augment=standard
    datamodule: FashionMNISTDataModule = instantiate(cfg.data)
    datamodule.prepare_data()  # fail on missing data before building anything else
    classifier = build_classifier(cfg, list(datamodule.classes))
    trainer = build_trainer(cfg)
    refuse_ddp_in_multirun(trainer)
    # The folder is locked while this process writes there; Ctrl-C, SIGTERM, a NaN loss or
    # running out of memory become a RunStopped error with a clear message.
    with (
        resume.claim_run_dir(run_dir, resuming, lock=trainer.is_global_zero),
        explain_training_faults(trainer, run_dir, cfg.data),
    ):
        if trainer.is_global_zero:
            OmegaConf.save(cfg, run_dir / runs.CONFIG_YAML, resolve=True)

        started = time.perf_counter()
        trainer.fit(classifier, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        seconds = time.perf_counter() - started
        has_best = (
            trainer.checkpoint_callback is not None and trainer.checkpoint_callback.best_model_path
        )
        # The best file by path: "best" would warn, as there are two ModelCheckpoints.
        (test,) = trainer.test(classifier, datamodule=datamodule, ckpt_path=has_best or None)
        summary = write_run_summary(run_dir, trainer, test, seconds) or test
    if cfg.get("analysis"):  # the override ~analysis skips it
        analyse_training_run(cfg.analysis, trainer, datamodule, run_dir)
    if trainer.is_global_zero:  # last, so that it is the line a user sees at the end
        print(f"\nTest accuracy: {summary['test_acc']:.4f}   Run folder: {run_dir.resolve()}")
    return summary


@contextmanager
def exit_with_message() -> Iterator[None]:
    """For the command line: print why a run stopped (fault, bad config or data), no traceback, and exit."""
    try:
        yield
    except (RunStopped, ConfigValidationError, DataError) as stop:
        prefix = "" if isinstance(stop, RunStopped) else "Error: "
        rank_zero_only(print)(f"\n{prefix}{stop}", file=sys.stderr)
        if in_multirun():
            raise  # Hydra records the job as failed and the sweep goes on; SystemExit would end it
        sys.exit(getattr(stop, "exit_code", 1))


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    # A bad config or dataset, an interruption or a fault prints its message, no stack trace.
    with exit_with_message():
        summary = train(cfg)
    # Hydra sweepers (Optuna) optimise the value returned here.
    return summary.get(cfg.objective)


if __name__ == "__main__":
    exit_on_bad_overrides(sys.argv[1:])  # Hydra crashes on some malformed overrides
    # Call the imported module's main(), not this __main__ copy's: launchers that pickle
    # the task function for other processes (joblib) can then send it by reference.
    from fmnist_lightning.train import main as importable_main

    importable_main()
