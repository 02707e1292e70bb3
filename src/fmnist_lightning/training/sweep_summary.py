"""A sweep's summary: one row per job, best first, written when a Hydra multirun ends.

Hydra's callback ``run_folder.SweepSummary`` calls this module, so it works with any sweeper
and launcher: each job writes its ``job.json`` in whichever process ran it; the sweep's end
reads the job folders back.
"""

import logging
import os
import socket
import traceback
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus

from fmnist_lightning.analysis import curve_plots, finished_runs, run_files
from fmnist_lightning.analysis.finished_runs import validation_curve, write_summary

log = logging.getLogger(__name__)

JOB_JSON = "job.json"
COMPLETED = "completed"
FROM_METRICS = ("best_val_acc", "test_acc", "epochs")
COLUMNS = ("job", "status", "overrides", *FROM_METRICS, "wall_seconds", "error")


def write_job_json(job_return: JobReturn, wall_seconds: float) -> None:
    failed = job_return.status != JobStatus.COMPLETED
    # The exception: the public .return_value would raise it again.
    error = job_return._return_value if failed else None  # noqa: SLF001 (no public getter of a failure)
    record = {
        "status": "failed" if failed else COMPLETED,
        "overrides": list(job_return.overrides or []),
        "wall_seconds": round(wall_seconds, 1),
        # Where the launcher ran the job: a joblib worker, a submitit or SLURM job.
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "error": f"{type(error).__name__}: {error}" if failed else None,
        "traceback": "".join(traceback.format_exception(error)) if failed else None,
    }
    run_files.write_json(Path(HydraConfig.get().runtime.output_dir) / JOB_JSON, record)


def job_dirs(sweep_dir: Path) -> list[Path]:
    jobs = [p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(jobs, key=lambda p: int(p.name))


def read_job(job_dir: Path) -> dict[str, Any]:
    """job.json, test_metrics.json, and for a job without job.json Hydra's overrides.yaml."""
    record, metrics = (
        run_files.read_json(p) if p.is_file() else {}
        for p in (job_dir / JOB_JSON, job_dir / run_files.TEST_METRICS_JSON)
    )
    if not record.get("overrides"):  # {}: no such file
        record["overrides"] = run_files.load_config(job_dir / ".hydra" / "overrides.yaml")
    # No job.json: the job was killed (or is still running) before Hydra recorded its end.
    return {
        **{key: metrics.get(key) for key in FROM_METRICS},
        **{key: record.get(key) for key in ("wall_seconds", "error")},
        "job": int(job_dir.name),
        "status": record.get("status", COMPLETED if metrics else "unfinished"),
        "overrides": list(record.get("overrides") or []),
    }


def summarise_sweep(sweep_dir: Path) -> pd.DataFrame:
    """Best validation accuracy first; failed and unfinished jobs last. The overrides that all
    jobs share are in ``frame.attrs["common_overrides"]``, not in each row."""
    rows = [read_job(job_dir) for job_dir in job_dirs(sweep_dir)]
    shared = set.intersection(*(set(row["overrides"]) for row in rows)) if len(rows) > 1 else ()
    common = [o for o in rows[0]["overrides"] if o in shared] if shared else []
    for row in rows:
        row["overrides"] = " ".join(o for o in row["overrides"] if o not in common)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame = frame.astype({"best_val_acc": float, "epochs": "Int64"}).sort_values(
        ["best_val_acc", "job"], ascending=[False, True], na_position="last", ignore_index=True
    )
    frame.attrs["common_overrides"] = common
    return frame


def validation_curves(sweep_dir: Path, summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
    curves = {}
    for row in summary.itertuples():
        curve = validation_curve(sweep_dir / str(row.job) / run_files.METRICS_CSV)
        if curve is not None:
            curves[f"#{row.job} {row.overrides}".strip()] = curve
    return curves


def write_sweep_summary(sweep_dir: Path) -> pd.DataFrame:
    """summary.csv, summary.md and summary.png in ``sweep_dir``."""
    summary = summarise_sweep(sweep_dir)
    failed = int((summary["status"] != COMPLETED).sum())
    head = f"# Sweep {sweep_dir.name}: {len(summary)} jobs, {failed} not completed\n"
    if summary.attrs["common_overrides"]:
        head += f"\nCommon overrides: `{' '.join(summary.attrs['common_overrides'])}`\n"
    write_summary(sweep_dir, finished_runs.SUMMARY_CSV, summary, head, decimals={"wall_seconds": 1})
    curves = curve_plots.sweep_comparison(validation_curves(sweep_dir, summary), summary)
    run_files.save_figure(curves, sweep_dir / finished_runs.SUMMARY_PNG)
    log.info("Sweep summary: %s", sweep_dir / finished_runs.SUMMARY_MD)
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
    write_sweep_summary(sweep_dir)
    print((sweep_dir / finished_runs.SUMMARY_MD).read_text(), end="")
