"""The validation table that recipe choices are made on: best val_acc (and with TTA) per run,
grouped by configuration as in the results table.

It reads ``metrics.csv`` and Hydra's record only, never ``test_metrics.json``, so a search can
be judged without a test figure in sight (the test set is read once per final run). A run
folder counts as soon as it has logged a validation epoch, so a sweep can be read while it
runs; *epochs run* shows which runs are still short. Pure: pandas and OmegaConf, no torch.
"""

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fmnist_lightning.analysis import run_files
from fmnist_lightning.analysis.finished_runs import (
    best_epoch,
    read_configuration,
    read_part,
    read_runs,
    validation_curve,
)
from fmnist_lightning.analysis.tables import markdown_table, mean_and_spread


@dataclass
class ValidationRun:
    folder: Path
    configuration: str
    from_command_line: bool
    seed: int
    best_val_acc: float
    best_val_acc_tta: float | None  # None: the run validated without TTA
    best_epoch: int  # 1-based, of best_val_acc (the checkpoint a final run would test)
    epochs: int  # validated epochs so far
    trained: str | None = field(default=None, repr=False)


def read_validation_run(folder: Path) -> ValidationRun | None:
    """One run's best validation figures; None when it has not validated yet."""
    epochs = read_part(folder, run_files.METRICS_CSV, validation_curve)
    if epochs is None:
        return None
    seed, configuration, from_command_line, trained = read_configuration(folder)
    tta = epochs.get("val_acc_tta", pd.Series(dtype=float)).dropna()
    return ValidationRun(
        folder=folder,
        configuration=configuration,
        from_command_line=from_command_line,
        seed=seed,
        best_val_acc=float(epochs["val_acc"].max()),
        best_val_acc_tta=float(tta.max()) if len(tta) else None,
        best_epoch=best_epoch(epochs),
        epochs=len(epochs),
        trained=trained,
    )


def find_validation_runs(folders: list[Path]) -> tuple[list[ValidationRun], list[str]]:
    """Runs under the folders that have validated (in the order given), and one line per
    folder that could not be read."""
    return read_runs(folders, read_validation_run)


def selection_table(runs: list[ValidationRun]) -> pd.DataFrame:
    """One row per configuration, the best mean validation accuracy with TTA first (plain
    where no run used TTA)."""
    ranked = []
    for configuration in dict.fromkeys(run.configuration for run in runs):
        group = sorted((r for r in runs if r.configuration == configuration), key=lambda r: r.seed)
        frame = pd.DataFrame([vars(run) for run in group])
        tta = frame["best_val_acc_tta"].dropna()
        with_tta = len(tta) == len(frame)
        row = {
            "configuration": f"`{configuration}`",
            "seeds": ", ".join(str(s) for s in frame["seed"]),
            "best val acc (%)": mean_and_spread(frame["best_val_acc"] * 100),
            "with TTA (%)": mean_and_spread(tta * 100) if with_tta else "",
            "per seed (%)": ", ".join(
                f"{100 * r.best_val_acc:.2f}"
                + (f" / {100 * r.best_val_acc_tta:.2f}" if with_tta else "")
                for r in group
            ),
            "best epoch": ", ".join(str(e) for e in frame["best_epoch"]),
            "epochs run": ", ".join(str(e) for e in frame["epochs"]),
        }
        ranked.append((tta.mean() if with_tta else frame["best_val_acc"].mean(), row))
    ranked.sort(key=lambda pair: pair[0], reverse=True)  # stable: ties keep their order
    return pd.DataFrame([row for _, row in ranked])


def selection_markdown(runs: list[ValidationRun]) -> str:
    return (
        markdown_table(selection_table(runs))
        + "\n\nValidation accuracy only (no test figure is read): per run the best epoch's "
        "val_acc and the best val_acc with test-time augmentation, then mean ± sample "
        "standard deviation over seeds; *per seed*: plain / with TTA. Rows are ranked by the "
        "mean with TTA (plain where a run had none).\n"
    )
