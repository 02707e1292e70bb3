"""Sweeps through the real entry point: grid, failure, launchers; DDP on CPU; sweep configs.

The Optuna search is its own command (tests/test_search.py).

Subprocess tests run ``python -m fmnist_lightning.train`` on synthetic data with a tiny
network, so Hydra, its plugins and Lightning run exactly as for a user.
"""

import datetime
import itertools
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import hydra.core.utils
import pandas as pd
import pytest
import torch
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from lightning import Trainer
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from fmnist_lightning.analysis import run_files
from fmnist_lightning.config import launch
from fmnist_lightning.data.datamodule import FashionMNISTDataModule
from fmnist_lightning.models.module import FashionMNISTModule
from fmnist_lightning.training import run_folder, sweep_summary
from helpers.compose import compose, tiny_overrides


def tiny_cli(data_root: Path, logs: Path) -> list[str]:
    """A tiny network and fp32 on CPU: a job takes seconds on synthetic data. No analysis of
    the test set at the end of a run (~analysis): these tests assert none of its files."""
    return tiny_overrides(
        data_root,
        None,
        f"paths.root={logs}",
        "model.net.blocks=[[8],[16]]",
        "model.net.dense=[16]",
        "trainer.max_epochs=1",
        "~analysis",
    )


def run_entry_point(args: list[str]) -> tuple[subprocess.CompletedProcess, int]:
    """Run the training entry point; returns its result and its process id."""
    with subprocess.Popen(
        [sys.executable, "-m", "fmnist_lightning.train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"},
    ) as process:
        stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(
        process.args, process.returncode, stdout, stderr
    ), process.pid


def only_sweep_dir(logs: Path) -> Path:
    (sweep_dir,) = (logs / "sweeps").iterdir()
    return sweep_dir


def job_records(sweep_dir: Path) -> list[dict]:
    return [
        run_files.read_json(d / sweep_summary.JOB_JSON) for d in sweep_summary.job_dirs(sweep_dir)
    ]


def compose_with_hydra(overrides: list[str]) -> DictConfig:
    return compose("train", overrides, return_hydra_config=True)


# --- Sweeps through the entry point -------------------------------------------------------


@pytest.mark.slow
def test_grid_sweep_writes_a_summary_of_every_job_best_first(synthetic_root, tmp_path):
    logs = tmp_path / "logs"
    grid = ["model.net.dropout=0.1,0.3", "optimizer.lr=0.01,0.003"]
    result, _ = run_entry_point(
        ["-m", *tiny_cli(synthetic_root, logs), "trainer.max_epochs=2", *grid]
    )
    assert result.returncode == 0, result.stderr[-3000:]

    sweep_dir = only_sweep_dir(logs)
    assert [d.name for d in sweep_summary.job_dirs(sweep_dir)] == ["0", "1", "2", "3"]
    summary = pd.read_csv(sweep_dir / "summary.csv")
    expected = {
        f"model.net.dropout={d} optimizer.lr={lr}"
        for d, lr in itertools.product(("0.1", "0.3"), ("0.01", "0.003"))
    }
    assert set(summary["overrides"]) == expected
    assert (summary["status"] == "completed").all()
    assert summary["best_val_acc"].is_monotonic_decreasing
    assert (summary["epochs"] == 2).all() and (summary["wall_seconds"] > 0).all()
    for row in summary.itertuples():
        metrics = run_files.read_json(sweep_dir / str(row.job) / run_files.TEST_METRICS_JSON)
        assert row.best_val_acc == pytest.approx(metrics["best_val_acc"])
        assert row.test_acc == pytest.approx(metrics["test_acc"])

    markdown = (sweep_dir / "summary.md").read_text()
    table_rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(table_rows) == 2 + 4  # header, separator, one row per job
    assert table_rows[2].split(" | ")[2] == summary["overrides"][0]  # best job first
    assert "Common overrides:" in markdown and "model.net.dense=[16]" in markdown
    with Image.open(sweep_dir / "summary.png") as image:
        assert image.width > 800 and image.height > 300


