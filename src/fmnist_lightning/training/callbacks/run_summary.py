"""test_metrics.json and plots/curves.png: the summary of a run, written when testing ends."""

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from fmnist_lightning.analysis import curve_plots, run_files
from fmnist_lightning.analysis.figures import save_figure
from fmnist_lightning.training.callbacks.time_to_accuracy import TimeToAccuracy
from fmnist_lightning.training.machine import gpu_model, this_cpu_model
from fmnist_lightning.training.provenance import provenance


class RunSummary(Callback):
    """At the end of testing (rank zero): the test metrics and what the run was, as JSON,
    and the training curves from metrics.csv.

    ``summary`` holds what was written; ``train.train`` returns it. The timings
    (``fit_seconds``, ``seconds_per_epoch``, ``time_to_val_acc``, across resumes) come from
    the run's ``TimeToAccuracy`` callback; without it they are not written.
    """

    def __init__(self, run_dir: str) -> None:
        self.run_dir = Path(run_dir)
        self.summary: dict[str, Any] | None = None

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        test = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test_")}
        checkpoint = trainer.checkpoint_callback
        best_path, best_score = (
            (checkpoint.best_model_path, checkpoint.best_model_score) if checkpoint else ("", None)
        )
        timing = next((c for c in trainer.callbacks if isinstance(c, TimeToAccuracy)), None)
        self.summary = {
            **test,
            # Relative to the run folder, so that a moved or copied run still makes sense.
            "best_checkpoint": os.path.relpath(best_path, self.run_dir) if best_path else None,
            "best_val_acc": float(best_score) if best_score is not None else None,
            "epochs": trainer.current_epoch,
            "precision": str(trainer.precision),
            **(timing.summary() if timing else {}),
            "parameters": sum(p.numel() for p in pl_module.parameters()),
            "device": str(trainer.strategy.root_device),
            # "cuda:0" alone does not say which GPU made the timings.
            "gpu_model": gpu_model(trainer.strategy.root_device),
            # CPU timings depend on the processor (AVX-512 BF16, AMX) as much as on the network.
            "cpu_model": this_cpu_model(),
            # Per process: CPU timings depend on it as much as on the network.
            "cpu_threads": torch.get_num_threads(),
            **provenance(),  # version, commit, dirty: the code that ran
        }
        run_files.write_json(self.run_dir / run_files.TEST_METRICS_JSON, self.summary)
        metrics_csv = self.run_dir / run_files.METRICS_CSV
        if metrics_csv.is_file():  # no logger (e.g. trainer.fast_dev_run): no curves
            epochs_frame = run_files.epoch_metrics(metrics_csv)
            path = self.run_dir / run_files.PLOTS_DIR / run_files.CURVES_PNG
            save_figure(curve_plots.training_curves(epochs_frame), path)


def run_summary_of(trainer: L.Trainer) -> dict[str, Any] | None:
    """What the trainer's RunSummary wrote, or None (no such callback, or not rank zero)."""
    callback = next((c for c in trainer.callbacks if isinstance(c, RunSummary)), None)
    return callback.summary if callback else None
