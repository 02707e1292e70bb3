"""Interrupt and resume, run folders that never collide, checkpoints that are never half-written."""

import datetime
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import hydra.core.utils
import pandas as pd
import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from fmnist_lightning.config import resume
from fmnist_lightning.config.messages import preflight_problem
from fmnist_lightning.config.resume import RunFolderError, resume_point
from fmnist_lightning.config.schema import ConfigValidationError
from fmnist_lightning.inference.output_files import OutputFileError
from fmnist_lightning.models.checkpoint_file import CheckpointError, read_checkpoint
from fmnist_lightning.train import train
from fmnist_lightning.training.builders import build_trainer
from fmnist_lightning.training.faults import TrainingInterrupted, resume_command
from fmnist_lightning.training.resume import rewind_run_folder
from fmnist_lightning.training.run_folder import claim_run_dir
from helpers.compose import compose, finalise, tiny, tiny_overrides
from helpers.faults import disk_full_in

TESTS_DIR = Path(__file__).parent
# 320 training images in batches of 32: 10 steps per epoch.
STEPS_PER_EPOCH = 10
# A narrow version of the network (dropout included), so that fits take seconds on a CPU.
SMALL_MODEL = ["model.net.blocks=[[8],[16,16]]", "model.net.dense=[32,16]"]


