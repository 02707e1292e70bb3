"""The analysis of one split: predict it, compute the metrics, write the tables, pictures and
report.md (docs/evaluation.md lists the files). Called by the evaluate command and, at the
end of every training run, by ``training.callbacks.test_analysis.TestSetAnalysis``.
"""

import os
import time
from pathlib import Path
from typing import Any

from fmnist_lightning.analysis import run_files
from fmnist_lightning.analysis.figures import AnalysisSettings, write_figures
from fmnist_lightning.analysis.finished_runs import load_config
from fmnist_lightning.analysis.metrics import analyse
from fmnist_lightning.analysis.report import config_summary, render_report
from fmnist_lightning.data.datamodule import FashionMNISTDataModule
from fmnist_lightning.inference.batches import predict_probabilities
from fmnist_lightning.inference.output_files import write_atomically
from fmnist_lightning.models.module import FashionMNISTModule
from fmnist_lightning.models.tta import TTA

REPORT_MD = "report.md"
# Pictures of the training run (plots/<name>) that the report shows when they exist.
RUN_PICTURES = {"curves": run_files.CURVES_PNG, "augmented": run_files.AUGMENTED_PNG}


def run_dir_of(checkpoint: Path) -> Path:
    """The parent of a checkpoint's checkpoints/ folder, else its own folder."""
    parent = checkpoint.resolve().parent
    return parent.parent if parent.name == run_files.CHECKPOINT_DIR else parent


def default_output_dir(checkpoint: Path, split: str, tta: TTA | None = None) -> Path:
    """<run>/analysis/<checkpoint>-<split>/, with a -tta suffix for test-time augmentation."""
    suffix = "-tta" if tta is not None and tta.enabled else ""
    return run_dir_of(checkpoint) / run_files.ANALYSIS_DIR / f"{checkpoint.stem}-{split}{suffix}"


def evaluate(
    module: FashionMNISTModule,
    datamodule: FashionMNISTDataModule,
    split: str,
    output_dir: Path | str,
    settings: AnalysisSettings,
    *,
    precision: str | int = "32-true",
    checkpoint: Path | str | None = None,
    run_dir: Path | str | None = None,
    tta: TTA | None = None,
) -> dict[str, Any]:
    """Predict one split on the module's device, write the whole analysis; return its metrics.
    ``run_dir`` (the training run, if known) adds its curves and summary to the report."""
    tta = tta if tta is not None and tta.enabled else None
    output_dir = Path(output_dir)
    images, labels = datamodule.tensors[split].tensors
    started = time.perf_counter()
    probabilities = predict_probabilities(
        module, images, datamodule.eval_batch_size, precision, tta=tta
    )
    seconds = time.perf_counter() - started
    result = analyse(probabilities, labels, module.class_names, settings.calibration_bins)

    metrics = {
        "split": split,
        **result.metrics,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "predict_seconds": round(seconds, 3),
        "images_per_second": round(len(labels) / max(seconds, 1e-9)),
        "device": str(module.device),
        "precision": str(precision),
        "tta": tta.as_dict() if tta else None,
    }
    run_files.write_json(output_dir / "metrics.json", metrics)
    per_class = result.per_class.to_csv(index=False, float_format="%.6f")
    write_atomically(output_dir / "per_class.csv", per_class)
    write_atomically(output_dir / "confusion_matrix.csv", result.confusion_frame().to_csv())

    train = datamodule.tensors["train"].tensors if "train" in datamodule.tensors else None
    pictures = write_figures(result, images, train, module, output_dir, settings)
    run_dir = Path(run_dir) if run_dir else None
    for key, name in RUN_PICTURES.items():  # drawn by training, linked rather than copied
        if run_dir and (run_dir / run_files.PLOTS_DIR / name).is_file():
            pictures[key] = run_dir / run_files.PLOTS_DIR / name
    links = {
        key: Path(os.path.relpath(path, output_dir)).as_posix() for key, path in pictures.items()
    }
    test = run_dir / run_files.TEST_METRICS_JSON if run_dir else None
    shown = config_summary(
        dict(module.hparams),
        load_config(run_dir / run_files.CONFIG_YAML) if run_dir else None,
        run_files.read_json(test) if test and test.is_file() else None,
    )
    views = tta and f"mean of {tta.view_count} views (flip: {tta.flip}, shift: {tta.shift} px)"
    write_atomically(
        output_dir / REPORT_MD, render_report(metrics, result.per_class, shown, links, views)
    )
    return metrics
