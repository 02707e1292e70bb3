"""Ensembles evaluated on the test set (``python -m fmnist_lightning.ensemble ... split=test``
leaves ensemble_metrics.json), labelled by their members' configuration as
:mod:`finished_runs` labels runs. Ensembles evaluated on another split are for choosing and
are not read. Pure: json and OmegaConf, no torch.
"""

from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from fmnist_lightning.analysis import finished_runs as finished
from fmnist_lightning.analysis import run_files
from fmnist_lightning.errors import UsageError


def read_ensemble(folder: Path, known: dict[Path, SimpleNamespace]) -> SimpleNamespace | None:
    """One ensemble evaluated on the test split (None: another split); UsageError when a file
    cannot be read. Members among the ``known`` runs (by resolved folder) are not read again."""
    metrics = finished.read_part(folder, run_files.ENSEMBLE_METRICS_JSON, run_files.read_json)
    if metrics.get("split") != "test":
        return None
    # The members' run folders (their checkpoints are recorded relative to the ensemble's),
    # the ensemble's and the members' accuracies: a missing or odd field names the file.
    folders, test_acc, member_acc = finished.read_part(
        folder,
        run_files.ENSEMBLE_METRICS_JSON,
        lambda _: (
            [run_files.run_dir_of(folder / member["checkpoint"]) for member in metrics["members"]],
            float(metrics["accuracy"]),
            [float(member["accuracy"]) for member in metrics["members"]],
        ),
    )
    for run in folders:
        if not (run / run_files.CONFIG_YAML).is_file():
            raise UsageError(f"a member's run folder {run} has no {run_files.CONFIG_YAML}")
    runs = [
        known.get(run.resolve()) or finished.read_run(run) or finished.run_record(run, device="?")
        for run in folders
    ]
    tta = metrics.get("tta")  # the members' test-time views: none, flip or flip + shifts
    shifts = f" + shifts of {tta['shift']}" if tta and tta.get("shift") else ""
    return SimpleNamespace(
        folder=folder,
        configuration=" + ".join(dict.fromkeys(run.configuration for run in runs)),
        seeds=[run.seed for run in runs],
        test_acc=test_acc,
        tta="flip" + shifts if tta else "none",
        member_acc=member_acc,
        fit_seconds=metrics.get("fit_seconds"),  # the members' fits together; None: one unknown
        device=finished.listed((run.device for run in runs), unique=True),
    )


def find_ensembles(folders: list[Path], runs: list | tuple = ()) -> tuple[list, list[str]]:
    """Ensembles evaluated on the test split under the folders, and one line per unreadable one;
    ``runs``: those already read (``find_runs``)."""
    known = {run.folder.resolve(): run for run in runs}
    marker = run_files.ENSEMBLE_METRICS_JSON
    found, _, problems = finished.read_runs(folders, lambda f: read_ensemble(f, known), marker)
    return found, problems


def ensemble_cells(group: pd.DataFrame) -> dict[str, str]:
    fits = group["fit_seconds"]
    return {
        "member seeds": finished.listed("+".join(map(str, seeds)) for seeds in group["seeds"]),
        "test acc (%)": finished.mean_and_spread(group["test_acc"] * 100),
        "TTA": finished.listed(group["tta"], unique=True),
        "members' test acc (%)": finished.mean_and_spread(group["member_acc"].explode() * 100),
        "members' fit (s)": "?" if fits.isna().any() else f"{fits.mean():.0f}",
        "device": finished.listed(group["device"], unique=True),
    }


def ensembles_frame(found: list[SimpleNamespace]) -> pd.DataFrame:
    """One row per members' configuration: the ensembles' test accuracy over their seeds."""
    frame = finished.per_configuration(found, "seeds", ensemble_cells)
    return frame.rename(columns={"configuration": "members' configuration"})