def exact_overrides(data_root: Path, run_dir: Path) -> list[str]:
    """Two epochs in fp32 with deterministic algorithms: what "bit-for-bit" can be asked of."""
    return tiny_overrides(
        data_root,
        run_dir,
        *SMALL_MODEL,
        "trainer.deterministic=true",
        "trainer.num_sanity_val_steps=0",
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def one_epoch_run(synthetic_root, tmp_path_factory):
    """A finished one-epoch run: config.yaml, metrics.csv, last.ckpt and a best checkpoint."""
    run_dir = tmp_path_factory.mktemp("finished")
    cfg = tiny(synthetic_root, run_dir, *SMALL_MODEL)
    cfg.trainer.max_epochs = 1
    train(cfg)
    return run_dir, cfg


# --- 1. Interrupt and resume -------------------------------------------------------------


def start_training(command_args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(TESTS_DIR)}
    command = [sys.executable, "-m", "fmnist_lightning.train", *command_args]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def wait_for_step(process: subprocess.Popen, step: int, timeout: float = 180) -> None:
    """Read the run's stdout until SlowSteps reports ``step``."""
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        if f"[slow-steps] global_step={step}" in line:
            return
        assert time.monotonic() < deadline, "training did not reach the step in time"
    raise AssertionError(f"training ended before step {step}: {process.stderr.read()[-3000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_epoch_saves_a_checkpoint_and_resume_finishes_the_same_run(
    signum, synthetic_root, tmp_path
):
    logs = tmp_path / "logs"
    common = tiny_overrides(synthetic_root, None, "trainer.num_sanity_val_steps=0", *SMALL_MODEL)
    process = start_training(
        [
            f"paths.root={logs}",
            *common,
            "+callbacks.slow._target_=helpers.faults.SlowSteps",
            "+callbacks.slow.seconds=0.3",
        ]
    )
    try:
        wait_for_step(process, 3)  # mid-epoch: an epoch has 10 steps
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    (run_dir,) = (logs / "runs").iterdir()

    assert process.returncode == 128 + signum, stderr[-3000:]
    assert f"Training interrupted by {signal.Signals(signum).name}" in stderr
    assert f"python -m fmnist_lightning.train resume={run_dir.resolve()}" in stderr
    assert "Traceback" not in stderr
    last = run_dir / "checkpoints" / "last.ckpt"
    interrupted_at = read_checkpoint(last)["global_step"]
    assert 3 <= interrupted_at < STEPS_PER_EPOCH  # saved where it stopped, mid-epoch
    rows_before = pd.read_csv(run_dir / "metrics.csv")
    assert rows_before["train_loss_step"].dropna().size == interrupted_at

    if signum == signal.SIGTERM:
        return  # the resume path is the same for both signals; run it once
    process = start_training([f"resume={run_dir}", "trainer.enable_model_summary=true"])
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    assert [p.name for p in (logs / "runs").iterdir()] == [run_dir.name]  # no second folder
    assert f"Run folder: {run_dir.resolve()}" in stdout
    assert read_checkpoint(last)["global_step"] == 2 * STEPS_PER_EPOCH
    assert not (run_dir / "checkpoints" / "last-v1.ckpt").exists()
    metrics = pd.read_csv(run_dir / "metrics.csv")
    # Appended: the rows written before the interruption are still first, then every
    # later step exactly once, and both epochs validated.
    pd.testing.assert_frame_equal(
        metrics[rows_before.columns].head(len(rows_before)), rows_before, check_dtype=False
    )
    steps = metrics.dropna(subset=["train_loss_step"])["step"].tolist()
    assert steps == list(range(2 * STEPS_PER_EPOCH))
    assert metrics["val_acc"].dropna().size == 2 and metrics["test_acc"].dropna().size == 1
    # An override of a key that may change applies on top.
    assert "enable_model_summary: true" in (run_dir / "config.yaml").read_text()
    # The original Hydra files stay; the resume's own go beside them.
    assert "paths.root" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    (resumed,) = (run_dir / ".hydra").glob("resumed-*/overrides.yaml")
    assert f"resume={run_dir}" in resumed.read_text()


def test_resumed_from_an_epoch_end_equals_an_uninterrupted_run(synthetic_root, tmp_path):
    def run(run_dir: Path, extra: list[str]) -> dict:
        return train(compose("train", exact_overrides(synthetic_root, run_dir) + extra))

    straight = run(tmp_path / "straight", [])
    stop = ["+callbacks.stop._target_=helpers.faults.SignalAtEpochEnd", "+callbacks.stop.epoch=0"]
    with pytest.raises(TrainingInterrupted, match="SIGTERM") as interrupted:
        run(tmp_path / "resumed", stop)
    assert interrupted.value.exit_status == 143
    resumed = run(tmp_path / "resumed", stop + [f"resume={tmp_path / 'resumed'}"])

    weights = {
        name: read_checkpoint(tmp_path / name / "checkpoints" / "last.ckpt")["state_dict"]
        for name in ("straight", "resumed")
    }
    assert weights["straight"].keys() == weights["resumed"].keys()
    for key, value in weights["straight"].items():
        torch.testing.assert_close(weights["resumed"][key], value, rtol=0, atol=1e-6, msg=key)
    assert resumed["test_acc"] == straight["test_acc"]
    assert resumed["test_loss"] == pytest.approx(straight["test_loss"], abs=1e-6)
    csv = {name: pd.read_csv(tmp_path / name / "metrics.csv") for name in ("straight", "resumed")}
    # Wall-clock seconds differ between any two runs; everything else must not.
    columns = [c for c in csv["straight"].columns if c not in ("lr-AdamW", "elapsed_seconds")]
    pd.testing.assert_frame_equal(csv["resumed"][columns], csv["straight"][columns], atol=1e-6)


def test_a_fine_tuned_run_resumes_after_its_init_from_file_is_gone(synthetic_root, tmp_path):
    """model.init_from is read once, when a fresh run builds its module: never on resume."""
    source = tmp_path / "source"
    train(tiny(synthetic_root, source, *SMALL_MODEL, "trainer.max_epochs=1"))
    init_from = tmp_path / "pretrained.ckpt"
    (source / "checkpoints" / "last.ckpt").rename(init_from)
    run_dir = tmp_path / "finetuned"
    stop = ["+callbacks.stop._target_=helpers.faults.SignalAtEpochEnd", "+callbacks.stop.epoch=0"]
    with pytest.raises(TrainingInterrupted):
        train(tiny(synthetic_root, run_dir, *SMALL_MODEL, f"model.init_from={init_from}", *stop))
    init_from.unlink()  # the starting point is gone: the run's own checkpoint has the weights

    summary = train(tiny(synthetic_root, run_dir, f"resume={run_dir}"))
    assert summary["epochs"] == 2
    assert (
        read_checkpoint(run_dir / "checkpoints" / "last.ckpt")["global_step"] == 2 * STEPS_PER_EPOCH
    )
    assert OmegaConf.load(run_dir / "config.yaml").model.init_from == str(init_from)


def test_resume_of_a_folder_without_a_run_names_it_and_says_what_to_pass(one_epoch_run, tmp_path):
    (tmp_path / "empty").mkdir()
    best = next((one_epoch_run[0] / "checkpoints").glob("best-*.ckpt"))
    (tmp_path / "loose.ckpt").write_bytes(best.read_bytes())
    for target, expected in (
        (tmp_path / "empty", "holds no run to continue"),
        (tmp_path / "missing", "no such folder or file"),
        (tmp_path / "loose.ckpt", "not inside a run folder"),
    ):
        with pytest.raises(RunFolderError, match=expected) as error:
            train(compose("train", [f"resume={target}"]))
        assert str(target) in str(error.value)


def test_a_checkpoint_inside_a_run_folder_resumes_that_run(one_epoch_run, tmp_path):
    run_dir, _ = one_epoch_run
    last = run_dir / "checkpoints" / "last.ckpt"
    assert resume_point(None, str(last)) == (run_dir, last)
    assert resume_point(str(run_dir), None) == (run_dir, last)
    (tmp_path / "loose.ckpt").write_bytes(last.read_bytes())
    assert resume_point(None, str(tmp_path / "loose.ckpt")) is None  # a new run from it


def resumed_with(run_dir: Path, cfg, typed: list[str], monkeypatch):
    """``config_to_run`` as the command line ``resume=RUN_DIR *typed`` would call it."""
    cfg = cfg.copy()
    cfg.resume = str(run_dir)
    monkeypatch.setattr(resume, "_command_line_overrides", lambda: [*typed, f"resume={run_dir}"])
    return resume.config_to_run(cfg)


def test_resuming_applies_value_overrides_and_refuses_group_changes(one_epoch_run, monkeypatch):
    run_dir, cfg = one_epoch_run
    resumed = resumed_with(run_dir, cfg, ["trainer.log_every_n_steps=5"], monkeypatch)
    assert resumed.trainer.log_every_n_steps == 5 and resumed.data.batch_size == 32
    assert resumed.ckpt_path == str(run_dir / "checkpoints" / "last.ckpt")
    with pytest.raises(RunFolderError, match="'optimizer=adam' changes a whole config group"):
        resumed_with(run_dir, cfg, ["optimizer=adam"], monkeypatch)


@pytest.mark.parametrize(
    "typed",
    [
        ["data.split_seed=7", "data.val_fraction=0.5"],
        ["seed=1"],
        ["model.net.dropout=0.3"],
        ["++model.net.in_channels=3", "~callbacks.early_stopping"],
        ["optimizer.lr=0.1"],
    ],
)
def test_resume_refuses_to_change_the_experiment(one_epoch_run, typed, monkeypatch):
    run_dir, cfg = one_epoch_run
    with pytest.raises(RunFolderError) as refused:
        resumed_with(run_dir, cfg, typed, monkeypatch)
    message = str(refused.value)
    for override in typed:
        assert f"'{override}'" in message
    assert "A resumed run may change only trainer.max_epochs" in message
    assert "\n" not in message


def test_resume_accepts_the_values_the_run_already_has(one_epoch_run, monkeypatch):
    run_dir, cfg = one_epoch_run
    same = ["data.val_fraction=0.2", "seed=42", "model.net.dense=[32,16]"]
    resumed = resumed_with(run_dir, cfg, same, monkeypatch)
    assert resumed.data.val_fraction == 0.2 and resumed.seed == 42


def test_resume_honours_dropping_the_analysis(one_epoch_run, monkeypatch):
    run_dir, cfg = one_epoch_run
    resumed = resumed_with(run_dir, cfg, ["~analysis"], monkeypatch)
    assert "analysis" not in resumed
    assert resumed.callbacks.test_analysis.settings is None
    kept = resumed_with(run_dir, cfg, ["analysis.mistakes=3"], monkeypatch)
    assert kept.callbacks.test_analysis.settings.mistakes == 3


def test_a_longer_run_under_one_cycle_is_refused_before_training(
    one_epoch_run, tmp_path, monkeypatch
):
    run_dir, cfg = one_epoch_run
    with pytest.raises(RunFolderError, match="trainer.max_epochs=3.*one-cycle.*1 epoch"):
        resumed_with(run_dir, cfg, ["trainer.max_epochs=3"], monkeypatch)
    # A constant rate has no length: the same run can go on for longer.
    constant = tmp_path / "constant"
    (constant / "checkpoints").mkdir(parents=True)
    saved = OmegaConf.load(run_dir / "config.yaml")
    saved.scheduler = {"interval": "epoch", "schedule": None}
    OmegaConf.save(saved, constant / "config.yaml")
    (constant / "checkpoints" / "last.ckpt").write_bytes(b"")
    resumed = resumed_with(constant, cfg, ["trainer.max_epochs=3"], monkeypatch)
    assert resumed.trainer.max_epochs == 3


def test_a_resumed_run_tidies_what_a_crashed_run_left(synthetic_root, tmp_path):
    """Rows of metrics.csv after the checkpoint are logged again, so they are dropped first;
    a temporary file of a save that was killed is removed; a finished run resumed again
    gets one test row, not two."""
    crash = ["+callbacks.crash._target_=helpers.faults.CrashAtStep", "+callbacks.crash.step=15"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tiny(synthetic_root, tmp_path, *SMALL_MODEL, "~analysis", *crash))
    logged = pd.read_csv(tmp_path / "metrics.csv")
    assert logged["step"].max() == 14  # beyond last.ckpt (step 10): logged again on resume
    stale = tmp_path / "checkpoints" / ".last.ckpt.999999.tmp"
    stale.write_bytes(b"half a checkpoint")

    saved = OmegaConf.load(tmp_path / "config.yaml")
    del saved.callbacks["crash"]
    OmegaConf.save(saved, tmp_path / "config.yaml")
    for _ in range(2):  # the second time the run is finished: it is only tested again
        train(tiny(synthetic_root, tmp_path, f"resume={tmp_path}"))
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    steps = metrics.dropna(subset=["train_loss_step"])["step"].tolist()
    assert steps == list(range(2 * STEPS_PER_EPOCH))
    assert metrics["val_acc"].dropna().size == 2 and metrics["test_acc"].dropna().size == 1
    assert not stale.exists()


def test_rows_are_dropped_from_metrics_csv_whole_or_not_at_all(tmp_path):
    metrics_csv = tmp_path / "metrics.csv"
    before = b"epoch,step,train_loss\r\n0,9,1.0\r\n1,19,0.5\r\n"  # as Lightning writes it
    metrics_csv.write_bytes(before)
    with disk_full_in(tmp_path, 10), pytest.raises(OutputFileError, match="No space left"):
        rewind_run_folder(tmp_path, {"global_step": 10})
    assert metrics_csv.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [metrics_csv.name]  # no temporary
    assert rewind_run_folder(tmp_path, {"global_step": 10}) == 1
    assert metrics_csv.read_bytes() == b"epoch,step,train_loss\r\n0,9,1.0\r\n"


def test_the_printed_resume_command_survives_the_shell_and_hydra():
    run_dir = Path("/tmp/runs/a b,c's [1]=x")
    command = resume_command(run_dir)
    *_, argument = shlex.split(command)
    (override,) = OverridesParser.create().parse_overrides([argument])
    assert (override.key_or_group, override.value()) == ("resume", str(run_dir))
    assert resume_command(Path("/tmp/plain/run")).endswith(" resume=/tmp/plain/run")


def files_of(run_dir: Path) -> dict[Path, str]:
    return {p.relative_to(run_dir): sha256(p) for p in run_dir.rglob("*") if p.is_file()}


def interrupted_run(data_root: Path, run_dir: Path) -> None:
    """A run of two epochs stopped by SIGTERM after the first."""
    stop = ["+callbacks.stop._target_=helpers.faults.SignalAtEpochEnd", "+callbacks.stop.epoch=0"]
    with pytest.raises(TrainingInterrupted):
        train(tiny(data_root, run_dir, *SMALL_MODEL, "~analysis", *stop))


def test_a_copied_run_resumes_in_the_copy_and_leaves_the_original_alone(synthetic_root, tmp_path):
    original, copy = tmp_path / "a run", tmp_path / "a copy" / "of it"
    interrupted_run(synthetic_root, original)
    shutil.copytree(original, copy)
    before = files_of(original)

    summary = train(tiny(synthetic_root, copy, f"resume={copy}"))

    assert files_of(original) == before
    assert summary["epochs"] == 2 and (copy / "test_metrics.json").is_file()
    last = read_checkpoint(copy / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 2 * STEPS_PER_EPOCH
    assert str(original) not in str(last["callbacks"])  # its best and last files: the copy's
    assert pd.read_csv(copy / "metrics.csv")["val_acc"].dropna().size == 2


def test_a_moved_run_resumes_in_its_new_place_only(synthetic_root, tmp_path):
    old, new = tmp_path / "old place", tmp_path / "new place"
    interrupted_run(synthetic_root, old)
    old.rename(new)

    train(tiny(synthetic_root, new, f"resume={new}"))

    assert not old.exists()
    assert read_checkpoint(new / "checkpoints" / "last.ckpt")["global_step"] == 2 * STEPS_PER_EPOCH


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_a_finished_run_whose_best_checkpoint_is_damaged_is_refused_unchanged(
    one_epoch_run, damage, tmp_path
):
    run_dir = tmp_path / "run"
    shutil.copytree(one_epoch_run[0], run_dir)
    (best,) = (run_dir / "checkpoints").glob("best-*.ckpt")
    if damage == "truncated":
        best.write_bytes(best.read_bytes()[:1000])
    else:
        best.unlink()
    before = files_of(run_dir)

    with pytest.raises(CheckpointError, match="best checkpoint") as error:
        train(compose("train", [f"resume={run_dir}"]))

    what = "cannot be read" if damage == "truncated" else "is missing"
    assert f"{best.name}' {what}" in str(error.value) and "nothing was changed" in str(error.value)
    assert files_of(run_dir) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "refusal"),
    [([], "is in use by another training process"), (["hparams_search=optuna"], "search space")],
)
def test_a_resume_refused_after_hydra_started_leaves_no_hydra_files(
    one_epoch_run, extra, refusal, tmp_path
):
    run_dir = tmp_path / "run"
    shutil.copytree(one_epoch_run[0], run_dir)
    # Another process trains there: refused when claiming the folder, after Hydra wrote
    # .hydra/resumed-<time>/ (hparams_search= is refused earlier, by main()).
    with claim_run_dir(run_dir, resuming=True):
        process = start_training([f"resume={run_dir}", *extra])
        _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stderr[-3000:]  # refused (exit 1 before 0.2.0)
    assert refusal in stderr and "Traceback" not in stderr
    assert not (run_dir / ".hydra").exists()


