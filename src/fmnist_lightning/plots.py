"""Pure plotting functions: they take arrays or data frames and return figures.

Nothing here loads checkpoints or data. The Agg backend is forced so that no window opens.
"""

import matplotlib

matplotlib.use("Agg")

from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MultipleLocator  # noqa: E402


def save_figure(figure: Figure, path: Path | str, dpi: int = 110) -> Path:
    """Save and close a figure, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return path


def training_curves(epochs: pd.DataFrame) -> Figure:
    """Accuracy and loss per epoch, train vs. validation (columns as ``runs.epoch_metrics`` gives)."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = epochs["epoch"] + 1
    for ax, quantity in zip(axes, ("acc", "loss"), strict=True):
        for split, style in (("train", "o-"), ("val", "s--")):
            column = f"{split}_{quantity}"
            if column in epochs:
                ax.plot(
                    x, epochs[column], style, label={"train": "train", "val": "validation"}[split]
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel({"acc": "accuracy", "loss": "cross-entropy loss"}[quantity])
        ax.set_title({"acc": "Accuracy", "loss": "Loss"}[quantity])
        ax.grid(alpha=0.3)
        ax.legend()
    figure.tight_layout()
    return figure


def sweep_comparison(curves: dict[str, pd.DataFrame], summary: pd.DataFrame) -> Figure:
    """Validation accuracy per epoch, one line per job; best val and test accuracy per job.

    ``curves`` maps a job label to its ``runs.epoch_metrics`` frame; ``summary`` has the
    columns job, status, best_val_acc and test_acc (``sweeps.summarise_sweep``).
    """
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(13, 4 + 0.15 * len(summary)), gridspec_kw={"width_ratios": [3, 2]}
    )
    for label, epochs in curves.items():
        left.plot(epochs["epoch"] + 1, epochs["val_acc"], "o-", label=label)
    epochs_run = max((int(epochs["epoch"].max()) + 1 for epochs in curves.values()), default=1)
    left.set_xlim(0.5, epochs_run + 0.5)
    left.xaxis.set_major_locator(MultipleLocator(max(1, epochs_run // 10)))
    left.set_xlabel("epoch")
    left.set_ylabel("validation accuracy")
    left.set_title("Validation accuracy per job")
    left.grid(alpha=0.3)
    if curves:
        left.legend(fontsize="small")
    rows = summary.iloc[::-1]  # best job at the top
    positions = range(len(rows))
    best_val = pd.to_numeric(rows["best_val_acc"]).fillna(0.0)
    test = pd.to_numeric(rows["test_acc"]).fillna(0.0)
    right.barh([p + 0.2 for p in positions], best_val, height=0.4, label="best val_acc")
    right.barh([p - 0.2 for p in positions], test, height=0.4, label="test_acc")
    right.set_yticks(list(positions))
    right.set_yticklabels(
        [
            f"#{job}" + ("" if status == "completed" else f" ({status})")
            for job, status in zip(rows["job"], rows["status"], strict=True)
        ]
    )
    right.set_xlabel("accuracy")
    right.set_title("Jobs, best first")
    right.grid(alpha=0.3, axis="x")
    right.legend(fontsize="small", loc="lower right")
    figure.tight_layout()
    return figure
