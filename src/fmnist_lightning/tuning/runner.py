"""A search from the command line's overrides: settings, study, trials, summary."""

from collections.abc import Sequence
from pathlib import Path

import optuna
from hydra.errors import HydraException
from omegaconf import DictConfig
from optuna.study import MaxTrialsCallback

from fmnist_lightning.config.compose import compose
from fmnist_lightning.config.schema import ConfigValidationError
from fmnist_lightning.training.faults import NonFiniteLoss, OutOfMemory, TrainingInterrupted
from fmnist_lightning.tuning.objective import Objective, TrainFunction, check_single_process
from fmnist_lightning.tuning.space import (
    SearchConfigError,
    check_not_fixed,
    distributions,
    override_keys,
    split_overrides,
)
from fmnist_lightning.tuning.study import FINISHED, finished_trials, open_study
from fmnist_lightning.tuning.summary import SUMMARY_MD, best_trial, command_line
from fmnist_lightning.tuning.summary import write_search_summary as write_summary

DEFAULT_SEARCH = "optuna"
# A trial that fails for a reason of its own values (a NaN loss, a batch too large for
# memory) is recorded as failed and the search goes on; any other error stops the search.
TRIAL_FAULTS = (NonFiniteLoss, OutOfMemory)


def search_config(overrides: Sequence[str]) -> DictConfig:
    """The training config with ``hparams_search`` (``=optuna`` unless the command line names one)."""
    overrides = list(overrides)
    if "hparams_search" not in override_keys(overrides):
        overrides = [f"hparams_search={DEFAULT_SEARCH}", *overrides]
    try:
        cfg = compose("train", overrides)
    except HydraException as error:
        raise ConfigValidationError(str(error).splitlines()[0]) from error
    if cfg.get("hparams_search") is None:
        raise SearchConfigError(
            "hparams_search is not set: name a search space, e.g. hparams_search=optuna "
            "(conf/hparams_search/optuna.yaml)"
        )
    return cfg


def check_fresh_folder(study: optuna.Study, search_dir: Path) -> None:
    """A new study never writes into the trial folders of an older one of the same name."""
    if study.get_trials(deepcopy=False) or not search_dir.is_dir():
        return
    trials = sorted(p.name for p in search_dir.iterdir() if p.is_dir() and p.name.isdigit())
    if trials:
        raise SearchConfigError(
            f"{search_dir} already holds trial folders ({', '.join(trials[:5])}) but the study "
            "storage has no trials (was its database removed?): choose another "
            "hparams_search.study_name, or move that folder away"
        )


def run_search(overrides: Sequence[str], train: TrainFunction) -> optuna.Study:
    """Run trials until the study holds ``hparams_search.n_trials`` finished ones; summarise."""
    own, trial_overrides = split_overrides(list(overrides))
    cfg = search_config([*own, *trial_overrides])
    settings = cfg.hparams_search
    space = distributions(settings.params)
    check_not_fixed(space, trial_overrides)
    check_single_process(cfg)
    study = open_study(settings)
    search_dir = Path(settings.dir)
    check_fresh_folder(study, search_dir)

    done = len(finished_trials(study))
    if done >= settings.n_trials:
        print(
            f"The study '{study.study_name}' already holds {done} finished trials "
            f"(hparams_search.n_trials={settings.n_trials}): nothing to run; raise n_trials to run more."
        )
    else:
        print(
            f"Study '{study.study_name}': {done} of {settings.n_trials} trials finished, running "
            f"the rest. Folder: {search_dir}"
        )
    try:
        if done < settings.n_trials:
            study.optimize(
                Objective(train, settings, space, trial_overrides),
                callbacks=[MaxTrialsCallback(settings.n_trials, states=FINISHED)],
                catch=TRIAL_FAULTS,
                gc_after_trial=True,
            )
    except TrainingInterrupted:
        # Its message tells how to resume the one trial; the search resumes as a whole.
        print(
            "\nSearch interrupted; the running trial is recorded as failed. Run the same command to continue the study."
        )
        raise
    finally:
        write_summary(study, search_dir)
        report(study, search_dir)
    return study


def report(study: optuna.Study, search_dir: Path) -> None:
    """The last lines a user sees: the best trial and how to train it again."""
    best = best_trial(study)
    counts = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,))) for s in FINISHED}
    print(f"\nStudy '{study.study_name}': " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if best is not None:
        print(f"Best trial {best.number}: {best.value:.4f}   {best.user_attrs.get('run_dir')}")
        print(f"  {command_line(best)}")
    print(f"Summary: {(search_dir / SUMMARY_MD).resolve()}")
