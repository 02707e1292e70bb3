"""What every search process writes into the search folder at its end: trials.csv, summary.md
(the best trial's command line, every trial), Optuna's plots (history, intermediate, importances)."""

import shlex
import warnings
from pathlib import Path

import optuna
import pandas as pd
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from optuna.visualization import matplotlib as optuna_plots

from fmnist_lightning.analysis.figures import save_figure
from fmnist_lightning.analysis.tables import markdown_table
from fmnist_lightning.inference.output_files import write_atomically

TRIALS_CSV = "trials.csv"
SUMMARY_MD = "summary.md"
HISTORY_PNG = "history.png"
INTERMEDIATE_PNG = "intermediate.png"
IMPORTANCES_PNG = "importances.png"


def seconds(trial: FrozenTrial) -> float | None:
    return trial.duration.total_seconds() if trial.duration is not None else None


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial, best value first (the others after them, by number)."""
    sign = -1 if study.direction == StudyDirection.MAXIMIZE else 1
    trials = sorted(
        study.get_trials(deepcopy=False),
        key=lambda t: (t.state != TrialState.COMPLETE, sign * (t.value or 0), t.number),
    )
    names = list(dict.fromkeys(name for trial in trials for name in trial.params))
    rows = [
        [t.number, t.state.name.lower(), t.value, *(t.params.get(n) for n in names)]
        + [len(t.intermediate_values), seconds(t)]
        for t in trials
    ]
    frame = pd.DataFrame(rows, columns=["trial", "state", "value", *names, "epochs", "seconds"])
    return frame.astype({"value": float, "seconds": float})


def command_line(trial: FrozenTrial) -> str:
    """The training command that runs the trial's configuration again, as a new run."""
    overrides = trial.user_attrs.get("overrides", [])
    return " ".join(["python -m fmnist_lightning.train", *map(shlex.quote, overrides)])


def pruning_sentence(study: optuna.Study) -> str | None:
    """What pruning saved, estimated from each pruned trial's own seconds per epoch: the
    seconds it would have taken to run to ``trainer.max_epochs``, less what it took."""
    pruned = [
        (t, len(t.intermediate_values), t.user_attrs.get("max_epochs"))
        for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        if t.intermediate_values and t.duration and t.user_attrs.get("max_epochs")
    ]
    if not pruned:
        return None
    saved = sum(seconds(t) * (full / run - 1) for t, run, full in pruned)
    spent = sum(seconds(t) or 0.0 for t in study.get_trials(deepcopy=False))
    return (
        f"Pruning: {len(pruned)} trials ran {sum(run for _, run, _ in pruned)} epochs in all of "
        f"the {sum(full for _, _, full in pruned)} they were given; run to the end they would "
        f"have taken about {saved:.0f} s more (from each one's own seconds per epoch), "
        f"{saved / max(spent + saved, 1e-9):.0%} of the {spent + saved:.0f} s the search would "
        f"have taken without pruning ({spent:.0f} s with it)."
    )


def summary_head(study: optuna.Study, frame: pd.DataFrame) -> str:
    """The counts, the best trial and its command line, what pruning saved."""
    states = ", ".join(f"{n} {state}" for state, n in frame["state"].value_counts().items())
    lines = [f"# Search {study.study_name}: {len(frame)} trials ({states})", ""]
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        lines += ["No trial has completed yet.", ""]
    else:
        best, direction = study.best_trial, study.direction.name.lower()
        where = f"in `{best.user_attrs.get('run_dir')}`"
        lines += [f"Best trial: {best.number}, value {best.value:.4f} ({direction}d), {where}.", ""]
        lines += ["Train it again as a new run:", "", "```bash", command_line(best), "```", ""]
    if sentence := pruning_sentence(study):
        lines += [sentence, ""]
    return "\n".join(lines)


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
    except (ValueError, RuntimeError, ZeroDivisionError):
        path.unlink(missing_ok=True)
        return False
    axes.figure.set_size_inches(8, 4.5)
    save_figure(axes.figure, path)
    return True


def write_summary(study: optuna.Study, search_dir: Path) -> str:
    """trials.csv, summary.md and the plots in ``search_dir``; returns summary.md's head."""
    frame = trials_table(study)
    write_atomically(search_dir / TRIALS_CSV, frame.to_csv(index=False).encode())
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    plots = {
        HISTORY_PNG: (optuna_plots.plot_optimization_history, done >= 1),
        INTERMEDIATE_PNG: (optuna_plots.plot_intermediate_values, True),
        IMPORTANCES_PNG: (optuna_plots.plot_param_importances, done >= 2),
    }
    pictures = [
        n
        for n, (draw, can) in plots.items()
        if can and save_optuna_plot(draw, study, search_dir / n)
    ]
    # Float parameters to 4 significant digits (a learning rate of 3e-4 would read 0.0003 at
    # fixed decimals); trials.csv keeps them in full.
    shown = frame.copy()
    for column in frame.columns[3:-2]:
        if pd.api.types.is_float_dtype(frame[column]):
            shown[column] = [None if pd.isna(v) else f"{v:.4g}" for v in frame[column]]
    head = summary_head(study, frame)
    table = markdown_table(shown, decimals={"seconds": 1})
    links = "".join(f"![{Path(p).stem}]({p})\n" for p in pictures)
    write_atomically(search_dir / SUMMARY_MD, f"{head}\n{table}\n\n{links}".encode())
    return head
