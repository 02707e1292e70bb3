"""Evaluate a checkpoint: metrics, tables and pictures of what the model learned and where it fails.

    python -m fmnist_lightning.evaluate ckpt_path=PATH [split=val] [output_dir=DIR] [tta=flip]

The analysis goes to ``<run>/analysis/<checkpoint name>-<split>[-tta]/`` or ``output_dir``;
what it holds: ``analysis.evaluation``. Config and folder are checked before anything is read.
"""

import sys
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Column, Table

from fmnist_lightning import cli
from fmnist_lightning.analysis import members
from fmnist_lightning.analysis.evaluation import default_output_dir, evaluate, run_dir_of
from fmnist_lightning.config.checkpoint_commands import validate_evaluate_config
from fmnist_lightning.config.overrides import check_overrides
from fmnist_lightning.config.paths import CONFIG_DIR
from fmnist_lightning.config.resolvers import register_resolvers
from fmnist_lightning.config.schema import run_folder_problem
from fmnist_lightning.data.datamodule import FashionMNISTDataModule
from fmnist_lightning.errors import UsageError
from fmnist_lightning.inference.output_files import write_atomically
from fmnist_lightning.models.module import FashionMNISTModule, load_module
from fmnist_lightning.models.runtime import resolve_device, resolve_precision
from fmnist_lightning.models.tta import TTA

register_resolvers()

SPLITS = ("train", "val", "test")


def checked_settings(cfg: DictConfig) -> TTA:
    """The split checked, the precision resolved (recorded as it runs), the TTA."""
    if cfg.split not in SPLITS:
        raise UsageError(f"split={cfg.split} is not a split; use one of {', '.join(SPLITS)}.")
    cfg.precision = resolve_precision(cfg.precision, cfg.accelerator)
    return TTA.of(OmegaConf.to_container(cfg.tta))


def check_output_dir(output_dir: Path, what: str) -> None:
    if problem := run_folder_problem(output_dir, "output_dir", what, example=None):
        raise UsageError(problem[0].upper() + problem[1:])


def load_datamodule(
    cfg: DictConfig, module: FashionMNISTModule, run_dir: Path
) -> FashionMNISTDataModule:
    """The data, preprocessed as the checkpoint was trained, set up for ``cfg.split``."""
    overrides: dict[str, Any] = {"mean": module.hparams.mean, "std": module.hparams.std}
    if cfg.split != "test":
        # The validation split is a seeded random split: rebuild the run's, not the default one.
        overrides |= members.run_split(run_dir) or {}
    datamodule: FashionMNISTDataModule = instantiate(cfg.data, **overrides)
    datamodule.prepare_data()
    datamodule.setup("fit")  # the training images, for samples.png
    if cfg.split == "test":
        datamodule.setup("test")
    return datamodule


def evaluate_checkpoint(cfg: DictConfig) -> tuple[dict[str, Any], Path]:
    """Check the config, load the checkpoint and the data, write the analysis folder."""
    validate_evaluate_config(cfg)
    tta = checked_settings(cfg)
    checkpoint = Path(cfg.ckpt_path)
    output_dir = Path(cfg.output_dir or default_output_dir(checkpoint, cfg.split, tta))
    check_output_dir(output_dir, "analysis folder")
    module = load_module(checkpoint, map_location=resolve_device(cfg.accelerator))
    run_dir = run_dir_of(checkpoint)
    datamodule = load_datamodule(cfg, module, run_dir)
    write_atomically(output_dir / "evaluate_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    metrics = evaluate(
        module,
        datamodule,
        cfg.split,
        output_dir,
        instantiate(cfg.analysis),
        precision=cfg.precision,
        checkpoint=checkpoint.resolve(),
        run_dir=run_dir,
        tta=tta,
    )
    return metrics, output_dir


def run(cfg: DictConfig) -> None:
    """The analysis written, then its per-class table, headline metrics and folder."""
    metrics, output_dir = evaluate_checkpoint(cfg)
    per_class = pd.read_csv(output_dir / "per_class.csv")
    columns = [Column(c, justify="left" if c == "class" else "right") for c in per_class.columns]
    table = Table(*columns, title=f"{metrics['split']} split: {metrics['images']:,} images")
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


def check_command_line() -> None:
    """Refuse, before Hydra sees them, overrides it would crash on or misread (``tta=null``)."""
    check_overrides(sys.argv[1:])  # flags are skipped there


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    cli.run(lambda: run(cfg))


if __name__ == "__main__":  # main's cli.run is in Hydra's task, where Hydra would print its own
    cli.run(lambda: check_command_line() or main())
