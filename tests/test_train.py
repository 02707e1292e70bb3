import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from fmnist_lightning.data.datamodule import FashionMNISTDataModule
from fmnist_lightning.models.module import FashionMNISTModule
from fmnist_lightning.train import train
from fmnist_lightning.training.machine import this_cpu_model
from helpers.compose import compose, finalise, tiny


@pytest.fixture(scope="module")
def finished_run(synthetic_root, tmp_path_factory):
    """One short fit on synthetic data through the composed Hydra config."""
    run_dir = tmp_path_factory.mktemp("run")
    cfg = tiny(synthetic_root, run_dir)
    summary = train(cfg)
    return run_dir, summary, cfg


def test_fit_writes_every_artifact_of_a_run(finished_run):
    run_dir, summary, _ = finished_run
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert len(list((run_dir / "checkpoints").glob("best-*.ckpt"))) == 1
    metrics = pd.read_csv(run_dir / "metrics.csv")
    for column in ("train_loss_epoch", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"):
        assert column in metrics.columns, column
    assert metrics["val_acc"].dropna().size == 2  # one row per epoch
    test_metrics = json.loads((run_dir / "test_metrics.json").read_text())
    assert 0.0 <= test_metrics["test_acc"] <= 1.0
    assert test_metrics["parameters"] == 1_413_834
    assert test_metrics["epochs"] == 2
    assert test_metrics == summary
    assert test_metrics["precision"] == "32-true"
    assert test_metrics["cpu_threads"] == torch.get_num_threads()
    assert test_metrics["gpu_model"] is None  # a CPU run
    assert test_metrics["cpu_model"] == this_cpu_model()
    with Image.open(run_dir / "plots" / "curves.png") as image:
        assert image.width > 400 and image.height > 200


def head_of_this_checkout() -> str | None:
    """``git rev-parse HEAD`` where these tests live (None: no git, or not a checkout)."""
    if shutil.which("git") is None:
        return None
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else None


def test_a_run_records_the_code_that_made_it(finished_run):
    """test_metrics.json and every checkpoint name the package version and the commit."""
    run_dir, summary, _ = finished_run
    expected = {"version": version("fmnist-lightning"), "commit": head_of_this_checkout()}
    assert {key: summary[key] for key in expected} == expected
    checkpoints = sorted((run_dir / "checkpoints").glob("*.ckpt"))
    assert [path.name[:4] for path in checkpoints] == ["best", "last"]
    for path in checkpoints:
        recorded = torch.load(path, weights_only=True)["fmnist_lightning"]
        assert recorded == {**expected, "dirty": summary["dirty"]}
    assert summary["dirty"] in ((True, False) if expected["commit"] else (None,))


def test_the_processor_is_read_from_cpuinfo(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n")
    assert this_cpu_model(cpuinfo) == "AMD EPYC 7B13"
    monkeypatch.setattr("platform.processor", lambda: "")
    assert this_cpu_model(tmp_path / "absent") is None  # neither Linux's file nor platform's name
    cpuinfo.write_text("processor\t: 0\n")
    assert this_cpu_model(cpuinfo) is None


def test_the_saved_config_is_the_composed_one(finished_run):
    """config.yaml holds the whole composed config, resolved, with the precision that ran."""
    run_dir, _, cfg = finished_run
    saved = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))
    assert saved == OmegaConf.to_container(finalise(cfg), resolve=True)
    assert cfg.trainer.precision == "32-true" and saved["trainer"]["precision"] == "32-true"


def test_precision_auto_is_recorded_as_the_precision_that_ran(synthetic_root, tmp_path):
    summary = train(
        tiny(synthetic_root, tmp_path, "trainer.precision=auto", "trainer.max_epochs=1")
    )
    saved = OmegaConf.load(tmp_path / "config.yaml")
    assert saved.trainer.precision in ("32-true", "bf16-mixed")
    assert saved.trainer.precision == summary["precision"]


def test_reloaded_checkpoint_predicts_identically(finished_run, synthetic_root):
    run_dir, _, cfg = finished_run
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    reloaded = FashionMNISTModule.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    again = FashionMNISTModule.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    datamodule = FashionMNISTDataModule(**{k: v for k, v in cfg.data.items() if k != "_target_"})
    datamodule.setup("test")
    images, _ = datamodule.tensors["test"].tensors
    with torch.no_grad():
        first, second = reloaded.predict_step(images, 0), again.predict_step(images, 0)
    assert first.shape == (100, 10)
    assert torch.allclose(first.sum(dim=1), torch.ones(100), atol=1e-5)
    assert torch.equal(first, second)
    assert reloaded.class_names[0] == "T-shirt/top"


def test_learning_happens_on_synthetic_data(synthetic_root, tmp_path):
    summary = train(tiny(synthetic_root, tmp_path, "trainer.max_epochs=6", "model.net.dropout=0.1"))
    assert summary["test_acc"] > 0.5  # chance is 0.1


def test_fast_dev_run_runs_one_batch_of_each_stage(synthetic_root, tmp_path):
    overrides = ["debug=fast_dev_run", f"data.root={synthetic_root}", f"paths.run_dir={tmp_path}"]
    summary = train(compose("train", [*overrides, "trainer.accelerator=cpu", "data.batch_size=32"]))
    assert 0.0 <= summary["test_acc"] <= 1.0
    assert (tmp_path / "test_metrics.json").is_file()
    assert not (tmp_path / "checkpoints").exists()  # fast_dev_run writes no checkpoint


@pytest.mark.slow
def test_command_line_entry_point_runs_with_overrides(synthetic_root, tmp_path):
    command = [
        sys.executable,
        "-m",
        "fmnist_lightning.train",
        f"data.root={synthetic_root}",
        f"paths.root={tmp_path / 'logs'}",
        "trainer.max_epochs=1",
        "data.batch_size=64",
        "model.net.dropout=0.3",
        "callbacks.progress_bar=null",
        "trainer.accelerator=cpu",
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "logs" / "runs").iterdir()
    assert "Test accuracy:" in result.stdout and str(run_dir) in result.stdout
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "metrics.csv").is_file() and (run_dir / "plots" / "curves.png").is_file()
    assert "dropout: 0.3" in (run_dir / "config.yaml").read_text()
    # Hydra writes nothing outside the run folder.
    assert not Path("outputs").exists()


@pytest.mark.slow
def test_lightning_refusing_a_trainer_setting_is_one_line_with_what_to_do(synthetic_root, tmp_path):
    command = [
        *(sys.executable, "-m", "fmnist_lightning.train", "debug=tiny"),
        *(f"data.root={synthetic_root}", f"paths.root={tmp_path}", "trainer.accelerator=mps"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "Error executing job" not in result.stderr and "Traceback" not in result.stderr
    assert "Lightning refused the trainer settings (fix or drop the trainer.*" in result.stderr
    assert "`MPSAccelerator` can not run on your system" in result.stderr  # Lightning's words
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_turning_the_progress_bar_off_drops_the_progress_callback(synthetic_root, tmp_path):
    progress = "{_target_: fmnist_lightning.training.callbacks.progress.progress_for_output}"
    cfg = tiny(
        synthetic_root, tmp_path, f"callbacks.progress_bar={progress}", "trainer.max_epochs=1",
        "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "~analysis",
    )  # fmt: skip
    assert cfg.trainer.enable_progress_bar is False
    assert "test_acc" in train(cfg)
