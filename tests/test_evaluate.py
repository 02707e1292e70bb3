"""The analysis a checkpoint evaluation writes, through the function, the CLI and training."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fmnist_lightning import cli
from fmnist_lightning.analysis import plots
from fmnist_lightning.analysis.evaluation import AnalysisSettings, default_output_dir, evaluate
from fmnist_lightning.analysis.run_files import save_figure
from fmnist_lightning.data.datamodule import FashionMNISTDataModule
from fmnist_lightning.data.files import CLASS_NAMES
from fmnist_lightning.errors import UsageError
from fmnist_lightning.evaluate import check_command_line, evaluate_checkpoint, run
from fmnist_lightning.models.module import FashionMNISTModule
from fmnist_lightning.train import train
from helpers.compose import compose, tiny
from helpers.data import make_datamodule
from helpers.modules import tiny_module

SETTINGS = AnalysisSettings(
    calibration_bins=10, samples_per_class=4, predictions=6, mistakes=12, seed=0
)
DPI = 110  # run_files.save_figure's
# Nominal figure sizes in inches for SETTINGS, 10 classes and the small network below.
# Saving with a tight bounding box trims margins or adds room for labels, hence the slack.
NOMINAL_INCHES = {
    "samples.png": (4 * 0.85 + 1.6, 10 * 0.85),
    "architecture.png": (7.5, 0.55 * 9 + 0.9),  # 9 boxes once ReLUs are merged
    "confusion_matrix.png": (2 * (0.75 * 10 + 2.5), 0.75 * 10 + 1.5),
    "predictions.png": (3 * 5.2, 2 * 2.1),  # 6 predictions, 3 per row
    "misclassified.png": (6 * 1.9, 2 * 2.5),  # 12 mistakes, 6 per row
    "calibration.png": (5.5, 6.5),
}
TEXT_FILES = (
    "report.md",
    "metrics.json",
    "per_class.csv",
    "confusion_matrix.csv",
    "model_summary.txt",
)


def small_classifier(seed: int = 0) -> FashionMNISTModule:
    """An untrained (seeded) classifier: it makes plenty of mistakes to draw."""
    torch.manual_seed(seed)
    return tiny_module(blocks=[[8], [16]], dense=[32], channels_last=True).eval()


def synthetic_datamodule(root: Path) -> FashionMNISTDataModule:
    datamodule = make_datamodule(root)
    datamodule.setup("fit")
    datamodule.setup("test")
    return datamodule


def save_checkpoint(module: FashionMNISTModule, path: Path) -> Path:
    """The two keys load_module needs, as Lightning writes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def image_links(report: Path) -> list[Path]:
    return [
        report.parent / link for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", report.read_text())
    ]


