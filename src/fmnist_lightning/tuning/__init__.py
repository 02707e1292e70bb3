"""Hyperparameter search with Optuna: ``python -m fmnist_lightning.search`` composes the parts.

- ``space``: the search space of ``conf/hparams_search/`` as Optuna distributions, and a
  trial's values as command-line overrides;
- ``study``: the study in its storage (SQLite by default), sampler, pruner, heartbeat;
- ``objective``: one trial = one ordinary training run, pruned from its validation metric;
- ``summary``: the table of all trials, the best trial's command line, Optuna's plots.

This layer sits above ``training`` and ``config`` (it composes every trial's config) and below the
commands; the training function comes in as an argument, so no module here imports one.
"""