def test_a_resume_of_a_folder_that_cannot_be_written_says_to_fix_or_copy_it(
    one_epoch_run, monkeypatch
):
    run_dir, _ = one_epoch_run

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkdtemp", read_only)
    problem = preflight_problem("train", [f"resume={run_dir}"])  # what the command line says
    with pytest.raises(ConfigValidationError) as refused:  # and train(cfg)
        train(compose("train", [f"resume={run_dir}"]))
    for message in (problem, str(refused.value)):
        assert f"the run folder '{run_dir}' cannot be written" in message
        assert "resume the copy" in message and "paths." not in message


@pytest.mark.slow
def test_a_refused_resume_leaves_the_run_folder_as_it_was(one_epoch_run):
    run_dir, _ = one_epoch_run

    def contents() -> list[Path]:  # Hydra's log of the attempt is appended to: not counted
        return sorted(p.relative_to(run_dir) for p in run_dir.rglob("*") if p.suffix != ".log")

    before = contents()
    process = start_training([f"resume={run_dir}", "data.split_seed=7"])
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stderr[-3000:]  # refused (exit 1 in 0.1.0)
    assert "Traceback" not in stderr and "'data.split_seed=7'" in stderr
    assert contents() == before  # no .hydra/resumed-<time>/ either


# --- 3. Runs never overwrite each other -------------------------------------------------


