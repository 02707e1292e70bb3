"""Evaluate a checkpoint: metrics, tables and pictures of what the model learned and where it fails.

    python -m fmnist_lightning.evaluate ckpt_path=PATH [split=val] [output_dir=DIR]

The analysis goes to ``<run>/analysis/<checkpoint name>-<split>/`` (``<run>`` is the run
folder that holds the checkpoints/ folder, else the checkpoint's own folder), or to
``output_dir``. Every training run writes the same analysis for its best checkpoint on
the test set. The folder holds:

    report.md              one page embedding everything below, with metrics and config
    metrics.json           accuracy, loss, ECE, macro/weighted F1, timing
    per_class.csv          precision, recall, F1, support per class + macro/weighted averages
    confusion_matrix.csv   counts, rows = true class, columns = predicted class
    model_summary.txt      torchinfo: layers, output shapes, parameters, mult-adds
    samples.png architecture.png confusion_matrix.png predictions.png
    misclassified.png calibration.png
"""

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import numpy as np
import pandas as pd
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from fmnist_lightning import plots, runs
from fmnist_lightning.analysis import (
    Analysis,
    analyse,
    model_summary,
    most_confident_mistakes,
    predict_probabilities,
)
from fmnist_lightning.checkpoints import CheckpointError, load_module
from fmnist_lightning.config import CONFIG_DIR, register_resolvers
from fmnist_lightning.data import DataNotFoundError, FashionMNISTDataModule
from fmnist_lightning.module import FashionMNISTClassifier
from fmnist_lightning.precision import resolve_precision, will_use_cuda
from fmnist_lightning.report import config_summary, render_report

register_resolvers()

SPLITS = ("train", "val", "test")
ANALYSIS_DIR = "analysis"
REPORT_MD = "report.md"
# Pictures of the training run (plots/<key>.png) that the report shows when they exist.
RUN_PICTURES = ("curves", "augmented")


class UnknownSplitError(ValueError):
    """A split name other than train, val or test."""


@dataclass(frozen=True)
class AnalysisSettings:
    """What the analysis draws and how finely it bins; the values live in conf/analysis/."""

    calibration_bins: int
    samples_per_class: int
    predictions: int
    mistakes: int
    seed: int


def run_dir_of(checkpoint: Path) -> Path:
    """The run folder of a checkpoint: the parent of its checkpoints/ folder, else its own folder."""
    parent = checkpoint.resolve().parent
    return parent.parent if parent.name == runs.CHECKPOINT_DIR else parent


def default_output_dir(checkpoint: Path, split: str) -> Path:
    return run_dir_of(checkpoint) / ANALYSIS_DIR / f"{checkpoint.stem}-{split}"


def display_images(images: torch.Tensor, mean: float, std: float) -> np.ndarray:
    """Normalised (N, 1, H, W) tensors back to (N, H, W) pixels in [0, 1] for plotting."""
    return (images.float().cpu()[:, 0] * std + mean).clamp(0, 1).numpy()


def write_figures(
    result: Analysis,
    images: torch.Tensor,
    train: tuple[torch.Tensor, torch.Tensor] | None,
    module: FashionMNISTClassifier,
    settings: AnalysisSettings,
    output_dir: Path,
) -> dict[str, Path]:
    """Draw every picture of the analysis; returns the written files by ``report.PICTURES`` key."""
    mean, std = module.hparams.mean, module.hparams.std
    names, labels, probabilities = result.class_names, result.labels, result.probabilities
    written: dict[str, Path] = {}

    if train is not None:
        train_images, train_labels = train
        # Pick the first images of each class on the tensors' device, and copy only those.
        picked = torch.cat(
            [
                (train_labels == c).nonzero().flatten()[: settings.samples_per_class]
                for c in range(len(names))
            ]
        )
        figure = plots.sample_grid(
            display_images(train_images[picked], mean, std),
            train_labels[picked].cpu().numpy(),
            names,
            settings.samples_per_class,
        )
        written["samples"] = plots.save_figure(figure, output_dir / "samples.png")

    summary_text, layers = model_summary(module.net, tuple(images.shape[1:]))
    (output_dir / "model_summary.txt").write_text(summary_text + "\n")
    written["architecture"] = plots.save_figure(
        plots.architecture_diagram(layers, title=type(module.net).__name__),
        output_dir / "architecture.png",
    )
    written["confusion_matrix"] = plots.save_figure(
        plots.confusion_matrix_figure(result.confusion.numpy(), names),
        output_dir / "confusion_matrix.png",
    )

    generator = torch.Generator().manual_seed(settings.seed)
    shown = torch.randperm(len(labels), generator=generator)[: settings.predictions]
    mistakes = most_confident_mistakes(probabilities, labels, settings.mistakes)
    for key, indices, draw in (
        ("predictions", shown, plots.prediction_grid),
        ("misclassified", mistakes, plots.mistakes_grid),
    ):
        figure = draw(
            display_images(images[indices.to(images.device)], mean, std),
            labels[indices].numpy(),
            probabilities[indices].numpy(),
            names,
        )
        written[key] = plots.save_figure(figure, output_dir / f"{key}.png")

    written["calibration"] = plots.save_figure(
        plots.reliability_diagram(result.reliability, result.metrics["ece"]),
        output_dir / "calibration.png",
    )
    return written


