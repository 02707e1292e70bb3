"""Hyperparameter search with Optuna (``python -m fmnist_lightning.search``): ``runner`` the
settings, space, study and trials (one trial = one ordinary training run, pruned from its
validation metric), ``summary`` what a search writes. Above ``training`` and ``config``, below
the commands: the training function comes in as an argument, so no module here imports one."""
