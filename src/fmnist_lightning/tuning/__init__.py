"""Hyperparameter search with Optuna (the ``search`` command): ``runner`` the study and its trials,
``summary`` what a search writes. The training function comes in as an argument."""
