"""Evaluate an ensemble: the mean softmax of several trained checkpoints on one split.

    python -m fmnist_lightning.ensemble 'members=[RUN_A,RUN_B]' [split=val] [tta=flip]

Choose an ensemble on ``split=val`` and read ``split=test`` once, for the chosen one; what
the ensemble folder holds and what is refused: docs/evaluation.md#ensembles.
"""

import os
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Column, Table

from fmnist_lightning import cli, evaluate
from fmnist_lightning.analysis import members, run_files
from fmnist_lightning.analysis.metrics import analyse
from fmnist_lightning.config.checkpoint_commands import validate_ensemble_config
from fmnist_lightning.config.paths import CONFIG_DIR
from fmnist_lightning.inference.batches import predict_probabilities
from fmnist_lightning.inference.output_files import write_atomically
from fmnist_lightning.models.module import load_module
from fmnist_lightning.models.runtime import resolve_device


def evaluate_ensemble(cfg: DictConfig) -> tuple[dict[str, Any], Path]:
    """Check the config and the members, predict, write the ensemble folder."""
    validate_ensemble_config(cfg)
    tta = evaluate.checked_settings(cfg)
    checkpoints = members.distinct_checkpoints(cfg.members, "members")
    runs = [run_files.run_dir_of(checkpoint) for checkpoint in checkpoints]
    if cfg.split != "test":
        members.check_shared_split(runs)
    default = f"ensemble-{'+'.join(run.name for run in runs)}-{cfg.split}"
    default = Path(os.path.commonpath(runs)) / (default + ("-tta" if tta.enabled else ""))
    output_dir = Path(cfg.output_dir or default).resolve()
    evaluate.check_output_dir(output_dir, "ensemble folder")
    device = resolve_device(cfg.accelerator)
    modules = [load_module(checkpoint, map_location=device) for checkpoint in checkpoints]
    members.check_members(modules, checkpoints)
    datamodule = evaluate.load_datamodule(cfg, modules[0], runs[0])
    images, labels = datamodule.tensors[cfg.split].tensors

    started = time.perf_counter()
    batch = datamodule.eval_batch_size
    predicted = [predict_probabilities(m, images, batch, cfg.precision, tta=tta) for m in modules]
    mean = torch.stack(predicted).mean(dim=0)
    seconds = time.perf_counter() - started
    result = analyse(mean, labels, modules[0].class_names)
    member_rows = [
        {
            # Relative to the ensemble's folder: it still reads when the tree moves.
            "checkpoint": os.path.relpath(checkpoint.resolve(), output_dir),
            "accuracy": float((probabilities.argmax(dim=1) == labels).double().mean()),
            "fit_seconds": members.fit_seconds(checkpoint),
        }
        for checkpoint, probabilities in zip(checkpoints, predicted, strict=True)
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
    write_atomically(output_dir / "ensemble_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    run_files.write_json(output_dir / run_files.ENSEMBLE_METRICS_JSON, metrics)
    per_class = result.per_class.to_csv(index=False, float_format="%.6f")
    write_atomically(output_dir / "per_class.csv", per_class)
    write_atomically(output_dir / "confusion_matrix.csv", result.confusion_frame().to_csv())
    return metrics, output_dir


def run(cfg: DictConfig) -> None:
    """The ensemble folder written, then each member's accuracy and the ensemble's."""
    metrics, output_dir = evaluate_ensemble(cfg)
    title = f"{metrics['split']} split: {metrics['images']:,} images"
    columns = [Column(name, justify="right") for name in ("accuracy", "fit seconds")]
    table = Table("member", *columns, title=title)
    ensemble = {**metrics, "checkpoint": "ensemble (mean softmax)"}
    for row in [*metrics["members"], ensemble]:
        fit = "?" if row["fit_seconds"] is None else f"{row['fit_seconds']:,.0f}"
        style = "bold" if row is ensemble else None
        table.add_row(row["checkpoint"], f"{row['accuracy']:.4f}", fit, style=style)
    console = Console()
    console.print(table)
    console.print(f"Ensemble folder: {output_dir.resolve()}", soft_wrap=True)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="ensemble")
def main(cfg: DictConfig) -> None:
    cli.run(lambda: run(cfg))


if __name__ == "__main__":  # main's cli.run is in Hydra's task, where Hydra would print its own
    cli.run(lambda: evaluate.check_command_line() or main())
