"""The study of a search: opened from its storage (created the first time), so that the same
command continues it, and shared by every process that names the same storage and study."""

import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from fmnist_lightning.tuning.space import SearchConfigError
from fmnist_lightning.tuning.trial_files import write_trial_record

# What counts toward hparams_search.n_trials: every trial that ended, whatever its outcome.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
DIRECTIONS = ("maximize", "minimize")
SQLITE_PREFIX = "sqlite:///"
# Two processes opening a new database at the same moment both create its tables; the one
# that loses gets an IntegrityError (or "database is locked") and finds them on a retry.
STORAGE_ATTEMPTS, STORAGE_RETRY_SECONDS = 5, 0.2


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


def record_silent_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna's heartbeat_stale_trial_callback: a trial whose process died gets its marker too."""
    run_dir = trial.user_attrs.get("run_dir")
    if run_dir and Path(run_dir).is_dir():
        error = "its process stopped without reporting (killed, or its machine was lost)"
        write_trial_record(Path(run_dir), trial, TrialState.FAIL, error=error)


def storage_of(settings: DictConfig) -> RDBStorage | None:
    """The study's database (None: in memory); a SQLite file's folder is created first."""
    url = settings.storage
    if not url:
        return None
    if url.startswith(SQLITE_PREFIX) and url != SQLITE_PREFIX + ":memory:":
        Path(url.removeprefix(SQLITE_PREFIX)).parent.mkdir(parents=True, exist_ok=True)
    try:
        return rdb_storage(url, settings)
    except (ValueError, ImportError, SQLAlchemyError) as error:  # a malformed URL, no driver
        raise SearchConfigError(f"hparams_search.storage={url!r}: {error}") from error


def rdb_storage(url: str, settings: DictConfig) -> RDBStorage:
    """Optuna's storage of ``url``, tried again while another process creates the same new
    database; the last attempt's error is the one raised."""
    open_storage = partial(
        RDBStorage,
        url,
        heartbeat_interval=settings.heartbeat_interval,
        grace_period=settings.grace_period,
        heartbeat_stale_trial_callback=record_silent_trial,
    )
    for attempt in range(1, STORAGE_ATTEMPTS):
        try:
            return open_storage()
        except (IntegrityError, OperationalError):
            time.sleep(STORAGE_RETRY_SECONDS * attempt)
    return open_storage()


def check_settings(settings: DictConfig) -> None:
    """One line for each search setting that cannot work."""
    if settings.direction not in DIRECTIONS:
        raise SearchConfigError(
            f"hparams_search.direction={settings.direction!r}: use maximize or minimize"
        )
    if not isinstance(settings.n_trials, int) or settings.n_trials < 0:
        raise SearchConfigError(
            f"hparams_search.n_trials={settings.n_trials!r}: give a whole number >= 0"
        )
    if not settings.study_name:
        raise SearchConfigError("hparams_search.study_name is empty: name the study")


def sampler_for(settings: DictConfig, trials_so_far: int) -> optuna.samplers.BaseSampler:
    """The configured sampler; a fixed seed is offset by the trials the study already holds,
    so that a continued study does not propose its first points again."""
    seed = settings.sampler.get("seed")
    changes: dict[str, Any] = {"seed": seed + trials_so_far} if seed is not None else {}
    return instantiate(settings.sampler, **changes, _convert_="all")


def open_study(settings: DictConfig) -> optuna.Study:
    """The study ``settings.study_name`` in ``settings.storage``, created if it is new."""
    check_settings(settings)
    storage = storage_of(settings)
    existing = 0
    if storage is not None and settings.study_name in optuna.get_all_study_names(storage):
        found = optuna.load_study(study_name=settings.study_name, storage=storage)
        if found.direction.name.lower() != settings.direction:
            raise SearchConfigError(
                f"The study '{settings.study_name}' in {settings.storage} was made to "
                f"{found.direction.name.lower()}, not {settings.direction}: choose another "
                "hparams_search.study_name for a new study"
            )
        existing = len(found.get_trials(deepcopy=False))
    study = optuna.create_study(
        study_name=settings.study_name,
        storage=storage,
        sampler=sampler_for(settings, existing),
        pruner=instantiate(settings.pruner, _convert_="all"),
        direction=settings.direction,
        load_if_exists=True,
    )
    if storage is not None:  # trials of a killed earlier process, so that the count is right
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    return study
