"""What a trained classifier gets right and wrong, computed (torchmetrics, pandas) from its
predicted probabilities; nothing here draws or writes files."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torchmetrics.functional import classification as tm


def per_class_table(predictions: Tensor, labels: Tensor, class_names: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class, then macro and weighted averages; a
    class never predicted has precision 0 (torchmetrics' zero_division default)."""
    metrics = {"precision": tm.multiclass_precision, "recall": tm.multiclass_recall}
    metrics["f1"] = tm.multiclass_f1_score
    n = len(class_names)
    scores = pd.DataFrame(
        {k: f(predictions, labels, n, average=None).double().numpy() for k, f in metrics.items()}
    )
    support = torch.bincount(labels, minlength=n).numpy()
    weighted = scores.mul(support, axis=0).sum() / max(support.sum(), 1)
    table = pd.concat([scores, pd.DataFrame([scores.mean(), weighted])], ignore_index=True)
    table.insert(0, "class", [*class_names, "macro avg", "weighted avg"])
    table["support"] = [*support, support.sum(), support.sum()]
    return table


def reliability_table(probabilities: Tensor, labels: Tensor, n_bins: int = 15) -> pd.DataFrame:
    """Per bin [k/n, (k+1)/n) of top-class probability (the last one closed): its bounds,
    image count, mean confidence and accuracy (NaN if empty)."""
    confidence, predictions = probabilities.max(dim=1)
    index = (confidence * n_bins).long().clamp(max=n_bins - 1).numpy()
    hits = (predictions == labels).double().numpy()
    images = pd.DataFrame(
        {"bin": index, "confidence": confidence.double().numpy(), "accuracy": hits}
    )
    edges, groups = np.linspace(0, 1, n_bins + 1), images.groupby("bin")
    columns = {"lower": edges[:-1], "upper": edges[1:], "count": groups.size()}
    bins = pd.DataFrame(columns, index=range(n_bins)).join(groups.mean())
    return bins.fillna({"count": 0}).astype({"count": int})


def most_confident_mistakes(probabilities: Tensor, labels: Tensor, k: int) -> Tensor:
    """Indices of up to k misclassified images, highest predicted probability first."""
    confidence, predictions = probabilities.max(dim=1)
    wrong = (predictions != labels).nonzero().flatten()
    return wrong[confidence[wrong].argsort(descending=True, stable=True)[:k]]


@dataclass
class Analysis:
    probabilities: Tensor
    labels: Tensor
    class_names: list[str]
    confusion: Tensor  # counts: row = true class, column = predicted class
    per_class: pd.DataFrame
    reliability: pd.DataFrame
    metrics: dict[str, float]

    def confusion_frame(self) -> pd.DataFrame:
        """index = true class, columns = predicted class."""
        index = pd.Index(self.class_names, name="true class")
        return pd.DataFrame(self.confusion.numpy(), index=index, columns=self.class_names)


def analyse(probabilities: Tensor, labels: Tensor, names: list[str], n_bins: int = 15) -> Analysis:
    """Confusion matrix, per-class table, reliability bins and summary metrics. The ECE is
    top-label: the support-weighted mean |accuracy - confidence| over the bins."""
    labels, n = labels.long().cpu(), len(names)
    predictions = probabilities.argmax(dim=1)
    per_class = per_class_table(predictions, labels, names)
    metrics = {
        "accuracy": float((predictions == labels).double().mean()),
        # Cross-entropy of the float32 probabilities; the clamp keeps a confident miss finite.
        "loss": float(torch.nn.functional.nll_loss(probabilities.clamp(min=1e-12).log(), labels)),
        "ece": float(tm.multiclass_calibration_error(probabilities, labels, n, n_bins, "l1")),
        "macro_f1": float(per_class["f1"].iloc[-2]),
        "weighted_f1": float(per_class["f1"].iloc[-1]),
        "images": len(labels),
    }
    confusion = tm.multiclass_confusion_matrix(predictions, labels, n).long()
    reliability = reliability_table(probabilities, labels, n_bins)
    return Analysis(probabilities, labels, list(names), confusion, per_class, reliability, metrics)
