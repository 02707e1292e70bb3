"""What a run folder holds, how to read it back and write it whole (``write_atomically``).
No torch: ``results`` reads run folders through it. A test checks the names agree with conf/.
"""

import csv
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fmnist_lightning.errors import UsageError
from fmnist_lightning.inference.output_files import write_atomically

METRICS_CSV = "metrics.csv"
TEST_METRICS_JSON = "test_metrics.json"
CHECKPOINT_DIR = "checkpoints"
# The file name (without .ckpt) of the checkpoint written at every epoch end and interrupt.
LAST_CHECKPOINT = "last"
PLOTS_DIR = "plots"
# Pictures of a training run, in PLOTS_DIR; the analysis report links to them.
CURVES_PNG = "curves.png"
AUGMENTED_PNG = "augmented.png"
ANALYSIS_DIR = "analysis"
CONFIG_YAML = "config.yaml"
# The lock a training process holds on its run folder (training/run_folder.py).
LOCK_FILE = ".lock"
# A distilled run's teacher: its members' checkpoints, hashes and fits (training/distillation.py).
TEACHER_JSON = "teacher.json"
# What ``python -m fmnist_lightning.ensemble`` writes into its folder.
ENSEMBLE_METRICS_JSON = "ensemble_metrics.json"
# libyaml's parser where PyYAML was built with it (its wheels are).
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
EPOCH_COLUMNS = ("train_loss", "train_acc", "val_loss", "val_acc", "val_acc_tta", "elapsed_seconds")


def run_dir_of(checkpoint: Path) -> Path:
    """The parent of a checkpoint's checkpoints/ folder, else its own folder."""
    parent = checkpoint.resolve().parent
    return parent.parent if parent.name == CHECKPOINT_DIR else parent


def run_checkpoint(path: Path) -> Path:
    """The .ckpt file itself, or a run folder's best checkpoint."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise UsageError(f"No run folder or checkpoint file at {path}.")
    best = sorted((path / CHECKPOINT_DIR).glob("best-*.ckpt"))
    if len(best) != 1:
        count = len(best) or "no"
        raise UsageError(f"{path} has {count} checkpoints/best-*.ckpt; name its .ckpt file")
    return best[0]


def epoch_metrics(metrics_csv: Path | str) -> pd.DataFrame:
    """One row per epoch of Lightning's CSVLogger file (it logs train and val on separate rows):
    each column's last value in the epoch. Read with the csv module: pandas' per-file cost was
    most of ``results``' time over thousands of runs."""
    renamed = {"train_loss_epoch": "train_loss"}
    epochs: dict[int, dict[str, float]] = {}
    with open(metrics_csv, newline="") as file:
        reader = csv.DictReader(file)
        header = {renamed.get(name, name) for name in reader.fieldnames or ()}
        columns = [column for column in EPOCH_COLUMNS if column in header]
        for row in reader:
            if None in row:
                raise ValueError(f"a row has more fields than the header: {row[None]}")
            row = {renamed.get(key, key): value for key, value in row.items()}
            values = {column: float(row[column]) for column in columns if row[column]}
            if row["epoch"] and values:
                epochs.setdefault(int(float(row["epoch"])), {}).update(values)
    rows = [{"epoch": epoch, **values} for epoch, values in sorted(epochs.items())]
    return pd.DataFrame(rows, columns=["epoch", *columns]).astype({"epoch": int})


def load_config(path: Path) -> Any:
    """A saved config as plain data, interpolations left as written; {} if absent. libyaml's
    parser: OmegaConf's own loader takes ~20x as long, which ``results`` pays per run folder."""
    return yaml.load(path.read_bytes(), Loader=LOADER) if path.is_file() else {}


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def write_json(path: Path, payload: dict[str, Any]) -> None:
    write_atomically(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def png_bytes(figure: Any) -> bytes:
    """A matplotlib figure as PNG bytes, the figure closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def save_figure(figure: Any, path: Path | str) -> Path:
    write_atomically(Path(path), png_bytes(figure))
    return Path(path)
