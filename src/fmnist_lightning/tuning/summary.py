"""The summary of a search: every trial in a table, the best one's command line, Optuna's plots.

Written into the search folder at the end of every search process (and so after each
continuation): trials.csv, summary.md, history.png, intermediate.png, importances.png.
"""

import logging
import shlex
import warnings
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState
from optuna.visualization import matplotlib as optuna_plots

from fmnist_lightning.analysis.figures import save_figure
from fmnist_lightning.analysis.tables import markdown_table

log = logging.getLogger(__name__)

TRIALS_CSV = "trials.csv"
SUMMARY_MD = "summary.md"
HISTORY_PNG = "history.png"
INTERMEDIATE_PNG = "intermediate.png"
IMPORTANCES_PNG = "importances.png"
TRAIN_COMMAND = "python -m fmnist_lightning.train"


def trial_seconds(trial: FrozenTrial) -> float | None:
    return trial.duration.total_seconds() if trial.duration is not None else None


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial, best value first (pruned, failed and running trials after them):
    trial, state, value, the searched parameters, epochs validated, seconds."""
    trials = study.get_trials(deepcopy=False)
    names = list(dict.fromkeys(name for trial in trials for name in trial.params))
    rows = [
        {
            "trial": trial.number,
            "state": trial.state.name.lower(),
            "value": trial.value,
            **{name: trial.params.get(name) for name in names},
            "epochs": len(trial.intermediate_values),
            "seconds": trial_seconds(trial),
        }
        for trial in trials
    ]
    columns = ["trial", "state", "value", *names, "epochs", "seconds"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["value"] = pd.to_numeric(frame["value"])
    frame["seconds"] = pd.to_numeric(frame["seconds"])
    complete = (frame["state"] == "complete").astype(int)
    maximise = study.direction == optuna.study.StudyDirection.MAXIMIZE
    frame = frame.assign(_complete=complete).sort_values(
        ["_complete", "value", "trial"],
        ascending=[False, not maximise, True],
        na_position="last",
    )
    return frame.drop(columns="_complete").reset_index(drop=True)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best completed trial, or None while there is none."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return study.best_trial if complete else None


def command_line(trial: FrozenTrial) -> str:
    """The training command that runs the trial's configuration again, as a new run."""
    return " ".join([TRAIN_COMMAND, *map(shlex.quote, trial.user_attrs.get("overrides", []))])


def state_counts(frame: pd.DataFrame) -> str:
    counts = frame["state"].value_counts()
    return ", ".join(f"{counts[state]} {state}" for state in counts.index)


def pruning_savings(study: optuna.Study) -> dict[str, float] | None:
    """What pruning saved, estimated from each pruned trial's own seconds per epoch: the
    seconds it would have taken to run to ``trainer.max_epochs``, less what it took."""
    pruned = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        if t.intermediate_values and t.duration and t.user_attrs.get("max_epochs")
    ]
    if not pruned:
        return None
    saved = sum(
        trial_seconds(t) / len(t.intermediate_values) * t.user_attrs["max_epochs"]
        - trial_seconds(t)
        for t in pruned
    )
    spent = sum(trial_seconds(t) or 0.0 for t in study.get_trials(deepcopy=False))
    return {
        "pruned": len(pruned),
        "epochs_run": sum(len(t.intermediate_values) for t in pruned),
        "epochs_full": sum(t.user_attrs["max_epochs"] for t in pruned),
        "seconds_saved": saved,
        "seconds_spent": spent,
    }


def pruning_sentence(savings: dict[str, float]) -> str:
    share = savings["seconds_saved"] / max(
        savings["seconds_spent"] + savings["seconds_saved"], 1e-9
    )
    return (
        f"Pruning: {savings['pruned']} trials ran {savings['epochs_run']} epochs in all"
        f" of the {savings['epochs_full']} they were given; run to the end they would have taken about "
        f"{savings['seconds_saved']:.0f} s more (from each one's own seconds per epoch), "
        f"{share:.0%} of the {savings['seconds_spent'] + savings['seconds_saved']:.0f} s the "
        f"search would have taken without pruning ({savings['seconds_spent']:.0f} s with it)."
    )


def readable_params(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with float parameters to 4 significant digits (a learning rate of 3e-4
    would read 0.0003 at fixed decimals); trials.csv keeps them in full."""
    fixed = ("trial", "state", "value", "epochs", "seconds")
    shown = frame.copy()
    for column in (c for c in frame.columns if c not in fixed):
        if pd.api.types.is_float_dtype(frame[column]):
            shown[column] = [None if pd.isna(v) else f"{v:.4g}" for v in frame[column]]
    return shown


def summary_text(study: optuna.Study, frame: pd.DataFrame, pictures: list[str]) -> str:
    """summary.md: the counts, the best trial and its command line, the table, the plots."""
    lines = [f"# Search {study.study_name}: {len(frame)} trials ({state_counts(frame)})", ""]
    best = best_trial(study)
    if best is None:
        lines += ["No trial has completed yet.", ""]
    else:
        lines += [
            f"Best trial: {best.number}, value {best.value:.4f} "
            f"({study.direction.name.lower()}d), in `{best.user_attrs.get('run_dir')}`.",
            "",
            "Train it again as a new run:",
            "",
            "```bash",
            command_line(best),
            "```",
            "",
        ]
    savings = pruning_savings(study)
    if savings:
        lines += [pruning_sentence(savings), ""]
    lines += [markdown_table(readable_params(frame), decimals={"seconds": 1}), ""]
    lines += [f"![{Path(p).stem}]({p})" for p in pictures]
    return "\n".join(lines) + "\n"


def save_optuna_plot(draw, study: optuna.Study, path: Path) -> bool:
    """Draw one of Optuna's matplotlib plots into ``path``; False when the study cannot
    have it yet (e.g. importances need two completed trials that differ)."""
    try:
        with warnings.catch_warnings():
            # Optuna's matplotlib plots are "experimental"; the importance evaluator warns
            # when few trials make every parameter equally important.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)
            axes = draw(study)
    except (ValueError, RuntimeError, ZeroDivisionError) as error:
        log.info("No %s yet: %s", path.name, error)
        path.unlink(missing_ok=True)
        return False
    figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
    figure.set_size_inches(8, 4.5)
    save_figure(figure, path)
    return True


def write_search_summary(study: optuna.Study, search_dir: Path) -> pd.DataFrame:
    """trials.csv, summary.md and the plots in ``search_dir``; returns the table."""
    search_dir.mkdir(parents=True, exist_ok=True)
    frame = trials_table(study)
    frame.to_csv(search_dir / TRIALS_CSV, index=False)
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    plots = [
        (optuna_plots.plot_optimization_history, HISTORY_PNG, complete >= 1),
        (optuna_plots.plot_intermediate_values, INTERMEDIATE_PNG, True),
        (optuna_plots.plot_param_importances, IMPORTANCES_PNG, complete >= 2),
    ]
    pictures = [
        name
        for draw, name, possible in plots
        if possible and save_optuna_plot(draw, study, search_dir / name)
    ]
    (search_dir / SUMMARY_MD).write_text(summary_text(study, frame, pictures))
    return frame