@pytest.mark.slow
def test_a_failed_job_is_summarised_as_failed_and_the_others_still_are(synthetic_root, tmp_path):
    logs = tmp_path / "logs"
    # A dropout of 1.5 makes torch.nn.Dropout raise while the network is built.
    result, _ = run_entry_point(
        ["-m", *tiny_cli(synthetic_root, logs), "model.net.dropout=1.5,0.2"]
    )
    assert result.returncode != 0  # Hydra reports the failure...
    assert "model.net.dropout=1.5 is out of range" in result.stderr

    sweep_dir = only_sweep_dir(logs)  # ...after running every job and summarising them all
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert list(summary["status"]) == ["completed", "failed"]
    assert list(summary["overrides"]) == ["model.net.dropout=0.2", "model.net.dropout=1.5"]
    assert 0.0 <= summary["best_val_acc"][0] <= 1.0 and pd.isna(summary["best_val_acc"][1])
    assert "model.net.dropout=1.5 is out of range" in summary["error"][1]
    failed = run_files.read_json(sweep_dir / "0" / sweep_summary.JOB_JSON)
    assert failed["status"] == "failed" and "Traceback" in failed["traceback"]
    assert "failed" in (sweep_dir / "summary.md").read_text()
    assert (sweep_dir / "summary.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("launcher", "settings", "marker"),
    [
        ("joblib", ["hydra.launcher.n_jobs=2"], "Joblib.Parallel(n_jobs=2"),
        ("submitit_local", ["hydra.launcher.timeout_min=10"], ".submitit"),
    ],
)
def test_launcher_runs_a_two_job_sweep_in_other_processes(
    synthetic_root, tmp_path, launcher, settings, marker
):
    logs = tmp_path / "logs"
    args = ["-m", f"hydra/launcher={launcher}", *settings, *tiny_cli(synthetic_root, logs)]
    result, main_pid = run_entry_point([*args, "model.net.dropout=0.1,0.3"])
    assert result.returncode == 0, result.stderr[-3000:]

    sweep_dir = only_sweep_dir(logs)
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert sorted(summary["overrides"]) == ["model.net.dropout=0.1", "model.net.dropout=0.3"]
    assert (summary["status"] == "completed").all()
    assert summary["test_acc"].between(0, 1).all()
    # The launcher, not the sweeping process, ran the jobs.
    assert all(record["pid"] != main_pid for record in job_records(sweep_dir))
    assert marker in result.stdout + result.stderr or (sweep_dir / marker).is_dir()


# --- DDP ----------------------------------------------------------------------------------


