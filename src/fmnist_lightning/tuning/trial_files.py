"""``trial.json``: how a trial ended, written into its run folder (the study holds the same)."""

from pathlib import Path
from typing import Any

from optuna.trial import BaseTrial, FrozenTrial, TrialState

from fmnist_lightning.analysis import run_files

TRIAL_JSON = "trial.json"


def write_trial_record(
    run_dir: Path,
    trial: BaseTrial | FrozenTrial,
    state: TrialState,
    value: float | None = None,
    seconds: float | None = None,
    error: str | None = None,
    **extra: Any,
) -> Path:
    """trial.json in ``run_dir``: number, state (complete, pruned, fail), value, params, error."""
    record = {
        "trial": trial.number,
        "state": state.name.lower(),
        "value": value,
        "params": dict(trial.params),
        "seconds": None if seconds is None else round(seconds, 1),
        "error": error,
        **extra,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / TRIAL_JSON
    run_files.write_json(path, record)
    return path
