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


def read_ensemble(folder: Path) -> SimpleNamespace:
    """One ensemble evaluated on the test split; UsageError when a file cannot be read."""
    metrics = finished.read_part(folder, run_files.ENSEMBLE_METRICS_JSON, run_files.read_json)
    members = finished.read_part(
        folder, run_files.ENSEMBLE_METRICS_JSON, lambda _: metrics["members"]
    )
    # The members' run folders (their checkpoints are recorded relative to the ensemble's).
    folders = [run_files.run_dir_of(folder / member["checkpoint"]) for member in members]
    for run in folders:
        if not (run / run_files.CONFIG_YAML).is_file():
            raise UsageError(f"a member's run folder {run} has no {run_files.CONFIG_YAML}")
    configurations = [finished.read_configuration(run) for run in folders]
    tta = metrics.get("tta")  # the members' test-time views: none, flip or flip + shifts
    shifts = f" + shifts of {tta['shift']}" if tta and tta.get("shift") else ""
    tests = [run / run_files.TEST_METRICS_JSON for run in folders]
    return SimpleNamespace(
        folder=folder,
        configuration=" + ".join(dict.fromkeys(label for _, label, _, _ in configurations)),
        seeds=[seed for seed, _, _, _ in configurations],
        test_acc=float(metrics["accuracy"]),
        tta="flip" + shifts if tta else "none",
        member_acc=[float(member["accuracy"]) for member in members],
        fit_seconds=metrics.get("fit_seconds"),  # the members' fits together; None: one unknown
        device=finished.listed(
            (finished.device_label(run_files.read_json(t)) if t.is_file() else "?" for t in tests),
            unique=True,
        ),
    )


def find_ensembles(folders: list[Path]) -> tuple[list[SimpleNamespace], list[str]]:
    """Ensembles evaluated on the test split under the folders, and one line per unreadable one."""
    found, problems = [], []
    named = run_files.ENSEMBLE_METRICS_JSON
    records = (path for folder in folders for path in sorted(folder.rglob(named)))
    for path in finished.once_each(records):
        try:
            if run_files.read_json(path).get("split") == "test":
                found.append(read_ensemble(path.parent))
        except finished.READ_ERRORS as error:
            problems.append(f"{path.parent}: {error}")
    return found, problems


def ensembles_frame(found: list[SimpleNamespace]) -> pd.DataFrame:
    """One row per members' configuration: the ensembles' test accuracy over their seeds."""
    rows = []
    for configuration, group in finished.by_configuration(found, "seeds"):
        fits = group["fit_seconds"]
        rows.append(
            {
                "members' configuration": f"`{configuration}`",
                "member seeds": finished.listed(
                    "+".join(str(s) for s in seeds) for seeds in group["seeds"]
                ),
                "test acc (%)": finished.mean_and_spread(group["test_acc"] * 100),
                "TTA": finished.listed(group["tta"], unique=True),
                "members' test acc (%)": finished.mean_and_spread(
                    group["member_acc"].explode() * 100
                ),
                "members' fit (s)": "?" if fits.isna().any() else f"{fits.mean():.0f}",
                "device": finished.listed(group["device"], unique=True),
            }
        )
    return pd.DataFrame(rows)
