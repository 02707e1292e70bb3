"""Metrics of the analysis against small hand-computed examples."""

import re

import pandas as pd
import pytest
import torch

from fmnist_lightning.analysis.metrics import (
    analyse,
    most_confident_mistakes,
    per_class_table,
    reliability_table,
)
from fmnist_lightning.analysis.model_summary import model_summary
from fmnist_lightning.analysis.tables import markdown_table
from fmnist_lightning.inference.batches import predict_probabilities
from fmnist_lightning.models.module import FashionMNISTModule
from fmnist_lightning.models.vgg import VGGStyleCNN

# Three classes, six images. By hand:
#   confusion rows (true) = [2, 1, 0], [0, 1, 1], [0, 0, 1]
#   precision = 2/2, 1/2, 1/2     recall = 2/3, 1/2, 1/1     support = 3, 2, 1
#   F1 = 0.8, 0.5, 2/3
LABELS = torch.tensor([0, 0, 0, 1, 1, 2])
PREDICTIONS = torch.tensor([0, 0, 1, 1, 2, 2])
NAMES = ["a", "b", "c"]


def test_confusion_matrix_rows_are_true_classes():
    expected = torch.tensor([[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    one_hot = torch.nn.functional.one_hot(PREDICTIONS, 3).float()
    assert torch.equal(analyse(one_hot, LABELS, NAMES).confusion, expected)


def test_per_class_numbers_match_the_hand_computed_example():
    table = per_class_table(PREDICTIONS, LABELS, NAMES).set_index("class")
    assert list(table.index) == ["a", "b", "c", "macro avg", "weighted avg"]
    assert table["precision"].tolist()[:3] == pytest.approx([1.0, 0.5, 0.5])
    assert table["recall"].tolist()[:3] == pytest.approx([2 / 3, 0.5, 1.0])
    assert table["f1"].tolist()[:3] == pytest.approx([0.8, 0.5, 2 / 3])
    assert table["support"].tolist() == [3, 2, 1, 6, 6]
    # Macro: plain means; weighted: support-weighted means (weighted recall = accuracy).
    assert table.loc["macro avg", "precision"] == pytest.approx(2 / 3)
    assert table.loc["macro avg", "recall"] == pytest.approx(13 / 18)
    assert table.loc["macro avg", "f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert table.loc["weighted avg", "precision"] == pytest.approx(4.5 / 6)
    assert table.loc["weighted avg", "recall"] == pytest.approx(4 / 6)
    assert table.loc["weighted avg", "f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 2 / 3) / 6)


# Four images, two classes; top-class confidences 0.9 (right), 0.7 (wrong), 0.7 (right),
# 0.65 (right). With 5 bins: bin [0.6, 0.8) holds three images, mean confidence 2.05/3,
# accuracy 2/3; bin [0.8, 1] holds one, confidence 0.9, accuracy 1.
# ECE = 3/4 * |2/3 - 2.05/3| + 1/4 * |1 - 0.9| = 0.0125 + 0.025 = 0.0375.
PROBABILITIES = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.3, 0.7], [0.65, 0.35]])
CALIBRATION_LABELS = torch.tensor([0, 1, 1, 0])


def test_expected_calibration_error_matches_the_hand_computed_example():
    ece = analyse(PROBABILITIES, CALIBRATION_LABELS, ["x", "y"], n_bins=5).metrics["ece"]
    assert ece == pytest.approx(0.0375, abs=1e-6)


def test_reliability_bins_match_the_hand_computed_example_and_give_the_same_ece():
    bins = reliability_table(PROBABILITIES, CALIBRATION_LABELS, n_bins=5)
    assert bins["count"].tolist() == [0, 0, 0, 3, 1]
    assert bins["lower"].tolist() == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert bins["confidence"].iloc[3] == pytest.approx(2.05 / 3)
    assert bins["accuracy"].iloc[3] == pytest.approx(2 / 3)
    assert bins["accuracy"].iloc[4] == pytest.approx(1.0)
    assert bins["accuracy"].iloc[:3].isna().all()  # empty bins have no accuracy
    filled = bins[bins["count"] > 0]
    gaps = (filled["accuracy"] - filled["confidence"]).abs() * filled["count"] / 4
    assert gaps.sum() == pytest.approx(0.0375, abs=1e-6)


def test_a_confidence_of_exactly_one_falls_in_the_last_bin():
    bins = reliability_table(torch.tensor([[1.0, 0.0]]), torch.tensor([0]), n_bins=10)
    assert bins["count"].tolist() == [0] * 9 + [1]


def test_most_confident_mistakes_are_ordered_by_confidence():
    probabilities = torch.tensor([[0.6, 0.4], [0.1, 0.9], [0.2, 0.8], [0.95, 0.05], [0.3, 0.7]])
    labels = torch.tensor([1, 0, 0, 0, 1])  # wrong: 0 (0.6), 1 (0.9), 2 (0.8)
    assert most_confident_mistakes(probabilities, labels, k=5).tolist() == [1, 2, 0]
    assert most_confident_mistakes(probabilities, labels, k=2).tolist() == [1, 2]


def test_analyse_summarises_accuracy_loss_and_f1():
    probabilities = torch.tensor([[0.8, 0.2], [0.4, 0.6], [0.3, 0.7], [0.9, 0.1]])
    labels = torch.tensor([0, 0, 1, 1])  # right, wrong, right, wrong
    result = analyse(probabilities, labels, ["x", "y"], n_bins=10)
    assert result.metrics["accuracy"] == pytest.approx(0.5)
    expected_loss = -torch.tensor([0.8, 0.4, 0.7, 0.1]).log().mean().item()
    assert result.metrics["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert result.metrics["images"] == 4
    assert result.confusion.tolist() == [[1, 1], [1, 1]]  # predicted 0, 1, 1, 0
    frame = result.confusion_frame()
    assert (
        frame.loc["x", "y"] == 1 and frame.loc["y", "x"] == 1 and frame.index.name == "true class"
    )


def small_module() -> FashionMNISTModule:
    torch.manual_seed(0)
    return FashionMNISTModule(
        net={"_target_": "fmnist_lightning.models.vgg.VGGStyleCNN", "blocks": [[4]], "dense": []},
        optimizer={"_target_": "torch.optim.Adam", "lr": 1e-3},
        scheduler=None,
        label_smoothing=0.0,
        class_names=[str(i) for i in range(10)],
        mean=0.0,
        std=1.0,
    )


def test_batched_prediction_equals_one_pass_and_rows_sum_to_one():
    module = small_module().train()
    images = torch.randn(10, 1, 28, 28)
    batched = predict_probabilities(module, images, batch_size=3)
    whole = predict_probabilities(module, images, batch_size=100)
    assert batched.shape == (10, 10) and batched.dtype == torch.float32
    assert torch.allclose(batched, whole, atol=1e-6)
    assert torch.allclose(batched.sum(dim=1), torch.ones(10), atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(batched, module.eval()(images).softmax(dim=1), atol=1e-6)
    assert predict_probabilities(module, images[:0]).shape == (0, 10)


def test_prediction_runs_in_eval_mode_and_gives_the_mode_back():
    module = small_module().train()
    seen = []
    module.net.register_forward_hook(lambda layer, *_: seen.append(layer.training))
    predict_probabilities(module, torch.randn(4, 1, 28, 28), batch_size=2)
    assert seen == [False, False] and module.training


def test_model_summary_lists_every_layer_with_shapes_and_parameters():
    network = VGGStyleCNN(blocks=[[4], [8]], dense=[16])
    text, layers = model_summary(network, (1, 28, 28))
    assert "Total params" in text and "Units." not in text
    assert layers["layer"].iloc[0] == "Input" and layers["output_shape"].iloc[0] == "1×28×28"
    assert layers["params"].sum() == sum(p.numel() for p in network.parameters())
    assert layers["layer"].iloc[1] == "Conv2d 4, 7×7"
    assert layers["output_shape"].iloc[-1] == "10"
    assert (layers["mult_adds"] > 0).sum() == 4  # two convolutions and two linear layers


def test_torchinfo_unit_names_are_made_readable():
    text, _ = model_summary(VGGStyleCNN(blocks=[[4], [8]], dense=[16]), (1, 28, 28))
    assert re.search(r"Total mult-adds \([MGT]\): [\d.]+", text) and "Units." not in text


def test_markdown_tables_escape_cells_align_numbers_and_round_per_column():
    frame = pd.DataFrame(
        {"name": ["a|b", "two\nlines", None], "score": [0.12345, float("nan"), 1.0], "n": [1, 2, 3]}
    )
    lines = markdown_table(frame, decimals={"score": 2}).splitlines()
    assert lines[0] == "| name | score | n |"
    assert lines[1] == "| --- | ---: | ---: |"
    assert lines[2] == "| a\\|b | 0.12 | 1 |"
    assert lines[3] == "| two lines |  | 2 |"
    assert lines[4] == "|  | 1.00 | 3 |"
    assert markdown_table(frame[["score"]]).splitlines()[2] == "| 0.1235 |"
