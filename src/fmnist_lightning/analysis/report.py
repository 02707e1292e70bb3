"""report.md: one Markdown page, readable on GitHub, that embeds an evaluation's pictures.

Rendering is pure: the functions here take metrics, tables and relative picture links
and return text. To add a picture to every report, append a ``Picture`` to ``PICTURES``
(its place in the tuple is its place on the page) and have ``figures.write_figures``
save the file under the same key.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from fmnist_lightning.analysis.tables import markdown_table


@dataclass(frozen=True)
class Picture:
    key: str
    title: str
    caption: str


PICTURES: tuple[Picture, ...] = (
    Picture("samples", "Training images", "A few training images of every class."),
    Picture(
        "architecture",
        "Architecture",
        "The layer stack with the output shape and parameter count of each layer "
        "(the full torchinfo summary is in [model_summary.txt](model_summary.txt)).",
    ),
    Picture("curves", "Training curves", "Accuracy and loss per epoch, train vs. validation."),
    Picture(
        "augmented",
        "Augmented training images",
        "Training images and random augmented views of them, as the network saw them.",
    ),
    Picture(
        "confusion_matrix",
        "Confusion matrix",
        "Rows are true classes, columns predicted classes; the right panel divides each row "
        "by its total, so its diagonal is the recall of each class "
        "([confusion_matrix.csv](confusion_matrix.csv)).",
    ),
    Picture(
        "predictions",
        "Predictions",
        "Randomly drawn images with the predicted class, its probability and the true "
        "class; the bars are the ten softmax probabilities. Mistakes are framed in red.",
    ),
    Picture(
        "misclassified",
        "Most confident mistakes",
        "The wrong predictions the model was surest of, highest confidence first.",
    ),
    Picture(
        "calibration",
        "Calibration",
        "Accuracy against confidence in equal-width confidence bins: bars below the "
        "diagonal mean the softmax probabilities are overconfident. The expected "
        "calibration error (ECE) is the image-weighted mean gap.",
    ),
)


def key_value_table(items: Mapping[str, Any], header: tuple[str, str]) -> str:
    return markdown_table(pd.DataFrame({header[0]: list(items), header[1]: list(items.values())}))


def config_summary(
    hparams: Mapping[str, Any],
    run_config: Mapping[str, Any] | None = None,
    run_summary: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The settings worth a glance: the checkpoint's network and optimiser, and the run's training."""

    def target(node: Mapping[str, Any] | None) -> str:
        return str(node["_target_"]).rsplit(".", 1)[-1] if node else "none"

    net, optimizer = dict(hparams["net"]), dict(hparams["optimizer"])
    skip = {"_target_", "lr"}
    summary = {
        "network": target(net)
        + " ("
        + ", ".join(f"{k}={v}" for k, v in net.items() if k != "_target_")
        + ")",
        "optimizer": target(optimizer)
        + ", lr "
        + str(optimizer.get("lr"))
        + "".join(f", {k} {v}" for k, v in optimizer.items() if k not in skip),
        "schedule": target((hparams.get("scheduler") or {}).get("schedule")),
        "label smoothing": str(hparams.get("label_smoothing")),
    }
    if run_config:
        data, trainer = run_config.get("data", {}), run_config.get("trainer", {})
        summary |= {
            "batch size": str(data.get("batch_size")),
            "max epochs": str(trainer.get("max_epochs")),
            "seed": str(run_config.get("seed")),
        }
    if run_summary:
        summary |= {
            "epochs trained": str(run_summary.get("epochs")),
            "best validation accuracy": f"{run_summary.get('best_val_acc') or float('nan'):.4f}",
            "training precision": str(run_summary.get("precision")),
            "training time": f"{run_summary.get('fit_seconds')} s on {run_summary.get('device')}",
        }
    return summary


def render_report(
    title: str,
    metrics: Mapping[str, Any],
    per_class: pd.DataFrame,
    settings: Mapping[str, str],
    pictures: Mapping[str, str],
) -> str:
    """The Markdown page; ``pictures`` maps a ``Picture.key`` to its link relative to the report."""
    sections = [
        f"# {title}",
        "## Metrics\n\n" + key_value_table(metrics, ("metric", "value")),
        "## Per-class performance\n\n" + markdown_table(per_class),
        "## Configuration\n\n" + key_value_table(settings, ("setting", "value")),
    ]
    for picture in PICTURES:
        if picture.key in pictures:
            link = pictures[picture.key]
            sections.append(
                f"## {picture.title}\n\n{picture.caption}\n\n![{picture.title}]({link})"
            )
    return "\n\n".join(sections) + "\n"
