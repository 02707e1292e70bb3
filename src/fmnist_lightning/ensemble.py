"""Evaluate an ensemble: the mean softmax of several trained checkpoints on one split.

    python -m fmnist_lightning.ensemble 'members=[RUN_A,RUN_B]' [split=test] [tta=none]

A member is a run folder (its one ``checkpoints/best-*.ckpt``, the best validation accuracy)
or a .ckpt file. Each member predicts the split with test-time augmentation (``tta``, flip by
default) and the ensemble's probabilities are the mean of the members'. Choose an ensemble on
``split=val`` (the default) and read ``split=test`` once, for the chosen one. Validation needs
members trained on the same train/val split (``data.split_seed``, ``data.val_fraction``):
otherwise some validation images would be training images of another member. Train members
for an ensemble with one split and different seeds, e.g.
``python -m fmnist_lightning.train -m experiment=best seed=0,10 data.split_seed=0``.

Writes to ``output_dir`` (default: the members' common folder, in
``ensemble-<their run folders' names joined by +>-<split>[-tta]/``): ensemble_metrics.json
(the ensemble's metrics; each member's checkpoint, relative to that folder, accuracy and fit
seconds; their sum, what the ensemble cost to train), per_class.csv, confusion_matrix.csv and
ensemble_config.yaml. Exit status as evaluate's: 0 when written, 2 for bad input (one line on
stderr), before anything is written.
"""

import os
import sys
import time
from itertools import combinations
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from fmnist_lightning.analysis import run_files
from fmnist_lightning.analysis.evaluation import run_dir_of
from fmnist_lightning.analysis.metrics import analyse
from fmnist_lightning.config.paths import CONFIG_DIR
from fmnist_lightning.config.resolvers import register_resolvers
from fmnist_lightning.config.schema import (
    ConfigValidationError,
    run_folder_problem,
    validate_ensemble_config,
)
from fmnist_lightning.evaluate import (
    BAD_INPUT,
    EXIT_OK,
    EXIT_USAGE,
    SPLITS,
    UnknownSplitError,
    bad_override_status,
    load_datamodule,
)
from fmnist_lightning.inference.batches import ensemble_probabilities
from fmnist_lightning.models.module import FashionMNISTModule, load_module
from fmnist_lightning.models.runtime import resolve_device, resolve_precision
from fmnist_lightning.models.tta import TTA

register_resolvers()

# The data keys that decide which training images became validation images.
SPLIT_KEYS = ("val_fraction", "split_seed")


class EnsembleError(ValueError):
    """Members that cannot make an ensemble: missing, ambiguous or trained incompatibly."""


def member_checkpoint(member: Path) -> Path:
    """The checkpoint of a member: the .ckpt file itself, or a run folder's best checkpoint."""
    if member.is_file():
        return member
    if not member.is_dir():
        raise EnsembleError(f"No run folder or checkpoint file at {member}.")
    best = sorted((member / run_files.CHECKPOINT_DIR).glob("best-*.ckpt"))
    if len(best) != 1:
        found = "no" if not best else f"{len(best)}"
        raise EnsembleError(
            f"{member} has {found} checkpoints/best-*.ckpt; name the member's .ckpt file instead."
        )
    return best[0]


def training_split(checkpoint: Path) -> dict[str, Any]:
    """The train/val split a checkpoint was trained on, from its run's config.yaml."""
    config = run_dir_of(checkpoint) / run_files.CONFIG_YAML
    if not config.is_file():
        raise EnsembleError(
            f"No {run_files.CONFIG_YAML} beside {checkpoint}'s checkpoints folder: which images "
            "it trained on is unknown, so it can be in an ensemble for split=test only."
        )
    data = OmegaConf.load(config).get("data", {})
    return {key: data.get(key) for key in SPLIT_KEYS}


def check_shared_split(checkpoints: list[Path]) -> None:
    """Members validated together must share their train/val split (else leaks)."""
    splits = [training_split(checkpoint) for checkpoint in checkpoints]
    if any(split != splits[0] for split in splits):
        seen = ", ".join(
            f"{run_dir_of(c).name}: {s}" for c, s in zip(checkpoints, splits, strict=True)
        )
        raise EnsembleError(
            f"The members were trained on different train/val splits ({seen}), so some "
            "validation images are training images of another member. Train members with one "
            "data.split_seed (e.g. -m seed=0,10 data.split_seed=0), or evaluate split=test."
        )


def check_same_inputs(modules: list[FashionMNISTModule], checkpoints: list[Path]) -> None:
    """The members read the same tensors: one normalisation and one list of classes."""
    expected = modules[0].hparams
    for module, checkpoint in zip(modules[1:], checkpoints[1:], strict=True):
        for key in ("mean", "std", "class_names"):
            if module.hparams[key] != expected[key]:
                raise EnsembleError(
                    f"{checkpoint} has {key}={module.hparams[key]!r} but {checkpoints[0]} has "
                    f"{expected[key]!r}; an ensemble's members must agree on it."
                )


