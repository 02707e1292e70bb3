"""Loggers beside CSV: TensorBoard event files and MLflow runs, written by a real fit."""

from pathlib import Path

import mlflow
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fmnist_lightning.analysis import run_files
from fmnist_lightning.train import train
from helpers.compose import compose, tiny


@pytest.mark.parametrize(
    ("choice", "loggers"),
    [
        ("logger=csv", ["csv"]),
        ("logger=tensorboard", ["csv", "tensorboard"]),
        ("logger=mlflow", ["csv", "mlflow"]),
        ("logger=many", ["csv", "tensorboard", "mlflow"]),
        ("logger=[tensorboard,mlflow]", ["csv", "tensorboard", "mlflow"]),
    ],
)
def test_every_logger_preset_keeps_csv_which_the_curves_read(choice, loggers):
    cfg = compose("train", [choice, "paths.run_dir=/tmp/run"])
    assert list(cfg.logger) == loggers
    assert cfg.logger.csv.save_dir == "/tmp/run"


def test_mlflow_stores_locally_under_the_logs_folder_unless_told_otherwise():
    mlflow_cfg = compose("train", ["logger=mlflow", "paths.run_dir=/tmp/r/x1"]).logger.mlflow
    assert mlflow_cfg.tracking_uri == "sqlite:///lightning_logs/mlflow.db"
    assert mlflow_cfg.artifact_location == "lightning_logs/mlruns"
    assert mlflow_cfg.run_name == "x1" and mlflow_cfg.tags.run_dir == "/tmp/r/x1"
    server = compose(
        "train",
        ["logger=mlflow", "paths.run_dir=/tmp/r", "logger.mlflow.tracking_uri=http://host:5000"],
    )
    assert server.logger.mlflow.tracking_uri == "http://host:5000"


@pytest.fixture(scope="module")
def logged_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory):
    logs = tmp_path_factory.mktemp("logs")
    run_dir = logs / "runs" / "r1"
    cfg = tiny(synthetic_root, run_dir, "logger=many", f"paths.root={logs}", "~analysis")
    summary = train(cfg)
    return logs, run_dir, summary


def test_the_csv_logger_still_writes_metrics_csv(logged_run):
    _, run_dir, summary = logged_run
    epochs = run_files.epoch_metrics(run_dir / run_files.METRICS_CSV)
    assert epochs["val_acc"].dropna().size == summary["epochs"] == 2


def test_tensorboard_writes_an_event_file_with_the_runs_scalars(logged_run):
    _, run_dir, summary = logged_run
    # One event file for fitting, one for testing, in the same folder.
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 2
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_loss_step", "train_loss_epoch", "val_loss", "val_acc", "test_acc"} <= tags
    assert len(events.Scalars("val_acc")) == 2  # one per epoch
    best = max(e.value for e in events.Scalars("val_acc"))
    assert best == pytest.approx(summary["best_val_acc"])
    assert events.Scalars("test_acc")[-1].value == pytest.approx(summary["test_acc"])


def test_mlflow_records_a_run_with_its_params_and_metrics(logged_run):
    logs, run_dir, summary = logged_run
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{logs}/mlflow.db")
    experiment = client.get_experiment_by_name("fmnist")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "r1" and run.info.status == "FINISHED"
    assert run.data.tags["run_dir"] == str(run_dir)
    params = run.data.params
    assert params["optimizer/_target_"] == "torch.optim.AdamW"
    assert float(params["optimizer/lr"]) == pytest.approx(1e-3)
    assert params["net/_target_"] == "fmnist_lightning.models.vgg.VGGStyleCNN"
    assert run.data.metrics["test_acc"] == pytest.approx(summary["test_acc"])
    history = client.get_metric_history(run.info.run_id, "val_acc")
    assert len(history) == 2
    assert max(m.value for m in history) == pytest.approx(summary["best_val_acc"])
    assert Path(experiment.artifact_location.removeprefix("file://")) == logs / "mlruns"
