"""Pure plotting functions: arrays or data frames in, matplotlib figures out. Nothing here
loads checkpoints or data, imports torch or writes a file (``run_files.save_figure`` does)."""

from collections.abc import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import FancyBboxPatch

matplotlib.use("Agg")  # no window opens

LAYER_COLOURS = {
    "Input": "#c7c7c7",
    "Conv2d": "#1f77b4",
    "BatchNorm2d": "#17becf",
    "MaxPool2d": "#ff7f0e",
    "AvgPool2d": "#ff7f0e",
    "Flatten": "#9467bd",
    "Linear": "#2ca02c",
    "Dropout": "#7f7f7f",
}
RIGHT, WRONG = "#1f77b4", "#d62728"


def sample_grid(
    images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], per_class: int = 8
) -> plt.Figure:
    """The first ``per_class`` images (N, H, W) of every class, one row per class."""
    figure, axes = blank_grid(len(class_names) * per_class, per_class, (0.85, 0.85))
    plt.setp(axes, frame_on=False)
    for row, name in enumerate(class_names):
        picked = np.flatnonzero(np.asarray(labels) == row)[:per_class]
        for ax, index in zip(axes[row], picked, strict=False):
            ax.imshow(images[index], cmap="gray_r")
        axes[row, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=10)
    figure.suptitle(f"{per_class} training images per class", y=0.99)
    figure.subplots_adjust(wspace=0.05, hspace=0.05, top=0.95)
    return figure


def architecture_diagram(layers: pd.DataFrame, title: str = "Architecture") -> plt.Figure:
    """The layer stack top to bottom (``model_summary.model_summary``'s rows): one box per
    layer, its output shape and parameter count."""
    relu = layers["layer"] == "ReLU"  # each folded into the layer before: "Conv2d 64, 7×7 + ReLU"
    suffix = relu.shift(-1, fill_value=False).map({True: " + ReLU", False: ""})
    rows = layers.assign(layer=layers["layer"] + suffix)[~relu]
    figure, ax = plt.subplots(figsize=(7.5, 0.55 * len(rows) + 0.9))
    ax.set(xlim=(0, 10), ylim=(-len(rows) + 0.3, 1.1))
    ax.axis("off")
    box = "round,pad=0.02,rounding_size=0.12"
    for index, row in enumerate(rows.to_dict("records")):
        y, colour = -index, LAYER_COLOURS.get(row["layer"].split()[0], "#e377c2")
        ax.add_patch(FancyBboxPatch((0.2, y - 0.3), 5.2, 0.6, box, fc=colour, ec=colour, alpha=0.3))
        ax.text(2.8, y, row["layer"], ha="center", va="center", fontsize=10)
        ax.text(5.7, y, row["output_shape"], va="center", fontsize=10, family="monospace")
        params = f"{row['params']:,} params" if row["params"] else ""
        ax.text(9.9, y, params, ha="right", va="center", fontsize=9, color="#555555")
        if index:  # an arrow from the box above
            ax.annotate("", (2.8, y + 0.3), (2.8, y + 0.7), arrowprops={"arrowstyle": "->"})
    total = f"{int(layers['params'].sum()):,} parameters, "
    total += f"{layers['mult_adds'].sum() / 1e6:.1f} M multiply-adds per image"
    ax.text(5.7, 0.75, "output shape", ha="left", fontsize=9, color="#555555")
    ax.set_title(f"{title}: {total}", fontsize=11)
    return figure


def confusion_matrix_figure(counts: np.ndarray, class_names: Sequence[str]) -> plt.Figure:
    """Counts, and the same matrix with every row (true class) divided by its total."""
    normalised = counts / counts.sum(axis=1, keepdims=True).clip(min=1)  # an empty row stays 0
    size = len(class_names)
    figure, axes = plt.subplots(1, 2, figsize=(2 * (0.75 * size + 2.5), 0.75 * size + 1.5))
    panels = (
        (counts, "Counts", "{:.0f}"),
        (normalised, "Row-normalised (recall on the diagonal)", "{:.2f}"),
    )
    for ax, (matrix, title, text) in zip(axes, panels, strict=True):
        image = ax.imshow(matrix, cmap="Blues")
        for (y, x), value in np.ndenumerate(matrix):  # y: true class, x: predicted
            if value:  # white on the dark cells
                colour = "white" if value > matrix.max() / 2 else "black"
                ax.text(x, y, text.format(value), ha="center", va="center", size=8, c=colour)
        ax.set_xticks(range(size), class_names, rotation=45, ha="right")
        ax.set_yticks(range(size), class_names)
        ax.set(xlabel="predicted class", ylabel="true class", title=title)
        figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    figure.tight_layout()
    return figure


