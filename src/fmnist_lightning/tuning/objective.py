"""One trial of a search: an ordinary training run with the trial's values, pruned early when
its per-epoch validation metric falls behind the study's earlier trials."""

import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState
from optuna_integration import PyTorchLightningPruningCallback

from fmnist_lightning.config.compose import compose
from fmnist_lightning.config.schema import ConfigValidationError
from fmnist_lightning.tuning.space import SearchConfigError, as_override, suggest
from fmnist_lightning.tuning.trial_files import write_trial_record

# train(cfg, callbacks) -> the run's summary (test_metrics.json): fmnist_lightning.train.train.
TrainFunction = Callable[[DictConfig, Sequence[L.Callback]], Mapping[str, Any]]


def check_single_process(cfg: DictConfig) -> None:
    """A trial runs in the search's own process: DDP would re-launch the whole search."""
    strategy = str(OmegaConf.select(cfg, "trainer.strategy", default="auto"))
    if "ddp" in strategy:
        raise SearchConfigError(
            f"trainer.strategy={strategy}: a search runs each trial in its own process. To use "
            "several devices or machines, start one search process per device on the same "
            "hparams_search.storage (each process runs its own trials of the one study)."
        )


class Objective:
    """Optuna's objective: compose the trial's config, train it, return its metric.

    Every trial is a run folder ``<search dir>/<trial number>/`` holding what a training
    run holds, plus trial.json (state, value, params, seconds). The command line of the
    trial is kept in the trial's user attributes, so the summary can print it.
    """

    def __init__(
        self,
        train: TrainFunction,
        settings: DictConfig,
        space: Mapping[str, BaseDistribution],
        fixed_overrides: Sequence[str],
    ) -> None:
        self.train, self.settings, self.space = train, settings, space
        self.fixed_overrides = list(fixed_overrides)
        self.search_dir = Path(settings.dir)

    def __call__(self, trial: optuna.Trial) -> float:
        values = {name: suggest(trial, name, d) for name, d in self.space.items()}
        overrides = [*self.fixed_overrides, *(as_override(k, v) for k, v in values.items())]
        run_dir = self.search_dir / str(trial.number)
        trial.set_user_attr("overrides", overrides)
        trial.set_user_attr("run_dir", str(run_dir))
        # Which process ran it: several processes (machines) may share one study.
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        started = time.perf_counter()

        def record(state: TrialState, **fields: Any) -> None:
            seconds = time.perf_counter() - started
            write_trial_record(run_dir, trial, state, seconds=seconds, **fields)

        pruning = PyTorchLightningPruningCallback(trial, monitor=self.settings.monitor)
        try:
            cfg = compose("train", [*overrides, f"paths.run_dir={run_dir}"])
            check_single_process(cfg)
            # For the summary's estimate of what pruning saved.
            trial.set_user_attr("max_epochs", OmegaConf.select(cfg, "trainer.max_epochs"))
            summary = self.train(cfg, [pruning])
            value = self.value_of(summary)
        except optuna.TrialPruned as pruned:
            record(TrialState.PRUNED, error=str(pruned))
            raise
        except BaseException as error:  # recorded, then Optuna marks the trial failed
            record(TrialState.FAIL, error=f"{type(error).__name__}: {error}")
            raise
        record(TrialState.COMPLETE, value=value, epochs=summary.get("epochs"))
        return value

    def value_of(self, summary: Mapping[str, Any]) -> float:
        metric = self.settings.metric
        value = summary.get(metric)
        if not isinstance(value, (int, float)):
            raise ConfigValidationError(
                f"hparams_search.metric={metric!r} is not a number in the run's "
                f"test_metrics.json; choose one of {', '.join(sorted(summary))}"
            )
        return float(value)