def evaluate(
    module: FashionMNISTClassifier,
    datamodule: FashionMNISTDataModule,
    split: str,
    output_dir: Path | str,
    settings: AnalysisSettings,
    *,
    device: torch.device | str = "cpu",
    precision: str | int = "32-true",
    checkpoint: Path | str | None = None,
    run_dir: Path | str | None = None,
) -> dict[str, Any]:
    """Predict one split of a set-up datamodule, write the whole analysis; return its metrics.

    ``run_dir`` (the training run, if known) adds its curves and training summary to the report.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    images, labels = datamodule.tensors[split].tensors
    started = time.perf_counter()
    probabilities = predict_probabilities(
        module, images, datamodule.eval_batch_size, device, precision
    )
    seconds = time.perf_counter() - started
    result = analyse(probabilities, labels, module.class_names, settings.calibration_bins)

    metrics = {
        "split": split,
        **result.metrics,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "predict_seconds": round(seconds, 3),
        "images_per_second": round(len(labels) / max(seconds, 1e-9)),
        "device": str(torch.device(device)),
        "precision": str(precision),
    }
    runs.write_json(output_dir / "metrics.json", metrics)
    result.per_class.to_csv(output_dir / "per_class.csv", index=False, float_format="%.6f")
    result.confusion_frame().to_csv(output_dir / "confusion_matrix.csv")

    train = datamodule.tensors["train"].tensors if "train" in datamodule.tensors else None
    pictures = write_figures(result, images, train, module, settings, output_dir)
    run_dir = Path(run_dir) if run_dir else None
    for key in RUN_PICTURES:  # drawn by training, linked rather than copied
        if run_dir and (run_dir / runs.PLOTS_DIR / f"{key}.png").is_file():
            pictures[key] = run_dir / runs.PLOTS_DIR / f"{key}.png"
    write_report(output_dir, metrics, result, module, pictures, run_dir)
    return metrics


def write_report(
    output_dir: Path,
    metrics: dict[str, Any],
    result: Analysis,
    module: FashionMNISTClassifier,
    pictures: dict[str, Path],
    run_dir: Path | None,
) -> Path:
    def read(path: Path, reader: Any) -> Any:
        return reader(path) if path.is_file() else None

    run_config = read(run_dir / runs.CONFIG_YAML, OmegaConf.load) if run_dir else None
    run_summary = read(run_dir / runs.TEST_METRICS_JSON, runs.read_json) if run_dir else None
    settings = config_summary(
        dict(module.hparams),
        OmegaConf.to_container(run_config) if run_config is not None else None,
        run_summary,
    )
    shown = {
        "split": f"{metrics['split']} ({metrics['images']:,} images)",
        "accuracy": f"{metrics['accuracy']:.4f}",
        "loss (cross-entropy)": f"{metrics['loss']:.4f}",
        "expected calibration error": f"{metrics['ece']:.4f}",
        "macro F1": f"{metrics['macro_f1']:.4f}",
        "weighted F1": f"{metrics['weighted_f1']:.4f}",
        "checkpoint": f"`{metrics['checkpoint']}`" if metrics["checkpoint"] else "-",
        "prediction time": f"{metrics['predict_seconds']:.2f} s on {metrics['device']}, "
        f"{metrics['precision']}",
    }
    links = {
        key: Path(os.path.relpath(path, output_dir)).as_posix() for key, path in pictures.items()
    }
    title = f"Evaluation on the {metrics['split']} split"
    text = render_report(title, shown, result.per_class, settings, links)
    path = output_dir / REPORT_MD
    path.write_text(text)
    return path


@rank_zero_only
def analyse_training_run(
    settings_cfg: DictConfig, trainer: L.Trainer, datamodule: FashionMNISTDataModule, run_dir: Path
) -> Path:
    """At the end of training: the test analysis of the best checkpoint, in the run folder."""
    callback = trainer.checkpoint_callback
    best = Path(callback.best_model_path) if callback and callback.best_model_path else None
    device = trainer.strategy.root_device
    module = load_module(best, map_location=device) if best else trainer.lightning_module
    output_dir = run_dir / ANALYSIS_DIR / f"{best.stem if best else 'final'}-test"
    evaluate(
        module,
        datamodule,
        "test",
        output_dir,
        instantiate(settings_cfg),
        device=device,
        precision=str(trainer.precision),
        checkpoint=os.path.relpath(best, run_dir) if best else None,
        run_dir=run_dir,
    )
    print(f"Analysis: {(output_dir / REPORT_MD).resolve()}")
    return output_dir


def load_datamodule(
    cfg: DictConfig, module: FashionMNISTClassifier, split: str, run_dir: Path
) -> FashionMNISTDataModule:
    """The data, preprocessed exactly as the checkpoint was trained; set up for the split."""
    overrides: dict[str, Any] = {"mean": module.hparams.mean, "std": module.hparams.std}
    run_config = run_dir / runs.CONFIG_YAML
    if split != "test" and run_config.is_file():
        # The validation split is a seeded random split: rebuild the run's, not the default one.
        data = OmegaConf.load(run_config).get("data", {})
        overrides |= {k: data[k] for k in ("val_fraction", "split_seed") if k in data}
    datamodule: FashionMNISTDataModule = instantiate(cfg.data, **overrides)
    datamodule.prepare_data()
    datamodule.setup("fit")  # the training images, for samples.png
    if split == "test":
        datamodule.setup("test")
    return datamodule


def evaluate_checkpoint(cfg: DictConfig) -> tuple[dict[str, Any], Path]:
    """The evaluate command: load the checkpoint and the data, write the analysis."""
    if cfg.split not in SPLITS:
        raise UnknownSplitError(
            f"split={cfg.split} is not a split of the data; use one of {', '.join(SPLITS)}."
        )
    checkpoint = Path(cfg.ckpt_path)
    device = torch.device("cuda" if will_use_cuda(cfg.accelerator) else "cpu")
    module = load_module(checkpoint, map_location=device)
    run_dir = run_dir_of(checkpoint)
    datamodule = load_datamodule(cfg, module, cfg.split, run_dir)
    output_dir = (
        Path(cfg.output_dir) if cfg.output_dir else default_output_dir(checkpoint, cfg.split)
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, output_dir / "evaluate_config.yaml", resolve=True)
    metrics = evaluate(
        module,
        datamodule,
        cfg.split,
        output_dir,
        instantiate(cfg.analysis),
        device=device,
        precision=resolve_precision(cfg.precision, cfg.accelerator),
        checkpoint=checkpoint.resolve(),
        run_dir=run_dir,
    )
    return metrics, output_dir


def print_summary(metrics: dict[str, Any], output_dir: Path) -> None:
    """The per-class table as written to per_class.csv, the headline metrics and the folder."""
    per_class = pd.read_csv(output_dir / "per_class.csv")
    table = Table(title=f"{metrics['split']} split: {metrics['images']:,} images")
    for column in per_class.columns:
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in per_class.itertuples(index=False):
        table.add_row(row[0], *(f"{v:.4f}" for v in row[1:4]), f"{row[4]:,}")
    console = Console()
    console.print(table)
    console.print(
        f"accuracy {metrics['accuracy']:.4f}   loss {metrics['loss']:.4f}   "
        f"ECE {metrics['ece']:.4f}   predicted in {metrics['predict_seconds']:.2f} s "
        f"({metrics['images_per_second']:,} images/s, {metrics['device']}, {metrics['precision']})"
    )
    console.print(f"Analysis folder: {output_dir.resolve()}", soft_wrap=True)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    try:
        metrics, output_dir = evaluate_checkpoint(cfg)
    except (CheckpointError, DataNotFoundError, UnknownSplitError) as error:
        # Bad input is the user's to fix: a message, not a stack trace.
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print_summary(metrics, output_dir)


if __name__ == "__main__":
    main()
