"""Pure plots that compare runs by their learning curves: the jobs of a sweep, the
configurations of the results tables (like ``plots``: data frames in, figures out)."""

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd

matplotlib.use("Agg")  # no window opens


def sweep_comparison(curves: dict[str, pd.DataFrame], summary: pd.DataFrame) -> plt.Figure:
    """Validation accuracy per epoch, one line per job (``curves``: label → epoch_metrics);
    best val and test accuracy per job (``training.sweep_summary.summarise_sweep``)."""
    height = 4 + 0.15 * len(summary)  # room for a bar per job
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, height), width_ratios=[3, 2])
    for label, epochs in curves.items():
        left.plot(epochs["epoch"] + 1, epochs["val_acc"], "o-", label=label)
    left.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy per job")
    left.xaxis.set_major_locator(plt.MaxNLocator(integer=True))  # whole epochs
    left.grid(alpha=0.3)
    if curves:
        left.legend(fontsize="small")
    rows = summary.iloc[::-1]  # best job at the top
    jobs = zip(rows["job"], rows["status"], strict=True)
    labels = [f"#{job}" + ("" if s == "completed" else f" ({s})") for job, s in jobs]
    bars = rows[["test_acc", "best_val_acc"]].apply(pd.to_numeric).fillna(0.0).set_axis(labels)
    if len(bars):  # pandas refuses to draw an empty frame
        bars.rename(columns={"best_val_acc": "best val_acc"}).plot.barh(ax=right, width=0.8)
    right.set(xlabel="accuracy", title="Jobs, best first")
    right.grid(alpha=0.3, axis="x")
    right.legend(fontsize="small", loc="lower right")
    figure.tight_layout()
    return figure


def accuracy_against_time(curves: dict[str, list[pd.DataFrame]], threshold: float) -> plt.Figure:
    """Validation accuracy against seconds of fitting, one colour per configuration: each
    seed (epoch, val_acc, elapsed_seconds) thin, the mean over seeds (of the epochs every
    seed ran) thick, ``threshold`` dashed."""
    figure, axes = plt.subplots(figsize=(9, 5))
    for index, (label, frames) in enumerate(curves.items()):
        colour = f"C{index % 10}"  # the colour cycle's
        frames = [f.dropna(subset=["val_acc", "elapsed_seconds"]) for f in frames]
        frames = [f for f in frames if len(f)]
        if not frames:
            continue
        for frame in frames:
            axes.plot(frame["elapsed_seconds"], frame["val_acc"], c=colour, lw=0.8, alpha=0.4)
        by_epoch = pd.concat(frames).groupby("epoch")[["elapsed_seconds", "val_acc"]]
        mean = by_epoch.mean()[by_epoch.size() == len(frames)]  # the epochs every seed ran
        label += f" ({len(frames)} seeds)" if len(frames) > 1 else ""
        axes.plot(mean["elapsed_seconds"], mean["val_acc"], "o-", c=colour, lw=2, ms=3, label=label)
    axes.axhline(threshold, color="grey", ls="--", lw=1, label=f"{threshold:.0%}")
    axes.set(xlabel="wall-clock seconds since fitting started", ylabel="validation accuracy")
    axes.set_title("Validation accuracy against time")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="lower right")
    figure.tight_layout()
    return figure
