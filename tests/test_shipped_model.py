"""The model inside the package: small, loads with no path, and its model card's accuracy on
the real test set is what it measures (that part skips without the real data)."""

import pytest
import torch
from torchvision.datasets import FashionMNIST

from fmnist_lightning.inference.classifier import SHIPPED_MODEL, load_classifier, shipped_accuracy


def test_the_shipped_model_is_small_and_loads_without_a_path():
    assert SHIPPED_MODEL.stat().st_size <= 1_000_000
    classifier = load_classifier()
    assert sum(p.numel() for p in classifier.module.parameters()) < 250_000
    images = torch.zeros(3, 28, 28, dtype=torch.uint8)
    assert classifier.predict(images).probabilities.shape == (3, 10)


@pytest.mark.parametrize(
    ("row", "tta"), [("Test accuracy", None), ("Test accuracy, flip TTA", {"flip": True})]
)
def test_the_model_card_states_the_shipped_model_s_test_accuracy(real_data_root, row, tta):
    test_set = FashionMNIST(real_data_root, train=False, download=False)
    predicted = load_classifier(batch_size=1000).predict(test_set.data, tta=tta).indices
    accuracy = 100 * (predicted == test_set.targets).double().mean().item()
    assert accuracy == pytest.approx(100 * shipped_accuracy()[row], abs=0.005)
