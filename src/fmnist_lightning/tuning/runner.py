"""A search: the study lives in its storage (created the first time, so that the same command
continues it, and shared by every process naming that storage and study); one trial is one run."""

import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from functools import partial
from pathlib import Path

import optuna
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna import distributions as dist
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState
from optuna_integration import PyTorchLightningPruningCallback
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from fmnist_lightning.analysis.finished_runs import SUMMARY_MD
from fmnist_lightning.analysis.run_files import write_json
from fmnist_lightning.config.compose import compose
from fmnist_lightning.config.overrides import parse_overrides
from fmnist_lightning.errors import UsageError
from fmnist_lightning.training.faults import NonFiniteLoss, OutOfMemory, TrainingInterrupted
from fmnist_lightning.tuning.summary import write_summary

# What counts toward hparams_search.n_trials: every trial that ended, whatever its outcome.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# Two processes opening a new database at the same moment both create its tables; the one
# that loses gets an IntegrityError (or "database is locked") and finds them on a retry.
STORAGE_ATTEMPTS, STORAGE_RETRY_SECONDS = 5, 0.2
TRIAL_JSON = "trial.json"
NEW_STUDY = "choose another hparams_search.study_name"


def search_settings(overrides: Sequence[str]) -> tuple[DictConfig, dict, list[str]]:
    """``hparams_search`` (``=optuna`` unless the command line names one), its space as Optuna
    distributions and the overrides every trial gets (all but ``hparams_search...``); what
    cannot work is refused here, before the study is opened."""
    try:
        parsed = parse_overrides(overrides)
        if "hparams_search" not in (keys := [o.key_or_group for o in parsed]):
            overrides = ["hparams_search=optuna", *overrides]
        cfg = compose("train", overrides)
    except (HydraException, ValueError) as error:  # ValueError: Hydra's, a group given a number
        raise UsageError(str(error).splitlines()[0]) from error
    settings = cfg.hparams_search or OmegaConf.create({"direction": None})  # null: refused
    if settings.direction not in ("maximize", "minimize"):
        raise UsageError(f"hparams_search.direction={settings.direction!r}: use maximize/minimize")
    if not isinstance(settings.n_trials, int) or settings.n_trials < 0:
        raise UsageError(f"hparams_search.n_trials={settings.n_trials!r}: give a whole number >= 0")
    # A trial runs in the search's own process: DDP would re-launch the whole search.
    if "ddp" in (strategy := str(OmegaConf.select(cfg, "trainer.strategy", default="auto"))):
        raise UsageError(f"trainer.strategy={strategy} in a search: run one search per device")
    space = {}
    for key, spec in settings.params.items():
        try:  # Optuna's own checks: low > high, a log range from 0, ...
            space[str(key)] = distribution = instantiate(spec, _convert_="all")
        except Exception as error:
            raise UsageError(f"hparams_search.params.{key}: {error.__cause__ or error}") from error
        if not isinstance(distribution, dist.BaseDistribution):
            raise UsageError(
                f"hparams_search.params.{key} builds {type(distribution).__name__}: use an optuna.distributions class"
            )
    if searched := [key for key in keys if key in space]:  # which of the two would win is unclear
        raise UsageError(
            f"{searched[0]} is searched (hparams_search.params) and also set on the command line: drop the override"
        )
    if "paths.run_dir" in keys:
        raise UsageError("paths.run_dir cannot be set for a search: set hparams_search.dir")
    fixed = [o.input_line for o in parsed if o.key_or_group.split(".")[0] != "hparams_search"]
    return settings, space, fixed


def suggested_override(trial: optuna.Trial, key: str, d: dist.BaseDistribution) -> str:
    """The trial's value for ``key`` (drawn through Optuna's public suggest API) as an override."""
    if isinstance(d, dist.CategoricalDistribution):
        value = trial.suggest_categorical(key, d.choices)
    else:
        draw = trial.suggest_int if isinstance(d, dist.IntDistribution) else trial.suggest_float
        value = draw(key, d.low, d.high, step=d.step, log=d.log)
    # As JSON, Hydra reads it back as it was: null, true, numbers (floats in full), "text".
    return f"{key}={json.dumps(value, ensure_ascii=False)}"


def write_trial_record(run_dir: Path, trial: optuna.trial.BaseTrial, state: str, **fields) -> None:
    record = {"trial": trial.number, "state": state, "value": None, "seconds": None, "error": None}
    write_json(run_dir / TRIAL_JSON, record | {"params": dict(trial.params)} | fields)


def record_silent_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Optuna's heartbeat_stale_trial_callback: a trial whose process died gets its record too."""
    if (run_dir := trial.user_attrs.get("run_dir")) and Path(run_dir).is_dir():
        error = "its process stopped without reporting (killed, or its machine was lost)"
        write_trial_record(Path(run_dir), trial, "fail", error=error)


