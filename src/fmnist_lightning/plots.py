"""Pure plotting functions: they take arrays or data frames and return figures.

Nothing here loads checkpoints or data. The Agg backend is forced so that no window opens.
"""

import matplotlib

matplotlib.use("Agg")

from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


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


def augmented_samples(
    originals: np.ndarray, views: np.ndarray, titles: Sequence[str] | None = None
) -> Figure:
    """One row per image: the image, then its augmented views.

    ``originals`` is (N, H, W) and ``views`` (N, K, H, W), pixel values in [0, 1].
    """
    count, per_image = views.shape[:2]
    figure, axes = plt.subplots(
        count, per_image + 1, figsize=(1.3 * (per_image + 1), 1.3 * count), squeeze=False
    )
    for row in range(count):
        images = [originals[row], *views[row]]
        for col, image in enumerate(images):
            ax = axes[row, col]
            ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
        if titles is not None:
            axes[row, 0].set_ylabel(titles[row], fontsize=8)
    axes[0, 0].set_title("original", fontsize=9)
    for col in range(1, per_image + 1):
        axes[0, col].set_title(f"augmented {col}", fontsize=9)
    figure.tight_layout()
    return figure
