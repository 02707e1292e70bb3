"""analysis/<best checkpoint>-test/: the analysis of the tested checkpoint, when testing ends."""

import os
import shutil
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from fmnist_lightning.analysis import run_files
from fmnist_lightning.analysis.evaluation import REPORT_MD, AnalysisSettings, evaluate


class TestSetAnalysis(Callback):
    """``settings`` None (``~analysis``): off. Written into a hidden folder, moved into place
    when complete: a failure half-way leaves no partial folder, and keeps an earlier analysis."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, settings: AnalysisSettings | None, run_dir: str) -> None:
        self.settings, self.run_dir = settings, Path(run_dir)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.settings is None or not trainer.is_global_zero or trainer.datamodule is None:
            return
        best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
        name = f"{Path(best).stem if best else 'final'}-test"
        output_dir = self.run_dir / run_files.ANALYSIS_DIR / name
        partial = output_dir.with_name(f".{name}.partial")
        created = not output_dir.parent.exists()
        shutil.rmtree(partial, ignore_errors=True)  # left by a process that was killed
        try:
            evaluate(
                pl_module,
                trainer.datamodule,
                "test",
                partial,
                self.settings,
                precision=str(trainer.precision),
                checkpoint=os.path.relpath(best, self.run_dir) if best else None,
                run_dir=self.run_dir,
            )
        except BaseException:  # Ctrl-C (SIGTERMException is a SystemExit) or a failure
            shutil.rmtree(partial, ignore_errors=True)
            if created and not any(output_dir.parent.iterdir()):
                output_dir.parent.rmdir()
            raise
        shutil.rmtree(output_dir, ignore_errors=True)
        partial.rename(output_dir)
        print(f"Analysis: {(output_dir / REPORT_MD).resolve()}")