@pytest.fixture(scope="module")
def evaluated(synthetic_root, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("analysis")
    module = small_classifier()
    metrics = evaluate(module, synthetic_datamodule(synthetic_root), "test", output_dir, SETTINGS)
    return output_dir, metrics, module


def test_every_file_is_written(evaluated):
    output_dir, _, _ = evaluated
    for name in (*TEXT_FILES, *NOMINAL_INCHES):
        assert (output_dir / name).is_file(), name
        assert (output_dir / name).stat().st_size > 0, name


@pytest.mark.parametrize("name", sorted(NOMINAL_INCHES))
def test_pictures_decode_with_the_expected_size(evaluated, name):
    output_dir, _, _ = evaluated
    with Image.open(output_dir / name) as image:
        image.load()  # decodes the whole file
        size = image.size
    nominal = [inches * DPI for inches in NOMINAL_INCHES[name]]
    for actual, expected in zip(size, nominal, strict=True):
        assert 0.6 * expected <= actual <= 1.25 * expected, (name, size, nominal)


def test_per_class_csv_has_a_row_per_class_and_the_averages(evaluated):
    output_dir, metrics, _ = evaluated
    table = pd.read_csv(output_dir / "per_class.csv")
    assert list(table.columns) == ["class", "precision", "recall", "f1", "support"]
    assert table["class"].tolist() == [*CLASS_NAMES, "macro avg", "weighted avg"]
    assert table["support"].iloc[:10].sum() == 100 == metrics["images"]
    assert table["support"].iloc[10:].tolist() == [100, 100]
    assert table[["precision", "recall", "f1"]].apply(lambda c: c.between(0, 1).all()).all()
    # The weighted recall of a classifier is its accuracy.
    assert table["recall"].iloc[11] == pytest.approx(metrics["accuracy"], abs=1e-6)


def test_confusion_matrix_csv_agrees_with_the_model_and_the_per_class_table(
    evaluated, synthetic_root
):
    output_dir, metrics, module = evaluated
    matrix = pd.read_csv(output_dir / "confusion_matrix.csv", index_col=0)
    assert matrix.index.name == "true class"
    assert list(matrix.index) == list(CLASS_NAMES) == list(matrix.columns)
    images, labels = synthetic_datamodule(synthetic_root).tensors["test"].tensors
    with torch.no_grad():
        predictions = module(images).argmax(dim=1)
    expected = torch.zeros(10, 10, dtype=torch.long)
    expected.index_put_((labels, predictions), torch.ones(100, dtype=torch.long), accumulate=True)
    assert (matrix.to_numpy() == expected.numpy()).all()
    per_class = pd.read_csv(output_dir / "per_class.csv").iloc[:10]
    assert per_class["support"].tolist() == matrix.sum(axis=1).tolist()
    assert metrics["accuracy"] == pytest.approx(matrix.to_numpy().trace() / 100)


def test_metrics_json_holds_the_headline_numbers(evaluated):
    output_dir, metrics, _ = evaluated
    saved = json.loads((output_dir / "metrics.json").read_text())
    assert saved == metrics
    assert saved["split"] == "test" and saved["images"] == 100
    assert 0 <= saved["ece"] <= 1 and saved["loss"] > 0
    assert saved["predict_seconds"] >= 0 and saved["precision"] == "32-true"


def test_report_embeds_every_picture_with_working_relative_links(evaluated):
    output_dir, _, _ = evaluated
    report = output_dir / "report.md"
    links = image_links(report)
    assert sorted(link.name for link in links) == sorted(NOMINAL_INCHES)
    assert all(link.is_file() for link in links)
    text = report.read_text()
    for row in (*CLASS_NAMES, "macro avg", "weighted avg"):
        assert f"| {row} |" in text
    assert "| accuracy |" in text and "| expected calibration error |" in text
    assert "VGGStyleCNN" in text  # the configuration summary
    assert "Total params" in (output_dir / "model_summary.txt").read_text()


@pytest.mark.slow
def test_cli_evaluates_a_checkpoint_into_its_run_folder(synthetic_root, tmp_path):
    checkpoint = save_checkpoint(
        small_classifier(), tmp_path / "run" / "checkpoints" / "model.ckpt"
    )
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fmnist_lightning.evaluate",
            f"ckpt_path={checkpoint}",
            "split=val",
            f"data.root={synthetic_root}",
            "accelerator=cpu",
            "analysis.predictions=6",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=workdir,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output_dir = tmp_path / "run" / "analysis" / "model-val"
    assert default_output_dir(checkpoint, "val") == output_dir
    assert f"Analysis folder: {output_dir}" in result.stdout
    assert "macro avg" in result.stdout and "Ankle boot" in result.stdout
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["split"] == "val" and metrics["images"] == 80  # 20% of 400
    saved = (output_dir / "evaluate_config.yaml").read_text()
    assert "precision: 32-true" in saved or "precision: bf16-mixed" in saved  # auto resolved
    assert all(link.is_file() for link in image_links(output_dir / "report.md"))
    assert list(workdir.iterdir()) == []  # no Hydra folder or log file in the working directory


@pytest.mark.slow
def test_cli_names_a_missing_checkpoint_in_one_line_and_fails(tmp_path):
    missing = tmp_path / "runs" / "nope" / "checkpoints" / "best.ckpt"
    result = subprocess.run(
        [sys.executable, "-m", "fmnist_lightning.evaluate", f"ckpt_path={missing}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: No checkpoint file at")
    assert str(missing) in lines[0]
    assert not (tmp_path / "runs").exists()  # nothing created for a bad path


def exit_status(command) -> int:
    """The exit status of ``command`` through the command-line front that prints its errors."""
    with pytest.raises(SystemExit) as exited:
        cli.run(command)
    return exited.value.code


def test_an_override_hydra_would_crash_on_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    fine = [f"ckpt_path={tmp_path}/x.ckpt", "tta=flip", "split=val"]
    monkeypatch.setattr(sys, "argv", ["evaluate", *fine])
    check_command_line()
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys, "argv", ["evaluate", *fine, "tta=null"])
    assert exit_status(check_command_line) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("Error: Invalid override: 'tta=null' is not a config name")


def test_an_unknown_split_is_rejected_before_loading_anything(tmp_path):
    cfg = compose("evaluate", [f"ckpt_path={tmp_path}/x.ckpt", "split=training"])
    with pytest.raises(UsageError, match="split=training .* train, val, test"):
        evaluate_checkpoint(cfg)


def test_training_writes_the_analysis_of_its_best_checkpoint(synthetic_root, tmp_path):
    overrides = ["trainer.max_epochs=1", "analysis.predictions=3", "analysis.samples_per_class=2"]
    train(tiny(synthetic_root, tmp_path, *overrides))
    (best,) = (tmp_path / "checkpoints").glob("best-*.ckpt")
    output_dir = tmp_path / "analysis" / f"{best.stem}-test"
    report = output_dir / "report.md"
    links = image_links(report)
    assert output_dir / "../../plots/curves.png" in links  # the run's curves, not a copy
    # The default flips training images, so the run's augmented views are shown too.
    assert output_dir / "../../plots/augmented.png" in links
    assert all(link.is_file() for link in links) and len(links) == 8
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["checkpoint"] == f"checkpoints/{best.name}" and metrics["images"] == 100
    assert "| epochs trained | 1 |" in report.read_text()
    # The analysed weights are the best checkpoint's: its accuracy is the tested one.
    tested = json.loads((tmp_path / "test_metrics.json").read_text())["test_acc"]
    assert metrics["accuracy"] == pytest.approx(tested, abs=1e-6)


def test_removing_the_analysis_group_turns_it_off_in_training(synthetic_root, tmp_path):
    assert compose("train", [f"paths.run_dir={tmp_path}"]).analysis.samples_per_class > 0
    cfg = tiny(synthetic_root, tmp_path, "~analysis", "trainer.max_epochs=1")
    assert cfg.get("analysis") is None and cfg.callbacks.test_analysis.settings is None
    train(cfg)
    assert (tmp_path / "test_metrics.json").is_file()
    assert not (tmp_path / "analysis").exists()


def test_the_report_shows_the_run_pictures_that_exist(synthetic_root, tmp_path):
    run_dir = tmp_path / "run"
    views = np.random.default_rng(0).random((2, 3, 28, 28))
    save_figure(plots.augmented_samples(views[:, 0], views), run_dir / "plots" / "augmented.png")
    output_dir = run_dir / "analysis" / "x-test"
    datamodule = synthetic_datamodule(synthetic_root)
    evaluate(small_classifier(), datamodule, "test", output_dir, SETTINGS, run_dir=run_dir)
    report = (output_dir / "report.md").read_text()
    assert "../../plots/augmented.png" in report
    assert "curves.png" not in report  # this run has no curves, so none is linked


def damaged_copy(root: Path, folder: Path) -> Path:
    """A copy of the synthetic data whose training images are truncated."""
    import shutil

    copy = Path(shutil.copytree(root, folder))
    images = copy / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-5])
    return copy


