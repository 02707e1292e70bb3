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

from fmnist_lightning.analysis.run_files import save_figure
from fmnist_lightning.analysis.tables import markdown_table
from fmnist_lightning.inference.output_files import write_atomically

TRIALS_CSV = "trials.csv"
SUMMARY_MD = "summary.md"
HISTORY_PNG = "history.png"
INTERMEDIATE_PNG = "intermediate.png"
IMPORTANCES_PNG = "importances.png"


def seconds(trial: FrozenTrial) -> float | None:
    return trial.duration.total_seconds() if trial.duration is not None else None


def command_line(trial: FrozenTrial) -> str:
    """The training command that runs the trial's configuration again, as a new run."""
    overrides = trial.user_attrs.get("overrides", [])
    return " ".join(["python -m fmnist_lightning.train", *map(shlex.quote, overrides)])


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
    # What pruning saved, estimated from each pruned trial's own seconds per epoch: the
    # seconds it would have taken to run to trainer.max_epochs, less what it took.
    pruned = [
        (seconds(t), len(t.intermediate_values), t.user_attrs.get("max_epochs"))
        for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        if t.intermediate_values and t.duration and t.user_attrs.get("max_epochs")
    ]
    if pruned:
        saved = sum(took * (full / ran - 1) for took, ran, full in pruned)
        spent = frame["seconds"].sum()
        lines += [
            f"Pruning: {len(pruned)} trials ran {sum(p[1] for p in pruned)} epochs in all of the "
            f"{sum(p[2] for p in pruned)} they were given; run to the end they would have taken "
            f"about {saved:.0f} s more (from each one's own seconds per epoch), "
            f"{saved / max(spent + saved, 1e-9):.0%} of the {spent + saved:.0f} s the search "
            f"would have taken without pruning ({spent:.0f} s with it).",
            "",
        ]
    return "\n".join(lines)


def write_summary(study: optuna.Study, search_dir: Path) -> str:
    """trials.csv, summary.md and the plots in ``search_dir``; returns summary.md's head."""
    # Best value first; pruned trials have one too (their last), so they come after by number.
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
    frame = frame.astype({"value": float, "seconds": float})
    write_atomically(search_dir / TRIALS_CSV, frame.to_csv(index=False))
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    pictures = []
    for name, draw, needs in [
        (HISTORY_PNG, optuna_plots.plot_optimization_history, 1),
        (INTERMEDIATE_PNG, optuna_plots.plot_intermediate_values, 0),
        (IMPORTANCES_PNG, optuna_plots.plot_param_importances, 2),  # and two that differ
    ]:
        try:
            with warnings.catch_warnings():
                # Optuna's plots are "experimental"; the importance evaluator warns when
                # few trials make every parameter equally important.
                warnings.simplefilter("ignore")
                axes = draw(study) if done >= needs else None
        except (ValueError, RuntimeError, ZeroDivisionError):
            axes = None
        if axes is not None:
            axes.figure.set_size_inches(8, 4.5)
            pictures.append(save_figure(axes.figure, search_dir / name).name)
    # Float parameters to 4 significant digits (a learning rate of 3e-4 would read 0.0003 at
    # fixed decimals); trials.csv keeps them in full.
    floats = [n for n in names if frame[n].dtype.kind == "f"]
    shown = frame.assign(**{n: frame[n].map("{:.4g}".format, na_action="ignore") for n in floats})
    head = summary_head(study, frame)
    table = markdown_table(shown, decimals={"seconds": 1})
    links = "".join(f"![{Path(p).stem}]({p})\n" for p in pictures)
    write_atomically(search_dir / SUMMARY_MD, f"{head}\n{table}\n\n{links}")
    return head
