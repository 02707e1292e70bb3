"""Search hyperparameters with Optuna: every trial an ordinary training run, pruned early
when its validation accuracy falls behind, the study kept in a database so that running
the same command again continues it.

    python -m fmnist_lightning.search [hparams_search=optuna] [hparams_search.KEY=VALUE ...] [training overrides]
    python -m fmnist_lightning.search hparams_search.n_trials=12 trainer.max_epochs=5
    python -m fmnist_lightning.search hparams_search.storage=postgresql://host/db   # several machines

Settings: conf/hparams_search/<name>.yaml; other overrides apply to every trial. Trials go to
lightning_logs/searches/<study>/<trial number>/, with summary.md, trials.csv and plots.
Exit status: 0 done, 1 failed, 2 a setting refused, 128 + signal interrupted (run it again).
"""

import sys

from fmnist_lightning import cli


def main(argv: list[str] | None = None) -> None:
    overrides = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(overrides):
        print(__doc__)
        return
    # Imported here, so that --help answers without loading torch.
    from fmnist_lightning.train import train
    from fmnist_lightning.tuning.runner import run_search

    run_search(overrides, train)


if __name__ == "__main__":
    cli.run(main)
