"""The search space of ``hparams_search.params``: config keys and their Optuna distributions."""

from collections.abc import Mapping
from typing import Any

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from fmnist_lightning.config.overrides import parse_overrides


class SearchConfigError(ValueError):
    """A search setting that cannot work; the message says which and what to write instead."""


def distributions(params: DictConfig) -> dict[str, BaseDistribution]:
    """``hparams_search.params`` (key: a ``_target_`` Optuna distribution) as distributions."""
    if not params:
        raise SearchConfigError(
            "hparams_search.params is empty: give at least one key to search, e.g. "
            "optimizer.lr: {_target_: optuna.distributions.FloatDistribution, low: 1e-4, high: 1e-2, log: true}"
        )
    space = {}
    for key, spec in params.items():
        try:
            distribution = instantiate(spec, _convert_="all")
        except Exception as error:  # Optuna's own checks: low > high, a log range from 0, ...
            cause = error.__cause__ or error
            raise SearchConfigError(f"hparams_search.params.{key}: {cause}") from error
        if not isinstance(distribution, BaseDistribution):
            raise SearchConfigError(
                f"hparams_search.params.{key} builds {type(distribution).__name__}, not an Optuna "
                "distribution: use _target_: optuna.distributions.FloatDistribution, "
                "IntDistribution or CategoricalDistribution"
            )
        space[str(key)] = distribution
    return space


def suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    """The trial's value for ``name``, drawn through Optuna's public suggest API."""
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    raise SearchConfigError(f"hparams_search.params.{name}: {distribution} is not supported")


def as_override(key: str, value: Any) -> str:
    """``key=value`` as Hydra reads it back: floats in full, strings quoted when they must be."""
    if isinstance(value, str) and not value.replace("_", "").replace("-", "").isalnum():
        return f"{key}='{value}'"
    if value is None or isinstance(value, bool):
        return f"{key}={str(value).lower() if value is not None else 'null'}"
    return f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"


def override_keys(overrides: list[str]) -> list[str]:
    """The key (or group) each override sets, in order."""
    return [override.key_or_group for override in parse_overrides(overrides)]


def split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(the search's own overrides: ``hparams_search...``, the overrides of every trial)."""
    keys = override_keys(overrides)
    own = [o for o, k in zip(overrides, keys, strict=True) if k.split(".")[0] == "hparams_search"]
    return own, [o for o in overrides if o not in own]


def check_not_fixed(space: Mapping[str, BaseDistribution], trial_overrides: list[str]) -> None:
    """Refuse a searched key that the command line also sets (which one would win is unclear)."""
    for key in override_keys(trial_overrides):
        if key in space:
            raise SearchConfigError(
                f"{key} is searched (hparams_search.params) and also set on the command line: drop "
                "the override, or search without it (a copy of conf/hparams_search/optuna.yaml "
                "without that key, chosen with hparams_search=<its name>)"
            )
        if key == "paths.run_dir":
            raise SearchConfigError(
                "paths.run_dir cannot be set for a search: every trial gets its own folder "
                "<hparams_search.dir>/<trial number>; set hparams_search.dir (or paths.root) instead"
            )
