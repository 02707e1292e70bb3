"""report.md: one Markdown page, readable on GitHub, that embeds an evaluation's pictures.
Pure: metrics, tables and relative picture links in, text out."""

from collections.abc import Mapping

import pandas as pd

from fmnist_lightning.analysis.tables import markdown_table

# key → (title, caption) of every picture, in the order of the page.
PICTURES = {
    "samples": ("Training images", "A few training images of every class."),
    "architecture": (
        "Architecture",
        "The layer stack with the output shape and parameter count of each layer (the full "
        "torchinfo summary is in [model_summary.txt](model_summary.txt)).",
    ),
    "curves": ("Training curves", "Accuracy and loss per epoch, train vs. validation."),
    "augmented": (
        "Augmented training images",
        "Training images and random augmented views of them, as the network saw them.",
    ),
    "confusion_matrix": (
        "Confusion matrix",
        "Rows are true classes, columns predicted ones; the right panel divides each row by its "
        "total: its diagonal is the recall ([confusion_matrix.csv](confusion_matrix.csv)).",
    ),
    "predictions": (
        "Predictions",
        "Randomly drawn images with the predicted class, its probability and the true class; "
        "the bars are the ten softmax probabilities. Mistakes are framed in red.",
    ),
    "misclassified": (
        "Most confident mistakes",
        "The wrong predictions the model was surest of, highest confidence first.",
    ),
    "calibration": (
        "Calibration",
        "Accuracy against confidence in equal-width bins; bars below the diagonal mean "
        "overconfidence. The expected calibration error (ECE) is the image-weighted mean gap.",
    ),
}


def key_value_table(items: Mapping, header: tuple[str, str]) -> str:
    return markdown_table(pd.DataFrame(list(items.items()), columns=header))


def target(node: Mapping | None) -> str:
    return str(node["_target_"]).rsplit(".", 1)[-1] if node else "none"


def config_summary(
    hparams: Mapping, run_config: Mapping | None, run_summary: Mapping | None
) -> dict[str, str]:
    """The settings worth a glance: the checkpoint's network, optimiser and every plain
    hyperparameter (a new one shows without a line here), and the run's training."""
    net, optimizer = dict(hparams["net"]), dict(hparams["optimizer"])
    arguments = ", ".join(f"{k}={v}" for k, v in net.items() if k != "_target_")
    summary = {
        "network": f"{target(net)} ({arguments})",
        "optimizer": f"{target(optimizer)}, lr {optimizer.get('lr')}"
        + "".join(f", {k} {v}" for k, v in optimizer.items() if k not in ("_target_", "lr")),
        "schedule": target((hparams.get("scheduler") or {}).get("schedule")),
    }
    summary |= {  # the normalisation (mean, std) is the data's, not a choice
        name.replace("_", " "): str(value)
        for name, value in hparams.items()
        if isinstance(value, bool | int | float | str) and name not in ("mean", "std")
    }
    if run_config:
        flat = pd.json_normalize(run_config).iloc[0]  # "data.batch_size": 128, ...
        keys = {"batch size": "data.batch_size", "max epochs": "trainer.max_epochs", "seed": "seed"}
        summary |= {name: str(flat.get(key)) for name, key in keys.items()}
    if run_summary:
        summary |= {
            "epochs trained": str(run_summary.get("epochs")),
            "best validation accuracy": f"{run_summary.get('best_val_acc') or float('nan'):.4f}",
            "training precision": str(run_summary.get("precision")),
            "training time": f"{run_summary.get('fit_seconds')} s on {run_summary.get('device')}",
        }
    return summary


def render_report(
    metrics: Mapping, per_class: pd.DataFrame, settings: Mapping, pictures: Mapping, tta: str | None
) -> str:
    """The page of an evaluation's metrics.json; ``settings``: ``config_summary``'s; ``pictures``:
    key → link from the report; ``tta``: the test-time views, if any."""
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
    } | ({"test-time augmentation": tta} if tta else {})
    sections = [
        f"# Evaluation on the {metrics['split']} split",
        "## Metrics\n\n" + key_value_table(shown, ("metric", "value")),
        "## Per-class performance\n\n" + markdown_table(per_class),
        "## Configuration\n\n" + key_value_table(settings, ("setting", "value")),
    ]
    sections += [
        f"## {title}\n\n{caption}\n\n![{title}]({pictures[key]})"
        for key, (title, caption) in PICTURES.items()
        if key in pictures
    ]
    return "\n\n".join(sections) + "\n"
