"""fmnist-lightning."""

from fmnist_lightning.classifier import Classifier, Predictions, load_classifier

__all__ = ["Classifier", "Predictions", "load_classifier"]
