"""What a trained classifier gets right and wrong, computed from its predicted probabilities.

Every metric is computed with torchmetrics from the probabilities that
``inference.batches.predict_probabilities`` returns; nothing here draws or writes files.
"""

from dataclasses import dataclass, field

import pandas as pd
import torch
from torchmetrics.classification import (
    MulticlassCalibrationError,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

PER_CLASS_COLUMNS = ("class", "precision", "recall", "f1", "support")
AVERAGE_ROWS = ("macro avg", "weighted avg")


def confusion_matrix(
    predictions: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Counts (classes, classes): row = true class, column = predicted class."""
    return MulticlassConfusionMatrix(num_classes)(predictions, labels).long()


def per_class_table(
    predictions: torch.Tensor, labels: torch.Tensor, class_names: list[str]
) -> pd.DataFrame:
    """Precision, recall, F1 and support per class, then macro and weighted averages.

    A class that is never predicted has precision 0 (torchmetrics' zero_division default).
    """
    num_classes = len(class_names)
    scores = {
        name: metric(num_classes, average=None)(predictions, labels)
        for name, metric in (
            ("precision", MulticlassPrecision),
            ("recall", MulticlassRecall),
            ("f1", MulticlassF1Score),
        )
    }
    support = torch.bincount(labels, minlength=num_classes)
    table = pd.DataFrame(
        {"class": class_names, **{k: v.double().numpy() for k, v in scores.items()}}
    )
    table["support"] = support.numpy()
    weights = support.double() / support.sum().clamp(min=1)
    averages = [
        {"class": "macro avg", **{k: v.double().mean().item() for k, v in scores.items()}},
        {
            "class": "weighted avg",
            **{k: (v.double() * weights).sum().item() for k, v in scores.items()},
        },
    ]
    for row in averages:
        row["support"] = int(support.sum())
    return pd.concat([table, pd.DataFrame(averages)], ignore_index=True)[list(PER_CLASS_COLUMNS)]


def expected_calibration_error(
    probabilities: torch.Tensor, labels: torch.Tensor, n_bins: int = 15
) -> float:
    """Top-label ECE: the support-weighted mean |accuracy - confidence| over confidence bins."""
    metric = MulticlassCalibrationError(probabilities.shape[1], n_bins=n_bins, norm="l1")
    return float(metric(probabilities, labels))


def reliability_table(
    probabilities: torch.Tensor, labels: torch.Tensor, n_bins: int = 15
) -> pd.DataFrame:
    """Per confidence bin: its bounds, image count, mean confidence and accuracy (NaN if empty).

    Bins are [k/n, (k+1)/n), the last one closed, on the top-class probability.
    """
    confidence, predictions = probabilities.max(dim=1)
    correct = (predictions == labels).double()
    bins = (confidence * n_bins).long().clamp(max=n_bins - 1)
    count = torch.bincount(bins, minlength=n_bins).double()
    mean_confidence = torch.zeros(n_bins, dtype=torch.double).index_add_(
        0, bins, confidence.double()
    )
    accuracy = torch.zeros(n_bins, dtype=torch.double).index_add_(0, bins, correct)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.double)
    return pd.DataFrame(
        {
            "lower": edges[:-1].numpy(),
            "upper": edges[1:].numpy(),
            "count": count.long().numpy(),
            "confidence": (mean_confidence / count).numpy(),
            "accuracy": (accuracy / count).numpy(),
        }
    )


def most_confident_mistakes(
    probabilities: torch.Tensor, labels: torch.Tensor, k: int
) -> torch.Tensor:
    """Indices of up to k misclassified images, highest predicted probability first."""
    confidence, predictions = probabilities.max(dim=1)
    wrong = (predictions != labels).nonzero().flatten()
    order = confidence[wrong].argsort(descending=True, stable=True)
    return wrong[order[:k]]


@dataclass
class Analysis:
    """Predictions of one split and everything computed from them."""

    probabilities: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    confusion: torch.Tensor
    per_class: pd.DataFrame
    reliability: pd.DataFrame
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def predictions(self) -> torch.Tensor:
        return self.probabilities.argmax(dim=1)

    def confusion_frame(self) -> pd.DataFrame:
        """The confusion matrix with class names: index = true class, columns = predicted class."""
        index = pd.Index(self.class_names, name="true class")
        return pd.DataFrame(self.confusion.numpy(), index=index, columns=self.class_names)


def analyse(
    probabilities: torch.Tensor, labels: torch.Tensor, class_names: list[str], n_bins: int = 15
) -> Analysis:
    """Confusion matrix, per-class table, reliability bins and summary metrics of predictions."""
    labels = labels.long().cpu()
    predictions = probabilities.argmax(dim=1)
    per_class = per_class_table(predictions, labels, class_names)
    averages = per_class.set_index("class")
    true_class_probability = probabilities.gather(1, labels[:, None]).squeeze(1)
    metrics = {
        "accuracy": float((predictions == labels).double().mean()),
        # Cross-entropy of the float32 probabilities; the clamp keeps a confident miss finite.
        "loss": float(-true_class_probability.clamp(min=1e-12).log().mean()),
        "ece": expected_calibration_error(probabilities, labels, n_bins),
        "macro_f1": float(averages.loc["macro avg", "f1"]),
        "weighted_f1": float(averages.loc["weighted avg", "f1"]),
        "images": len(labels),
    }
    return Analysis(
        probabilities=probabilities,
        labels=labels,
        class_names=list(class_names),
        confusion=confusion_matrix(predictions, labels, len(class_names)),
        per_class=per_class,
        reliability=reliability_table(probabilities, labels, n_bins),
        metrics=metrics,
    )
