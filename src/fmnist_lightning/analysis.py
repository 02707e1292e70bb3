"""What a trained classifier gets right and wrong: predictions in batches, then metrics.

Predictions run over in-memory tensors in large batches with no DataLoader or Trainer,
so the 10,000 test images take seconds on a CPU. Every metric is computed with
torchmetrics from the predicted probabilities; nothing here draws or writes files.
"""

import contextlib
import copy
import re
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn
from torchinfo import summary
from torchmetrics.classification import (
    MulticlassCalibrationError,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

PER_CLASS_COLUMNS = ("class", "precision", "recall", "f1", "support")
AVERAGE_ROWS = ("macro avg", "weighted avg")
UNIT_PREFIXES = {"MEGABYTES": "M", "GIGABYTES": "G", "TERABYTES": "T"}


def autocast_for(precision: str | int, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast for Lightning's mixed-precision names, nothing for the others."""
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(str(precision))
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.inference_mode()
def predict_probabilities(
    module: nn.Module,
    images: torch.Tensor,
    batch_size: int = 1000,
    device: torch.device | str = "cpu",
    precision: str | int = "32-true",
) -> torch.Tensor:
    """Softmax probabilities (N, classes), float32 on the CPU, of normalised (N, 1, H, W) images."""
    device = torch.device(device)
    module = module.to(device).eval()
    outputs = []
    with autocast_for(precision, device):
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device, non_blocking=True)
            outputs.append(module(batch).float().softmax(dim=1).cpu())
    return torch.cat(outputs) if outputs else torch.empty(0, 0)


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


def describe_layer(layer: nn.Module) -> str:
    """A short label for a diagram box, e.g. "Conv2d 64, 7×7" or "Dropout 0.5"."""
    name = type(layer).__name__
    if isinstance(layer, nn.Conv2d):
        return f"{name} {layer.out_channels}, {layer.kernel_size[0]}×{layer.kernel_size[1]}"
    if isinstance(layer, nn.MaxPool2d | nn.AvgPool2d):
        size = layer.kernel_size
        size = size if isinstance(size, int) else size[0]
        return f"{name} {size}×{size}"
    if isinstance(layer, nn.Linear):
        return f"{name} {layer.out_features}"
    if isinstance(layer, nn.Dropout):
        return f"{name} {layer.p:g}"
    return name


def model_summary(network: nn.Module, input_shape: tuple[int, ...]) -> tuple[str, pd.DataFrame]:
    """torchinfo's summary text, and one row per leaf layer: layer, output_shape, params, mult_adds.

    The summary runs a float32 copy on the CPU, so the network itself is not moved.
    """
    network = copy.deepcopy(getattr(network, "_orig_mod", network)).float().cpu()
    statistics = summary(
        network,
        input_size=(1, *input_shape),
        col_names=("output_size", "num_params", "mult_adds"),
        depth=4,
        device="cpu",
        verbose=0,
    )
    rows = [
        {"layer": "Input", "output_shape": shape_text(input_shape), "params": 0, "mult_adds": 0}
    ]
    for info in statistics.summary_list:
        if info.is_leaf_layer:
            rows.append(
                {
                    "layer": describe_layer(info.module),
                    "output_shape": shape_text(info.output_size[1:]),
                    "params": int(info.num_params),
                    "mult_adds": int(info.macs),
                }
            )
    return readable_units(str(statistics)), pd.DataFrame(rows)


def readable_units(text: str) -> str:
    """torchinfo 1.8 on Python >= 3.11 prints its unit enum as "(Units.MEGABYTES)"; show "(M)"."""
    return re.sub(r"\(Units\.(\w+)\)", lambda m: f"({UNIT_PREFIXES.get(m[1], m[1])})", text)


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return "×".join(str(size) for size in shape)