def test_two_runs_started_in_the_same_second_get_two_folders(monkeypatch):
    class FrozenClock(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 1, 0, 0, 0)

    monkeypatch.setattr(hydra.core.utils, "datetime", FrozenClock)  # Hydra's ${now:}
    folders = []
    for _ in range(2):
        folders.append(compose("train", return_hydra_config=True).hydra.run.dir)
    assert all("runs/2026-01-01_00-00-00-" in folder for folder in folders), folders
    assert folders[0] != folders[1]


def test_a_new_run_refuses_a_folder_that_holds_a_run(one_epoch_run):
    run_dir, cfg = one_epoch_run
    before = {p: sha256(p) for p in run_dir.rglob("*") if p.is_file()}
    with pytest.raises(RunFolderError, match="already holds a run") as error:
        train(cfg)
    assert f"resume={run_dir}" in str(error.value)
    assert {p: sha256(p) for p in run_dir.rglob("*") if p.is_file()} == before


def test_a_run_folder_in_use_by_another_process_is_refused(tmp_path):
    with (
        claim_run_dir(tmp_path, resuming=False),
        pytest.raises(RunFolderError, match="in use"),
        claim_run_dir(tmp_path, resuming=False),
    ):
        pass
    with claim_run_dir(tmp_path, resuming=False):  # released when the first run ends
        pass


# --- 2. Checkpoints are never half-written ----------------------------------------------


def test_a_failure_in_the_middle_of_a_save_keeps_last_and_best_intact(one_epoch_run):
    run_dir, cfg = one_epoch_run
    folder = run_dir / "checkpoints"
    (best,) = folder.glob("best-*.ckpt")
    last = folder / "last.ckpt"
    before = {path: sha256(path) for path in (last, best)}
    checkpoint_io = build_trainer(finalise(cfg)).strategy.checkpoint_io
    checkpoint = read_checkpoint(last)
    half_a_checkpoint = last.stat().st_size // 2

    for target in (last, best):
        with disk_full_in(folder, half_a_checkpoint), pytest.raises((OSError, RuntimeError)):
            checkpoint_io.save_checkpoint(checkpoint, target)

    assert {path: sha256(path) for path in (last, best)} == before
    for path in (last, best):
        assert read_checkpoint(path)["global_step"] == STEPS_PER_EPOCH
    assert sorted(p.name for p in folder.iterdir()) == sorted([last.name, best.name])
    checkpoint_io.save_checkpoint(checkpoint, last)  # and a save with room works
    assert read_checkpoint(last)["global_step"] == STEPS_PER_EPOCH