@pytest.mark.parametrize(
    "case",
    ["no ckpt_path", "eval_batch_size=0", "output_dir is a file", "root is a file", "corrupt"],
)
def test_bad_input_to_evaluate_is_one_line_and_exit_status_2(
    case, tiny_checkpoint, synthetic_root, tmp_path, capsys
):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    given = [f"ckpt_path={tiny_checkpoint}", f"data.root={synthetic_root}", "accelerator=cpu"]
    overrides, expected = {
        "no ckpt_path": ([f"data.root={synthetic_root}"], "ckpt_path is required"),
        "eval_batch_size=0": (
            [*given, "data.eval_batch_size=0"],
            "data.eval_batch_size=0 is out of range",
        ),
        "output_dir is a file": ([*given, f"output_dir={a_file}"], f"'{a_file}' is a file"),
        "root is a file": ([*given, f"data.root={a_file}"], "is a file, but it should be a folder"),
        "corrupt": (
            [*given, f"data.root={damaged_copy(synthetic_root, tmp_path / 'data')}"],
            "is damaged",
        ),
    }[case]
    cfg = compose("evaluate", overrides)
    assert exit_status(lambda: run(cfg)) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("Error: ") and expected in error, error
    assert len(error.splitlines()) == 1
    assert not (tiny_checkpoint.parent / "analysis").exists()