def same_weights(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    """Whether two modules hold equal tensors under the same names."""
    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def check_distinct_weights(modules: list[torch.nn.Module], checkpoints: list[Path]) -> None:
    """Members with equal weights (a run and its copy) are one model counted twice: its own
    accuracy, reported as an ensemble's, with its fit time doubled."""
    pairs = combinations(zip(checkpoints, modules, strict=True), 2)
    for (first, first_module), (second, second_module) in pairs:
        if same_weights(first_module, second_module):
            raise EnsembleError(
                f"{second} holds the same weights as {first} (a copy of one run?), so they "
                "would be one model counted twice; keep one of them and add a member trained "
                "with another seed."
            )


def fit_seconds(checkpoint: Path) -> float | None:
    """Seconds from the start of fitting to the end of the member's last epoch (metrics.csv)."""
    metrics_csv = run_dir_of(checkpoint) / run_files.METRICS_CSV
    if not metrics_csv.is_file():
        return None
    elapsed = run_files.epoch_metrics(metrics_csv).get("elapsed_seconds")
    return None if elapsed is None or elapsed.dropna().empty else float(elapsed.dropna().iloc[-1])


def default_output_dir(checkpoints: list[Path], split: str, tta: TTA) -> Path:
    """<the members' common folder>/ensemble-<run folder names joined by +>-<split>[-tta]/."""
    runs = [run_dir_of(checkpoint) for checkpoint in checkpoints]
    names = "+".join(run.name for run in runs)
    return (
        Path(os.path.commonpath(runs)) / f"ensemble-{names}-{split}{'-tta' if tta.enabled else ''}"
    )


def evaluate_ensemble(cfg: DictConfig) -> tuple[dict[str, Any], Path]:
    """The ensemble command: check the config and the members, predict, write the metrics."""
    validate_ensemble_config(cfg)
    if cfg.split not in SPLITS:
        raise UnknownSplitError(
            f"split={cfg.split} is not a split of the data; use one of {', '.join(SPLITS)}."
        )
    cfg.precision = resolve_precision(cfg.precision, cfg.accelerator)
    tta = TTA.of(OmegaConf.to_container(cfg.tta))
    checkpoints = [member_checkpoint(Path(member)) for member in cfg.members]
    if len({checkpoint.resolve() for checkpoint in checkpoints}) < len(checkpoints):
        raise EnsembleError(f"A checkpoint is listed twice in members={list(cfg.members)}.")
    if cfg.split != "test":
        check_shared_split(checkpoints)
    output_dir = (
        Path(cfg.output_dir) if cfg.output_dir else default_output_dir(checkpoints, cfg.split, tta)
    ).resolve()
    unwritable = run_folder_problem(output_dir, "output_dir", "ensemble folder", example=None)
    if unwritable:
        raise ConfigValidationError(unwritable[0].upper() + unwritable[1:])
    device = resolve_device(cfg.accelerator)
    modules = [load_module(checkpoint, map_location=device) for checkpoint in checkpoints]
    check_distinct_weights(modules, checkpoints)
    check_same_inputs(modules, checkpoints)
    datamodule = load_datamodule(cfg, modules[0], cfg.split, run_dir_of(checkpoints[0]))
    images, labels = datamodule.tensors[cfg.split].tensors

    started = time.perf_counter()
    mean, members = ensemble_probabilities(
        modules, images, datamodule.eval_batch_size, cfg.precision, tta
    )
    seconds = time.perf_counter() - started
    result = analyse(mean, labels, modules[0].class_names)
    member_rows = [
        {
            # Relative to the ensemble's folder: it still reads when the tree moves.
            "checkpoint": os.path.relpath(checkpoint.resolve(), output_dir),
            "accuracy": float((probabilities.argmax(dim=1) == labels).double().mean()),
            "fit_seconds": fit_seconds(checkpoint),
        }
        for checkpoint, probabilities in zip(checkpoints, members, strict=True)
    ]
    fits = [row["fit_seconds"] for row in member_rows]
    metrics = {
        "split": cfg.split,
        **result.metrics,
        "members": member_rows,
        # What the ensemble cost to train: its members' fits one after another.
        "fit_seconds": None if None in fits else round(sum(fits), 1),
        "predict_seconds": round(seconds, 3),
        "device": str(device),
        "precision": str(cfg.precision),
        "tta": tta.as_dict() if tta.enabled else None,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, output_dir / "ensemble_config.yaml", resolve=True)
    run_files.write_json(output_dir / run_files.ENSEMBLE_METRICS_JSON, metrics)
    result.per_class.to_csv(output_dir / "per_class.csv", index=False, float_format="%.6f")
    result.confusion_frame().to_csv(output_dir / "confusion_matrix.csv")
    return metrics, output_dir


def print_summary(metrics: dict[str, Any], output_dir: Path) -> None:
    """Each member's accuracy and the ensemble's, on the split."""
    table = Table(title=f"{metrics['split']} split: {metrics['images']:,} images")
    for column in ("member", "accuracy", "fit seconds"):
        table.add_column(column, justify="left" if column == "member" else "right")
    for row in metrics["members"]:
        fit = "?" if row["fit_seconds"] is None else f"{row['fit_seconds']:,.0f}"
        table.add_row(row["checkpoint"], f"{row['accuracy']:.4f}", fit)
    fit = "?" if metrics["fit_seconds"] is None else f"{metrics['fit_seconds']:,.0f}"
    table.add_row("ensemble (mean softmax)", f"{metrics['accuracy']:.4f}", fit, style="bold")
    console = Console()
    console.print(table)
    console.print(f"Ensemble folder: {output_dir.resolve()}", soft_wrap=True)


def run(cfg: DictConfig) -> int:
    """The ensemble command on a composed config; returns its exit status."""
    try:
        metrics, output_dir = evaluate_ensemble(cfg)
    except (*BAD_INPUT, EnsembleError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print_summary(metrics, output_dir)
    return EXIT_OK


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="ensemble")
def main(cfg: DictConfig) -> None:
    status = run(cfg)
    if status != EXIT_OK:
        sys.exit(status)


if __name__ == "__main__":
    status = bad_override_status(sys.argv[1:])  # before Hydra, which crashes on some of them
    if status is not None:
        sys.exit(status)
    main()