def storage_of(settings: DictConfig) -> optuna.storages.RDBStorage | None:
    """The study's database (None: in memory); a SQLite file's folder is created first."""
    if not (url := settings.storage):
        return None
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    options = {key: settings[key] for key in ("heartbeat_interval", "grace_period")}
    options["heartbeat_stale_trial_callback"] = record_silent_trial
    try:
        for attempt in range(1, STORAGE_ATTEMPTS):
            with suppress(IntegrityError, OperationalError):
                return optuna.storages.RDBStorage(url, **options)
            time.sleep(STORAGE_RETRY_SECONDS * attempt)
        return optuna.storages.RDBStorage(url, **options)  # the last attempt's error is raised
    except (ValueError, ImportError, SQLAlchemyError) as error:  # a malformed URL, no driver
        raise UsageError(f"hparams_search.storage={url!r}: {error}") from error


def run_trial(trial: optuna.Trial, train: Callable, settings, space, fixed) -> float:
    """Optuna's objective: a training run in ``<search dir>/<trial number>/`` with trial.json;
    user attributes: its command line (for the summary), the process (several share a study)."""
    overrides = [*fixed, *(suggested_override(trial, k, d) for k, d in space.items())]
    run_dir = Path(settings.dir) / str(trial.number)
    trial.set_user_attr("overrides", overrides)
    trial.set_user_attr("run_dir", str(run_dir))
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    started, record = time.monotonic(), {}
    try:
        cfg = compose("train", [*overrides, f"paths.run_dir={run_dir}"])
        # For the summary's estimate of what pruning saved.
        trial.set_user_attr("max_epochs", OmegaConf.select(cfg, "trainer.max_epochs"))
        summary = train(cfg, [PyTorchLightningPruningCallback(trial, monitor=settings.monitor)])
        if not isinstance(value := summary.get(settings.metric), int | float):
            raise UsageError(f"hparams_search.metric={settings.metric!r}: not in {sorted(summary)}")
        record = {"state": "complete", "value": float(value), "epochs": summary.get("epochs")}
        return float(value)
    except BaseException as error:  # recorded, then Optuna marks the trial pruned or failed
        pruned = isinstance(error, optuna.TrialPruned)
        text = str(error) if pruned else f"{type(error).__name__}: {error}"
        record = {"state": "pruned" if pruned else "fail", "error": text}
        raise
    finally:
        write_trial_record(run_dir, trial, **record, seconds=round(time.monotonic() - started, 1))


def run_search(overrides: Sequence[str], train: Callable) -> optuna.Study:
    """Run trials until the study holds ``hparams_search.n_trials`` finished ones; summarise.
    ``train(cfg, callbacks)`` returns the run's summary: ``fmnist_lightning.train.train``."""
    settings, space, fixed = search_settings(overrides)
    storage, pruner = storage_of(settings), instantiate(settings.pruner, _convert_="all")
    name, direction, search_dir = settings.study_name, settings.direction, Path(settings.dir)
    study = optuna.create_study(
        study_name=name, storage=storage, pruner=pruner, direction=direction, load_if_exists=True
    )
    if (made_to := study.direction.name.lower()) != direction:
        raise UsageError(f"study {name!r} was made to {made_to}, not {direction}: {NEW_STUDY}")
    # A new study never writes into the trial folders of an older one of the same name.
    if not (held := len(study.get_trials(deepcopy=False))) and (search_dir / "0").is_dir():
        raise UsageError(f"{search_dir} already holds trial folders of an older study: {NEW_STUDY}")
    # A fixed seed moves on by the trials already held: a continued study proposes new points.
    seed = settings.sampler.get("seed")
    moved = {"seed": seed + held} if seed is not None else {}
    study.sampler = instantiate(settings.sampler, **moved, _convert_="all")
    done, wanted = len(study.get_trials(deepcopy=False, states=FINISHED)), settings.n_trials
    more = "running the rest" if done < wanted else "nothing to run (raise n_trials to run more)"
    print(f"Study '{name}': {done} of {wanted} trials finished; {more}: {search_dir}")
    objective = partial(run_trial, train=train, settings=settings, space=space, fixed=fixed)
    try:
        if done < wanted:
            # A trial that fails for a reason of its own values (a NaN loss, a batch too large
            # for memory) is recorded as failed and the search goes on; other errors stop it.
            stop, faults = MaxTrialsCallback(wanted, states=FINISHED), (NonFiniteLoss, OutOfMemory)
            study.optimize(objective, callbacks=[stop], catch=faults, gc_after_trial=True)
    except TrainingInterrupted:
        # Its message tells how to resume the one trial; the search resumes as a whole.
        print("\nSearch interrupted; the running trial is recorded as failed.", end=" ")
        print("Run the same command to continue the study.")
        raise
    finally:  # the last lines a user sees: the best trial and how to train it again
        print(f"\n{write_summary(study, search_dir)}Summary: {(search_dir / SUMMARY_MD).resolve()}")
    return study
