"""python -m fmnist_lightning.results on hand-written run folders of a two-configuration study."""

import json
import subprocess
import sys

import pytest

from fmnist_lightning.results import main

# (configuration overrides, seed, test accuracy, val_acc per epoch, parameters, s/epoch)
RUNS = [
    (["experiment=seed_keras"], 0, 0.9100, [0.88, 0.90, 0.89], 1_413_834, 60.0),
    (["experiment=seed_keras"], 1, 0.9140, [0.87, 0.91, 0.92], 1_413_834, 62.0),
    (["experiment=best"], 0, 0.9450, [0.90, 0.93, 0.94, 0.95], 1_414_666, 70.0),
    (["experiment=best"], 1, 0.9470, [0.91, 0.95, 0.94, 0.93], 1_414_666, 72.0),
    (["experiment=best"], 2, 0.9490, [0.92, 0.93, 0.94, 0.96], 1_414_666, 74.0),
]


def write_run(folder, overrides, seed, test_acc, val_accs, parameters, seconds):
    """A run folder as train() and Hydra leave it (only the files the table reads)."""
    (folder / ".hydra").mkdir(parents=True)
    hydra_overrides = [*overrides, f"seed={seed}", "data.root=/data", "paths.root=/logs"]
    (folder / ".hydra" / "overrides.yaml").write_text(
        "".join(f"- {override}\n" for override in hydra_overrides)
    )
    (folder / ".hydra" / "config.yaml").write_text(f"seed: {seed}\n")
    (folder / "config.yaml").write_text(f"seed: {seed}\nmodel:\n  _target_: x.Net\n")
    rows = ["epoch,step,train_loss_epoch,val_acc,val_loss"]
    for epoch, val_acc in enumerate(val_accs):
        rows += [f"{epoch},{10 * epoch + 9},0.5,,", f"{epoch},{10 * epoch + 9},,{val_acc},0.3"]
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    summary = {
        "test_acc": test_acc,
        "epochs": len(val_accs),
        "parameters": parameters,
        "seconds_per_epoch": seconds,
        "device": "cpu",
    }
    (folder / "test_metrics.json").write_text(json.dumps(summary))


@pytest.fixture
def study(tmp_path):
    """Two sweep folders as `-m seed=...` makes them, plus one run that never finished."""
    for index, run in enumerate(RUNS):
        sweep = "keras" if "seed_keras" in run[0][0] else "best"
        write_run(tmp_path / "sweeps" / sweep / str(index), *run)
    unfinished = tmp_path / "sweeps" / "best" / "9"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("seed: 9\n")
    return tmp_path / "sweeps"


def test_the_table_groups_seeds_by_configuration(study, tmp_path, capsys):
    output = tmp_path / "out" / "results.md"
    assert main([str(study / "keras"), str(study / "best"), "--output", str(output)]) == 0
    text = output.read_text()
    assert text == capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].startswith("| configuration | seeds | test accuracy (%) | best epoch |")
    # seed_keras: mean 91.20, sample std 0.28; best epochs 2 and 3 (1-based).
    assert lines[2] == (
        "| `experiment=seed_keras` | 0, 1 | 91.20 ± 0.28 | 2, 3 | 3, 3 | 1,413,834 | 61.0 | cpu |"
    )
    assert lines[3] == (
        "| `experiment=best` | 0, 1, 2 | 94.70 ± 0.20 | 4, 2, 4 | 4, 4, 4 | 1,414,666 | 72.0 | cpu |"
    )
    assert "python -m fmnist_lightning.train experiment=seed_keras -m seed=0,1" in text
    assert "python -m fmnist_lightning.train experiment=best -m seed=0,1,2" in text


@pytest.mark.slow
def test_the_command_line_reports_unfinished_runs_and_bad_folders(study, tmp_path):
    command = [sys.executable, "-m", "fmnist_lightning.results", str(study)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Skipped 1 unfinished run(s)" in result.stderr and "best/9" in result.stderr
    assert (tmp_path / "results.md").read_text() == result.stdout
    assert result.stdout.count("| `experiment=") == 2

    missing = subprocess.run(
        [*command[:3], str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120
    )
    assert missing.returncode == 2 and "is not a folder" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = subprocess.run(
        [*command[:3], str(empty)], capture_output=True, text=True, timeout=120
    )
    assert nothing.returncode == 2 and "no finished runs" in nothing.stderr