def blank_grid(count: int, columns: int, size: tuple[float, float], **options) -> tuple:
    """ceil(count / columns) rows of ``columns`` axes of ``size`` inches: ``count`` without
    ticks, the rest off."""
    rows = max(1, -(-count // columns))
    figsize = (columns * size[0], rows * size[1])
    figure, axes = plt.subplots(rows, columns, figsize=figsize, squeeze=False, **options)
    plt.setp(axes, xticks=[], yticks=[])
    for ax in axes.flat[count:]:
        ax.axis("off")
    return figure, axes


def thumbnail(ax: plt.Axes, image: np.ndarray, label: int, probs: np.ndarray, names, title: str):
    """``image``, ``title`` formatted with its ``true`` and ``predicted`` class, the latter's
    probability ``p`` and a ``mark`` if wrong; red and framed if wrong. (predicted, wrong)."""
    predicted = int(probs.argmax())
    wrong = predicted != int(label)
    title = title.format(
        true=names[label], predicted=names[predicted], p=probs[predicted], mark="✗ " * wrong
    )
    ax.imshow(image, cmap="gray_r")
    ax.set_title(title, fontsize=9, color=WRONG if wrong else "black")
    if wrong:  # a red frame marks a mistake even in a small thumbnail
        plt.setp(list(ax.spines.values()), edgecolor=WRONG, linewidth=2.5)
    return predicted, wrong


def prediction_grid(
    images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]
) -> plt.Figure:
    """Each image with its predicted class (red and framed when wrong) and true class, and a
    bar chart of its class probabilities (the true class's bar outlined when wrong)."""
    # Three (image, bars) pairs per row.
    figure, axes = blank_grid(2 * len(images), 6, (2.6, 2.1), width_ratios=[1, 1.6] * 3)
    for index, (image, label, probs) in enumerate(zip(images, labels, probabilities, strict=True)):
        image_ax, bar_ax = axes.reshape(-1, 2)[index]
        title = "{mark}{predicted} {p:.0%}\n(true: {true})"
        predicted, wrong = thumbnail(image_ax, image, label, probs, class_names, title)
        colours = ["#bbbbbb"] * len(class_names)
        colours[predicted] = WRONG if wrong else RIGHT
        bars = bar_ax.barh(range(len(class_names)), probs, color=colours)
        if wrong:
            bars[int(label)].set(edgecolor=RIGHT, linewidth=1.5)
        bar_ax.set(xlim=(0, 1), xticks=[0, 0.5, 1])
        bar_ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
        bar_ax.invert_yaxis()
        bar_ax.tick_params(axis="x", labelsize=7)
    figure.suptitle("Predicted class and its probability (true class)", y=1.0)
    figure.tight_layout()
    return figure


def mistakes_grid(
    images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]
) -> plt.Figure:
    """Misclassified images titled with true class, predicted class and confidence."""
    figure, axes = blank_grid(len(images), 6, (1.9, 2.5), layout="constrained")
    for ax, *shown in zip(axes.flat, images, labels, probabilities, strict=False):
        # shown: image, label, probabilities
        thumbnail(ax, *shown, class_names, "true: {true}\npred: {predicted}\n{p:.1%}")
    if not len(images):
        axes[0, 0].text(0, 0.5, "no mistakes", fontsize=12)
    figure.suptitle("Most confident mistakes")
    return figure


def reliability_diagram(bins: pd.DataFrame, ece: float) -> plt.Figure:
    """Accuracy against mean confidence per bin (``metrics.reliability_table``), and how many
    images fall in each: bars below the diagonal mean overconfidence."""
    figure, (top, bottom) = plt.subplots(2, figsize=(5.5, 6.5), sharex=True, height_ratios=[3, 1])
    left, widths, accuracy = bins["lower"], bins["upper"] - bins["lower"], bins["accuracy"]
    # An empty bin's accuracy and confidence are NaN: matplotlib draws no bar there.
    top.bar(left, accuracy, widths, align="edge", color=RIGHT, ec="white", label="accuracy")
    gap_style = {"color": WRONG, "alpha": 0.3, "ec": WRONG, "hatch": "//"}
    gap = bins["confidence"] - accuracy
    top.bar(left, gap, widths, accuracy, align="edge", label="gap to confidence", **gap_style)
    top.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    top.set_title(f"Reliability diagram (ECE = {ece:.2%})")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(left, bins["count"], widths, align="edge", color="#7f7f7f")
    bottom.set(yscale="symlog", ylabel="images", xlabel="confidence (top softmax probability)")
    figure.tight_layout()
    return figure


def augmented_samples(
    originals: np.ndarray, views: np.ndarray, titles: Sequence[str] | None = None
) -> plt.Figure:
    """One row per image (N, H, W): the image, then its augmented views (N, K, H, W)."""
    count, columns = views.shape[0], views.shape[1] + 1
    figure, axes = blank_grid(count * columns, columns, (1.3, 1.3))
    for row in range(count):
        for ax, image in zip(axes[row], [originals[row], *views[row]], strict=True):
            ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
        if titles is not None:
            axes[row, 0].set_ylabel(titles[row], fontsize=8)
    for col, ax in enumerate(axes[0]):
        ax.set_title(f"augmented {col}" if col else "original", fontsize=9)
    figure.tight_layout()
    return figure


def training_curves(epochs: pd.DataFrame) -> plt.Figure:
    """Accuracy and loss per epoch (``run_files.epoch_metrics``), train vs. validation."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    names = {"acc": ("Accuracy", "accuracy"), "loss": ("Loss", "cross-entropy loss")}
    for ax, (quantity, (title, ylabel)) in zip(axes, names.items(), strict=True):
        for split, style, label in (("train", "o-", "train"), ("val", "s--", "validation")):
            if f"{split}_{quantity}" in epochs:
                ax.plot(epochs["epoch"] + 1, epochs[f"{split}_{quantity}"], style, label=label)
        ax.set(xlabel="epoch", ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.tight_layout()
    return figure
