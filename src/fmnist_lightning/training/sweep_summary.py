"""A sweep's summary: one row per job, best first, written when a Hydra multirun ends.

A sweep folder (``lightning_logs/sweeps/<time>-<id>/``) holds one run folder per job, named
by its number. ``SweepSummary`` is a Hydra callback (conf/hydra/default.yaml), so it works
with any sweeper and launcher: at the end of every job, in whichever process ran it (the
basic launcher's, a joblib worker, a submitit or SLURM job), it writes ``job.json`` into the
job's folder (status, error, wall time, overrides); at the end of the sweep it reads the job
folders back and writes summary.csv, summary.md and summary.png into the sweep folder.

When a job raises, Hydra's basic and Optuna sweepers still run the other jobs of the batch,
then re-raise the first failure, and Hydra skips ``on_multirun_end``: so the summary is also
written at interpreter exit if the sweep did not get there.
"""

import atexit
import logging
import os
import socket
import time
import traceback
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from fmnist_lightning.analysis import run_files
from fmnist_lightning.analysis.curve_plots import sweep_comparison
from fmnist_lightning.analysis.figures import save_figure
from fmnist_lightning.analysis.tables import markdown_table
from fmnist_lightning.inference.output_files import write_atomically
from fmnist_lightning.training.multirun import in_multirun

log = logging.getLogger(__name__)

JOB_JSON = "job.json"
SUMMARY_CSV, SUMMARY_MD, SUMMARY_PNG = "summary.csv", "summary.md", "summary.png"
COMPLETED = "completed"
FROM_METRICS = ("best_val_acc", "test_acc", "epochs")
COLUMNS = ("job", "status", "overrides", *FROM_METRICS, "wall_seconds", "error")


class SweepSummary(Callback):
    """Hydra callback: records each job's outcome in its folder and summarises the sweep."""

    def __init__(self) -> None:
        self._job_started = time.perf_counter()
        self._sweep_dir: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._sweep_dir = Path(config.hydra.sweep.dir)
        atexit.register(self.on_multirun_end, config)  # Hydra may skip it (see above)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._sweep_dir is not None and self._sweep_dir.is_dir():
            write_sweep_summary(self._sweep_dir)
            log.info("Sweep summary: %s", self._sweep_dir / SUMMARY_MD)
        self._sweep_dir = None

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._job_started = time.perf_counter()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if not in_multirun():
            return
        failed = job_return.status != JobStatus.COMPLETED
        # The exception: the public .return_value would raise it again.
        error = job_return._return_value if failed else None  # noqa: SLF001 (no public getter of a failure)
        record = {
            "status": "failed" if failed else COMPLETED,
            "overrides": list(job_return.overrides or []),
            "wall_seconds": round(time.perf_counter() - self._job_started, 1),
            # Where the launcher ran the job: a joblib worker, a submitit or SLURM job.
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "error": f"{type(error).__name__}: {error}" if failed else None,
            "traceback": "".join(traceback.format_exception(error)) if failed else None,
        }
        run_files.write_json(Path(HydraConfig.get().runtime.output_dir) / JOB_JSON, record)


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep (named by job number), in job order."""
    jobs = [p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(jobs, key=lambda p: int(p.name))


def read_job(job_dir: Path) -> dict[str, Any]:
    """One summary row: job.json (the outcome), test_metrics.json (the results), and the
    overrides Hydra saved in .hydra/overrides.yaml for a job that has no job.json."""

    def read(path: Path) -> dict[str, Any]:
        return run_files.read_json(path) if path.is_file() else {}

    record, metrics = read(job_dir / JOB_JSON), read(job_dir / run_files.TEST_METRICS_JSON)
    overrides = job_dir / ".hydra" / "overrides.yaml"
    if not record.get("overrides") and overrides.is_file():
        record["overrides"] = OmegaConf.to_container(OmegaConf.load(overrides))
    # No job.json: the job was killed (or is still running) before Hydra recorded its end.
    status = record.get("status", COMPLETED if metrics else "unfinished")
    return {
        "job": int(job_dir.name),
        "status": status,
        "overrides": list(record.get("overrides") or []),
        **{key: metrics.get(key) for key in FROM_METRICS},
        "wall_seconds": record.get("wall_seconds"),
        "error": record.get("error"),
    }


def summarise_sweep(sweep_dir: Path) -> pd.DataFrame:
    """One row per job, best validation accuracy first; failed and unfinished jobs last. The
    overrides column holds what sets a job apart; those all jobs share (the command line's
    fixed ones) are in ``frame.attrs["common_overrides"]``."""
    rows = [read_job(job_dir) for job_dir in job_dirs(sweep_dir)]
    shared = set.intersection(*(set(row["overrides"]) for row in rows)) if len(rows) > 1 else ()
    common = [o for o in rows[0]["overrides"] if o in shared] if shared else []
    for row in rows:
        row["overrides"] = " ".join(o for o in row["overrides"] if o not in common)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["best_val_acc"] = pd.to_numeric(frame["best_val_acc"])
    frame["epochs"] = frame["epochs"].astype("Int64")
    frame = frame.sort_values(["best_val_acc", "job"], ascending=[False, True], na_position="last")
    frame = frame.reset_index(drop=True)
    frame.attrs["common_overrides"] = common
    return frame


def validation_curves(sweep_dir: Path, summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per-epoch metrics of each job that logged any, labelled by job number and overrides."""
    curves = {}
    for row in summary.itertuples():
        metrics_csv = sweep_dir / str(row.job) / run_files.METRICS_CSV
        epochs = run_files.epoch_metrics(metrics_csv) if metrics_csv.is_file() else {}
        if "val_acc" in epochs and epochs["val_acc"].notna().any():
            curves[f"#{row.job} {row.overrides}".strip()] = epochs
    return curves


def write_sweep_summary(sweep_dir: Path) -> pd.DataFrame:
    """summary.csv, summary.md and summary.png in the sweep folder; returns the table."""
    summary = summarise_sweep(sweep_dir)
    write_atomically(sweep_dir / SUMMARY_CSV, summary.to_csv(index=False).encode())
    failed = int((summary["status"] != COMPLETED).sum())
    text = f"# Sweep {sweep_dir.name}: {len(summary)} jobs, {failed} not completed\n\n"
    if summary.attrs["common_overrides"]:
        text += f"Common overrides: `{' '.join(summary.attrs['common_overrides'])}`\n\n"
    text += markdown_table(summary, decimals={"wall_seconds": 1}) + "\n"
    write_atomically(sweep_dir / SUMMARY_MD, text.encode())
    curves = sweep_comparison(validation_curves(sweep_dir, summary), summary)
    save_figure(curves, sweep_dir / SUMMARY_PNG)
    return summary


if __name__ == "__main__":
    # Re-summarise a sweep, e.g. after its SLURM jobs finished without the submitting process:
    #   python -m fmnist_lightning.training.sweep_summary lightning_logs/sweeps/<time>-<id>
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a folder lightning_logs/sweeps/<time>-<id>")
    sweep_dir = parser.parse_args().sweep_dir
    if not sweep_dir.is_dir() or not job_dirs(sweep_dir):
        parser.error(f"'{sweep_dir}' is not a sweep folder: it holds no job folders 0, 1, ...")
    print(markdown_table(write_sweep_summary(sweep_dir), decimals={"wall_seconds": 1}))