def accuracy_on(checkpoint: Path, datamodule: FashionMNISTDataModule, split: str) -> float:
    classifier = FashionMNISTModule.load_from_checkpoint(checkpoint, map_location="cpu")
    images, labels = datamodule.tensors[split].tensors
    with torch.no_grad():
        predictions = classifier.eval()(images).argmax(dim=1)
    return (predictions == labels).float().mean().item()


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_writes_one_run_folder_with_metrics_of_both_ranks(
    synthetic_root, tmp_path
):
    logs = tmp_path / "logs"
    ddp = ["trainer=ddp", "trainer.devices=2", "trainer.max_epochs=2"]
    result, _ = run_entry_point([*tiny_cli(synthetic_root, logs), *ddp, "data.eval_batch_size=8"])
    assert result.returncode == 0, result.stderr[-3000:]

    (run_dir,) = (logs / "runs").iterdir()  # rank 1 ran in rank 0's folder
    assert not (logs / "sweeps").exists()
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and checkpoints[-1] == "last.ckpt"
    assert (run_dir / "plots" / "curves.png").is_file()
    assert [p.name for p in run_dir.glob("**/test_metrics.json")] == ["test_metrics.json"]
    assert len(list(run_dir.glob("**/config.yaml"))) == 2  # config.yaml and .hydra/config.yaml
    saved = OmegaConf.load(run_dir / "config.yaml")
    assert saved.trainer.strategy == "ddp" and saved.trainer.devices == 2

    # 320 training images in batches of 32: each rank takes 5 of the 10 batches per epoch.
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 2 * 5

    # Logged accuracies cover both ranks' shards: they equal the accuracy of the same
    # weights on the whole split, computed here in one process.
    datamodule = FashionMNISTDataModule(**{k: v for k, v in saved.data.items() if k != "_target_"})
    datamodule.setup()
    epochs = run_files.epoch_metrics(run_dir / run_files.METRICS_CSV)
    last_val_acc = epochs["val_acc"].iloc[-1]
    assert last_val_acc == pytest.approx(
        accuracy_on(run_dir / "checkpoints" / "last.ckpt", datamodule, "val")
    )
    test_metrics = run_files.read_json(run_dir / run_files.TEST_METRICS_JSON)
    best = run_dir / test_metrics["best_checkpoint"]
    assert test_metrics["test_acc"] == pytest.approx(accuracy_on(best, datamodule, "test"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_torchrun_nodes_train_into_one_run_folder_with_reduced_metrics(
    synthetic_root, tmp_path
):
    """Two "nodes" as a cluster starts them: a torchrun per node, c10d rendezvous, gloo."""
    logs = tmp_path / "logs"
    torchrun = [
        sys.executable, "-m", "torch.distributed.run",  # the torchrun command
        "--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{free_port()}", "--rdzv-id=job42",
    ]  # fmt: skip
    train = ["-m", "fmnist_lightning.train", *tiny_cli(synthetic_root, logs)]
    ddp = ["trainer=ddp", "trainer.num_nodes=2", "trainer.max_epochs=2", "data.eval_batch_size=8"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    nodes = [
        subprocess.Popen([*torchrun, *train, *ddp], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env)
        for _ in range(2)
    ]  # fmt: skip
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    for node, output in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, output[-3000:]
    # One world of two ranks, one per torchrun.
    for rank in ("GLOBAL_RANK: 0, MEMBER: 1/2", "GLOBAL_RANK: 1, MEMBER: 2/2"):
        assert sum(rank in output for output in outputs) == 1, rank

    # One folder, named by the launch, that both ranks computed alike.
    (run_dir,) = (logs / "runs").iterdir()
    assert run_dir.name == "torchrun-job42"
    assert sorted(p.name for p in run_dir.glob("*.log")) == ["train.log", "train_rank1.log"]
    assert [p.name for p in run_dir.glob("**/test_metrics.json")] == ["test_metrics.json"]
    assert len(list(run_dir.glob("**/config.yaml"))) == 2  # config.yaml and rank 0's .hydra/
    saved = OmegaConf.load(run_dir / "config.yaml")
    assert saved.trainer.num_nodes == 2 and saved.trainer.devices == 1

    # 320 training images in batches of 32: each rank takes 5 of the 10 batches per epoch.
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 2 * 5
    # val_acc is reduced over both ranks: the accuracy on the whole validation split.
    datamodule = FashionMNISTDataModule(**{k: v for k, v in saved.data.items() if k != "_target_"})
    datamodule.setup()
    epochs = run_files.epoch_metrics(run_dir / run_files.METRICS_CSV)
    assert epochs["val_acc"].iloc[-1] == pytest.approx(
        accuracy_on(run_dir / "checkpoints" / "last.ckpt", datamodule, "val")
    )


def test_ranks_of_a_cluster_launch_share_one_run_folder_name(monkeypatch):
    for name in ("TORCHELASTIC_RUN_ID", "WORLD_SIZE", "RANK", "SLURM_JOB_ID", "SLURM_NTASKS",
                 "SLURM_STEP_ID", "SLURM_PROCID"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    assert launch.launch_name() is None and launch.launch_rank() == 0
    assert launch.run_name("2026-01-01_00-00-00-abcdef") == "2026-01-01_00-00-00-abcdef"
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_NTASKS", "1")  # one task: an ordinary run inside a SLURM job
    assert launch.launch_name() is None
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert launch.launch_name() == "slurm-77.0" and launch.rank_suffix() == "_rank3"
    assert launch.rank_zero_only(".hydra") is None
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job42")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    hydra_cfg = compose_with_hydra([]).hydra
    assert hydra_cfg.run.dir == "lightning_logs/runs/torchrun-job42"
    assert hydra_cfg.output_subdir == ".hydra"


def test_ddp_that_lightning_would_relaunch_is_refused_inside_a_multirun():
    trainer = Trainer(
        strategy="ddp", accelerator="cpu", devices=2, logger=False, enable_checkpointing=False
    )
    single = Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False)
    try:
        HydraConfig.instance().set_config(compose_with_hydra(["hydra.mode=RUN"]))
        run_folder.refuse_ddp_in_multirun(trainer)  # a single run: Lightning relaunches safely
        HydraConfig.instance().set_config(compose_with_hydra(["hydra.mode=MULTIRUN"]))
        run_folder.refuse_ddp_in_multirun(single)
        with pytest.raises(RuntimeError, match=r"cannot run inside a Hydra multirun.*SLURM"):
            run_folder.refuse_ddp_in_multirun(trainer)
    finally:
        HydraConfig.instance().cfg = None


def test_ddp_config_shards_batches_itself():
    trainer = compose_with_hydra(["trainer=ddp", "trainer.num_nodes=2"]).trainer
    assert trainer.strategy == "ddp" and trainer.num_nodes == 2
    assert trainer.use_distributed_sampler is False  # the datamodule's sampler shards by rank


# --- Sweep configs ------------------------------------------------------------------------


def flat(cfg: DictConfig) -> dict[str, object]:
    """Every leaf of a config (interpolations unresolved) by its dotted key."""
    return pd.json_normalize(OmegaConf.to_container(cfg, resolve=False), sep=".").iloc[0].to_dict()


def test_a_sweep_composes_configs_that_differ_only_in_the_swept_keys():
    sweep = ["model.net.dropout=0.3,0.5", "optimizer.lr=1e-3,3e-4", "data.batch_size=64"]
    parsed = OverridesParser.create().parse_overrides(sweep)
    (jobs,) = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    configs = [flat(compose("train", list(job))) for job in jobs]

    assert len(configs) == 4
    assert all(config.keys() == configs[0].keys() for config in configs)
    differing = {key for key in configs[0] if len({repr(config[key]) for config in configs}) > 1}
    assert differing == {"model.net.dropout", "optimizer.lr"}
    assert {(c["model.net.dropout"], c["optimizer.lr"]) for c in configs} == set(
        itertools.product((0.3, 0.5), (1e-3, 3e-4))
    )
    assert {c["data.batch_size"] for c in configs} == {64}


class StoppedClock(datetime.datetime):
    @classmethod
    def now(cls, tz=None) -> datetime.datetime:
        return cls(2026, 1, 2, 3, 4, 5)


def test_two_sweeps_started_in_the_same_second_get_different_folders(monkeypatch):
    # The clock of Hydra's ${now:} stands still: on a busy machine two composes can take
    # longer than a second, and the test is about two sweeps in the same second.
    monkeypatch.setattr(hydra.core.utils, "datetime", StoppedClock)
    first, second = (compose_with_hydra(["hydra.mode=MULTIRUN"]).hydra.sweep.dir for _ in range(2))
    assert first != second
    for folder in (first, second):
        assert re.fullmatch(r"lightning_logs/sweeps/2026-01-02_03-04-05-[0-9a-f]{6}", folder)


def test_the_slurm_preset_is_hydras_submitit_launcher_with_editable_settings():
    launcher = compose_with_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    launcher = launcher.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.timeout_min == 60
    assert launcher.gpus_per_node == 1 and launcher.tasks_per_node == 1


# --- Reading sweep folders ----------------------------------------------------------------


def test_the_summary_reads_job_folders_and_marks_a_killed_job_unfinished(tmp_path):
    sweep_dir = tmp_path / "sweep"
    for job, dropout in ((0, 0.1), (1, 0.3), (2, 0.5)):
        hydra_dir = sweep_dir / str(job) / ".hydra"
        hydra_dir.mkdir(parents=True)
        OmegaConf.save(
            OmegaConf.create(["trainer.max_epochs=2", f"model.net.dropout={dropout}"]),
            hydra_dir / "overrides.yaml",
        )
    for job, val_acc in ((0, 0.5), (2, 0.75)):  # job 1 was killed mid-fit: no results
        job_dir = sweep_dir / str(job)
        run_files.write_json(
            job_dir / run_files.TEST_METRICS_JSON,
            {"best_val_acc": val_acc, "test_acc": val_acc - 0.01, "epochs": 2},
        )
        (job_dir / run_files.METRICS_CSV).write_text(
            f"epoch,step,val_acc\n0,4,0.25\n1,9,{val_acc}\n"
        )

    summary = sweep_summary.write_sweep_summary(sweep_dir)

    assert list(summary["job"]) == [2, 0, 1]
    assert list(summary["status"]) == ["completed", "completed", "unfinished"]
    assert list(summary["overrides"]) == [
        "model.net.dropout=0.5",
        "model.net.dropout=0.1",
        "model.net.dropout=0.3",
    ]
    assert summary.attrs["common_overrides"] == ["trainer.max_epochs=2"]
    assert list(summary["epochs"][:2]) == [2, 2] and pd.isna(summary["epochs"][2])
    assert len(sweep_summary.validation_curves(sweep_dir, summary)) == 2
    assert pd.read_csv(sweep_dir / "summary.csv")["job"].tolist() == [2, 0, 1]
    assert "| 1 | unfinished | model.net.dropout=0.3 |" in (sweep_dir / "summary.md").read_text()
    assert (sweep_dir / "summary.png").stat().st_size > 10_000
