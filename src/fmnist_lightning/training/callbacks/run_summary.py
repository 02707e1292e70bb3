"""test_metrics.json and plots/curves.png: the summary of a run, written when testing ends."""

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only

from fmnist_lightning.analysis import plots, run_files
from fmnist_lightning.analysis.run_files import save_figure
from fmnist_lightning.training.callbacks.time_to_accuracy import TimeToAccuracy
from fmnist_lightning.training.checkpoint_io import provenance
from fmnist_lightning.training.machine import gpu_model, this_cpu_model


class RunSummary(Callback):
    """``summary``: what ``train.train`` returns; timings only with a ``TimeToAccuracy``."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = Path(run_dir)
        self.summary: dict[str, Any] | None = None
        # Read as the run starts (then cached): the code that runs, not the tree at its end.
        self.provenance = provenance()

    @rank_zero_only
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        test = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test_")}
        best_path = getattr(trainer.checkpoint_callback, "best_model_path", "")
        best_score = getattr(trainer.checkpoint_callback, "best_model_score", None)
        timing = next((c for c in trainer.callbacks if isinstance(c, TimeToAccuracy)), None)
        teacher = self.run_dir / run_files.TEACHER_JSON  # a distilled run's
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
            # Timings depend on which GPU ("cuda:0" does not say), or on the processor
            # (AVX-512 BF16, AMX) and the threads per process, as much as on the network.
            "gpu_model": gpu_model(trainer.strategy.root_device),
            "cpu_model": this_cpu_model(),
            "cpu_threads": torch.get_num_threads(),
            **self.provenance,  # version, commit, dirty: the code that ran
            **({"teacher": run_files.read_json(teacher)} if teacher.is_file() else {}),
        }
        run_files.write_json(self.run_dir / run_files.TEST_METRICS_JSON, self.summary)
        metrics_csv = self.run_dir / run_files.METRICS_CSV
        if metrics_csv.is_file():  # no logger (e.g. trainer.fast_dev_run): no curves
            curves = plots.training_curves(run_files.epoch_metrics(metrics_csv))
            save_figure(curves, self.run_dir / run_files.PLOTS_DIR / run_files.CURVES_PNG)


def run_summary_of(trainer: L.Trainer) -> dict[str, Any] | None:  # None: not rank zero
    callback = next((c for c in trainer.callbacks if isinstance(c, RunSummary)), None)
    return callback.summary if callback else None
