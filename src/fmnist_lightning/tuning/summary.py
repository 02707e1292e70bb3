"""What every search process writes into the search folder at its end: trials.csv, summary.md
(the best trial's command line, every trial), Optuna's plots (history, intermediate, importances)."""

import shlex
import warnings
from pathlib import Path

import optuna
import pandas as pd
from optuna.visualization import matplotlib as optuna_plots

from fmnist_lightning.analysis.finished_runs import write_summary as write_files
from fmnist_lightning.analysis.run_files import save_figure

TRIALS_CSV = "trials.csv"
# In the order of the completed trials each needs: 0, 1, 2 (importances: two that differ).
PLOTS = {
    "intermediate.png": optuna_plots.plot_intermediate_values,
    "history.png": optuna_plots.plot_optimization_history,
    "importances.png": optuna_plots.plot_param_importances,
}


def write_summary(study: optuna.Study, search_dir: Path) -> str:
    """trials.csv, summary.md and the plots in ``search_dir``; returns summary.md's head."""
    # Completed trials first, best value first (a pruned trial has a value too: its last one).
    sign = -1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1
    trials = sorted(
        study.get_trials(deepcopy=False),
        key=lambda t: (t.state.name != "COMPLETE", sign * (t.value or 0), t.number),
    )
    names = list(dict.fromkeys(name for trial in trials for name in trial.params))
    rows = [
        [t.number, t.state.name.lower(), t.value, *(t.params.get(n) for n in names)]
        + [len(t.intermediate_values), t.duration.total_seconds() if t.duration else None]
        + [t.user_attrs.get("max_epochs")]
        for t in trials
    ]
    columns = ["trial", "state", "value", *names, "epochs", "seconds", "max_epochs"]
    frame = pd.DataFrame(rows, columns=columns)
    frame = frame.astype(dict.fromkeys(["value", "seconds", "max_epochs"], float))
    # What pruning saved, estimated from each pruned trial's own seconds per epoch: the
    # seconds it would have taken to run to trainer.max_epochs, less what it took.
    pruned = frame.query("state == 'pruned' and epochs > 0 and seconds > 0 and max_epochs > 0")
    saved = (pruned.seconds * (pruned.max_epochs / pruned.epochs - 1)).sum()
    spent, frame = frame.seconds.sum(), frame.drop(columns="max_epochs")

    states = ", ".join(f"{n} {state}" for state, n in frame["state"].value_counts().items())
    lines = [f"# Search {study.study_name}: {len(frame)} trials ({states})", ""]
    if not (done := (frame["state"] == "complete").sum()):
        lines += ["No trial has completed yet.", ""]
    else:
        best, direction = study.best_trial, study.direction.name.lower()
        where = f"in `{best.user_attrs.get('run_dir')}`"
        overrides = best.user_attrs["overrides"]
        command = shlex.join(["python", "-m", "fmnist_lightning.train", *overrides])
        lines += [f"Best trial: {best.number}, value {best.value:.4f} ({direction}d), {where}.", ""]
        lines += ["Train it again as a new run:", "", "```bash", command, "```", ""]
    if len(pruned):
        lines += [
            f"Pruning: {len(pruned)} trials ran {pruned.epochs.sum()} epochs in all of the "
            f"{pruned.max_epochs.sum():.0f} they were given; run to the end they would have taken "
            f"about {saved:.0f} s more (from each one's own seconds per epoch), "
            f"{saved / (spent + saved):.0%} of the {spent + saved:.0f} s the search would have "
            f"taken without pruning ({spent:.0f} s with it).",
            "",
        ]
    head = "\n".join(lines)

    links = ""
    for name, draw in list(PLOTS.items())[: done + 1]:
        # Optuna's plots are "experimental"; the importance evaluator warns when few trials
        # make every parameter equally important.
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = draw(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue
        axes.figure.set_size_inches(8, 4.5)
        save_figure(axes.figure, search_dir / name)
        links += f"![{Path(name).stem}]({name})\n"
    # Float parameters to 4 significant digits (3e-4, not 0.0003); trials.csv keeps them in full.
    floats = [n for n in names if frame[n].dtype.kind == "f"]
    shown = frame.assign(**{n: frame[n].map("{:.4g}".format, na_action="ignore") for n in floats})
    write_files(search_dir, TRIALS_CSV, frame, head, shown, {"seconds": 1}, f"\n{links}")
    return head
