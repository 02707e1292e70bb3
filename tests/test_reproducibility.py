"""seed + trainer.deterministic=true: two runs write identical metrics.csv (augmentation included)."""

import json
import statistics

import pandas as pd
import pytest
import torch

from fmnist_lightning.results import find_runs, summarise
from fmnist_lightning.train import train
from helpers.compose import tiny

# BatchNorm, dropout and every augmentation draw random numbers: all must follow the seed.
RECIPE = [
    "model=cnn_bn",
    "model.net.blocks=[[8],[16]]",
    "model.net.dense=[16]",
    "model.net.first_kernel_size=3",
    "data/augment=standard",
    "trainer.deterministic=true",
    "trainer.limit_train_batches=5",
]


@pytest.fixture(scope="module")
def three_runs(synthetic_root, tmp_path_factory):
    """Seeds 0, 0 and 1 of the same recipe, each in its own folder."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    folders = []
    try:
        for seed in (0, 0, 1):
            run_dir = tmp_path_factory.mktemp(f"seed{seed}")
            train(tiny(synthetic_root, run_dir, *RECIPE, f"seed={seed}"))
            folders.append(run_dir)
    finally:  # Lightning switches deterministic algorithms on for the whole process
        torch.use_deterministic_algorithms(was_deterministic)
    return folders


def without_wall_clock(metrics_csv) -> str:
    """metrics.csv as text without elapsed_seconds, the one column a clock decides."""
    return pd.read_csv(metrics_csv).drop(columns=["elapsed_seconds"]).to_csv(index=False)


def test_same_seed_gives_identical_metrics(three_runs):
    first, second, _ = three_runs
    metrics = without_wall_clock(first / "metrics.csv")
    assert metrics == without_wall_clock(second / "metrics.csv")
    assert "train_loss_step" in metrics and metrics.count("\n") > 10


def test_another_seed_gives_other_metrics(three_runs):
    first, _, other_seed = three_runs
    assert without_wall_clock(first / "metrics.csv") != without_wall_clock(
        other_seed / "metrics.csv"
    )


def test_results_table_reads_real_runs(three_runs):
    found, unfinished, problems = find_runs(three_runs)
    assert unfinished == [] and problems == []
    assert [run.seed for run in found] == [0, 0, 1]
    (row,) = summarise(found).to_dict("records")
    assert row["configuration"] == "`VGGStyleCNN + BN + crop/flip/erase`"
    assert row["seeds"] == "0, 0, 1"
    assert row["epochs run"] == "2, 2, 2"
    best_epochs, accuracies = [], []
    for folder in three_runs:
        metrics = pd.read_csv(folder / "metrics.csv").dropna(subset=["val_acc"])
        best_epochs.append(int(metrics.loc[metrics["val_acc"].idxmax(), "epoch"]) + 1)
        accuracies.append(json.loads((folder / "test_metrics.json").read_text())["test_acc"])
    assert row["best epoch"] == ", ".join(str(e) for e in best_epochs)
    mean, std = 100 * statistics.mean(accuracies), 100 * statistics.stdev(accuracies)
    assert row["test acc (%)"] == f"{mean:.2f} ± {std:.2f}"
    times = [
        json.loads((folder / "test_metrics.json").read_text())["time_to_val_acc"]["0.93"]
        for folder in three_runs
    ]
    missed = sum(t is None for t in times)
    expected = f"— ({missed} of 3 not reached)" if missed else f"{statistics.mean(times):.0f}"
    assert row["time to 93% (s)"] == expected
