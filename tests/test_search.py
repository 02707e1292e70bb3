"""The Optuna search command: space, pruning, run folders, summary, a continued and a shared study.

In-process tests call ``tuning.runner.run_search`` with the training function of the train
command on synthetic data; the subprocess tests (``slow``) run ``python -m fmnist_lightning.search``.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from PIL import Image

from fmnist_lightning import cli, search
from fmnist_lightning.analysis import finished_runs, run_files
from fmnist_lightning.errors import UsageError
from fmnist_lightning.train import train
from fmnist_lightning.tuning import runner, summary
from fmnist_lightning.tuning.runner import TRIAL_JSON
from helpers.commands import run_command, run_train
from helpers.compose import compose, tiny_overrides

TESTS_DIR = Path(__file__).parent


def tiny_search(data_root: Path, logs: Path, *extra: str) -> list[str]:
    """A search of tiny trials (seconds each) in ``logs``, its SQLite study there too."""
    return [
        *tiny_overrides(data_root, None, f"paths.root={logs}"),
        "model.net.blocks=[[8],[16]]",
        "model.net.dense=[16]",
        "~analysis",
        "hparams_search.heartbeat_interval=1",
        "hparams_search.grace_period=2",
        *extra,
    ]


def study_of(logs: Path, name: str = "fmnist") -> optuna.Study:
    storage = f"sqlite:///{logs}/searches/{name}/study.db"
    return optuna.load_study(study_name=name, storage=storage)


def racing_storage(monkeypatch, losses: int) -> list[str]:
    """RDBStorage, as the loser of ``losses`` races to create a new database (the tables
    another process is creating at the same moment); returns the URLs it was called with."""
    from sqlalchemy.exc import IntegrityError

    real, calls = optuna.storages.RDBStorage, []

    def racing(url, **options):
        calls.append(url)
        if len(calls) <= losses:  # what the second of two processes gets from SQLite
            raise IntegrityError("INSERT INTO alembic_version", {}, Exception("UNIQUE failed"))
        return real(url, **options)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    monkeypatch.setattr(runner, "STORAGE_RETRY_SECONDS", 0.0)
    return calls


def test_a_database_another_process_is_creating_is_opened_on_a_retry(tmp_path, monkeypatch):
    from optuna.storages import RDBStorage

    calls = racing_storage(monkeypatch, losses=2)
    settings, _, _ = runner.search_settings([f"paths.root={tmp_path}"])
    assert isinstance(runner.storage_of(settings), RDBStorage)
    assert len(calls) == 3 and (tmp_path / "searches" / "fmnist" / "study.db").is_file()


def test_a_database_that_never_opens_is_a_one_line_setting_error(tmp_path, monkeypatch):
    calls = racing_storage(monkeypatch, losses=runner.STORAGE_ATTEMPTS)
    settings, _, _ = runner.search_settings([f"paths.root={tmp_path}"])
    with pytest.raises(UsageError, match="hparams_search.storage=.*UNIQUE failed"):
        runner.storage_of(settings)
    assert len(calls) == runner.STORAGE_ATTEMPTS


# --- The space and the overrides ----------------------------------------------------------


def test_the_default_space_is_optunas_distributions_of_config_keys():
    settings, space, _ = runner.search_settings([])
    assert space == {
        "optimizer.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "model.net.dropout": FloatDistribution(0.0, 0.6),
        "data.batch_size": CategoricalDistribution([64, 128, 256]),
    }
    assert settings.storage == "sqlite:///lightning_logs/searches/fmnist/study.db"
    assert (settings.metric, settings.direction, settings.monitor) == (
        "best_val_acc",
        "maximize",
        "val_acc",
    )


def test_a_trials_values_become_overrides_that_compose_to_those_values():
    values = {
        "optimizer.lr": 0.00012345678901234,
        "model.net.dropout": 0.25,
        "data.batch_size": 128,
        "optimizer": "adam",
        "data.on_device": False,
    }
    space = {
        "optimizer.lr": FloatDistribution(1e-5, 1e-2, log=True),
        "model.net.dropout": FloatDistribution(0.0, 0.5),
        "data.batch_size": IntDistribution(32, 256, step=32),
        "optimizer": CategoricalDistribution(["adam", "sgd"]),
        "data.on_device": CategoricalDistribution([True, False]),
    }
    trial = optuna.trial.FixedTrial(values)  # suggests exactly these values
    overrides = [runner.suggested_override(trial, k, d) for k, d in space.items()]
    assert trial.params == values
    cfg = compose("train", overrides)
    assert cfg.optimizer._target_ == "torch.optim.Adam"
    assert cfg.optimizer.lr == values["optimizer.lr"]  # in full, not rounded
    assert cfg.model.net.dropout == 0.25 and cfg.data.batch_size == 128
    assert cfg.data.on_device is False


def test_search_settings_and_trial_overrides_are_told_apart():
    overrides = ["hparams_search.n_trials=3", "trainer.max_epochs=2", "hparams_search=optuna"]
    settings, _, fixed = runner.search_settings(overrides)
    assert settings.n_trials == 3 and fixed == ["trainer.max_epochs=2"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optimizer.lr=0.1"], "optimizer.lr is searched .* and also set on the command line"),
        (["paths.run_dir=/tmp/x"], "paths.run_dir cannot be set for a search"),
        (["hparams_search.direction=up"], "direction='up': use maximize/minimize"),
        (["hparams_search.n_trials=-1"], "n_trials=-1: give a whole number"),
        (
            ["+hparams_search.params.x._target_=optuna.distributions.FloatDistribution",
             "+hparams_search.params.x.low=1", "+hparams_search.params.x.high=0"],
            r"hparams_search.params.x: .*low",
        ),
        (
            ["+hparams_search.params.x._target_=builtins.dict"],
            "builds dict: use an optuna.distributions class",
        ),
        (["trainer=ddp"], "ddp.* in a search: run one search per device"),
        (["hparams_search.storage=nosuchdb://x"], "hparams_search.storage='nosuchdb://x'"),
    ],
)  # fmt: skip
def test_a_search_setting_that_cannot_work_stops_with_one_line(
    synthetic_root, tmp_path, overrides, message
):
    args = tiny_search(synthetic_root, tmp_path, "hparams_search.n_trials=1", *overrides)
    with pytest.raises(UsageError, match=message) as error:
        runner.run_search(args, train)
    assert "\n" not in str(error.value)


def test_an_override_hydra_cannot_parse_stops_the_command_with_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.run(lambda: search.main(["trainer.max_epochs=[1"]))
    assert stop.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        "Error: Invalid override: 'trainer.max_epochs=[1': no viable alternative at input "
        "'[1'; see https://hydra.cc/docs/"
    )


# --- A search in this process ---------------------------------------------------------------


@pytest.fixture(scope="module")
def pruned_search(synthetic_root, tmp_path_factory):
    """Three trials of up to 3 epochs and a pruner that stops any trial below 99% accuracy
    from its second epoch on: each one is pruned there (median pruning needs many trials
    to show the same)."""
    logs = tmp_path_factory.mktemp("search")
    args = tiny_search(
        synthetic_root,
        logs,
        "trainer.max_epochs=3",
        "callbacks.early_stopping=null",
        "hparams_search.n_trials=3",
        "hparams_search.sampler.seed=3",
        "hparams_search.pruner._target_=optuna.pruners.ThresholdPruner",
        "~hparams_search.pruner.n_startup_trials",
        "hparams_search.pruner.n_warmup_steps=1",
        "+hparams_search.pruner.lower=0.99",
    )
    started = time.perf_counter()
    study = runner.run_search(args, train)
    return study, logs / "searches" / "fmnist", args, time.perf_counter() - started


def test_trials_below_the_threshold_are_pruned_after_the_warm_up_epoch(pruned_search):
    study, search_dir, _, _ = pruned_search
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2]
    assert {t.state for t in trials} == {TrialState.PRUNED}
    for trial in trials:
        assert sorted(trial.intermediate_values) == [0, 1]  # epoch 0 and 1, not 2
        metrics = run_files.epoch_metrics(search_dir / str(trial.number) / run_files.METRICS_CSV)
        assert metrics["val_acc"].dropna().tolist() == pytest.approx(
            list(trial.intermediate_values.values())
        )
        record = run_files.read_json(search_dir / str(trial.number) / TRIAL_JSON)
        assert record["state"] == "pruned" and record["params"] == trial.params
        assert "pruned at epoch 1" in record["error"]
        assert not (search_dir / str(trial.number) / run_files.TEST_METRICS_JSON).exists()


def test_each_trial_is_an_ordinary_run_folder_of_its_values(pruned_search):
    study, search_dir, _, _ = pruned_search
    for trial in study.get_trials():
        run_dir = search_dir / str(trial.number)
        assert trial.user_attrs["run_dir"] == str(run_dir)
        saved = OmegaConf.load(run_dir / run_files.CONFIG_YAML)
        assert saved.optimizer.lr == trial.params["optimizer.lr"]
        assert saved.model.net.dropout == trial.params["model.net.dropout"]
        assert saved.data.batch_size == trial.params["data.batch_size"]
        # The schema keeps the key (null): the search's settings are not a trial's.
        assert saved.paths.run_dir == str(run_dir) and saved.get("hparams_search") is None
        assert (run_dir / "checkpoints" / "last.ckpt").is_file()


def test_the_summary_lists_every_trial_and_draws_optunas_plots(pruned_search):
    study, search_dir, _, _ = pruned_search
    table = pd.read_csv(search_dir / summary.TRIALS_CSV)
    assert list(table.columns) == [
        "trial", "state", "value", "optimizer.lr", "model.net.dropout", "data.batch_size",
        "epochs", "seconds",
    ]  # fmt: skip
    assert sorted(table["trial"]) == [0, 1, 2] and (table["state"] == "pruned").all()
    assert (table["epochs"] == 2).all() and (table["seconds"] > 0).all()
    text = (search_dir / finished_runs.SUMMARY_MD).read_text()
    assert text.startswith("# Search fmnist: 3 trials (3 pruned)")
    assert "No trial has completed yet." in text
    # Each pruned trial ran 2 of its 3 epochs: the estimate adds half its time again.
    spent = sum(t.duration.total_seconds() for t in study.get_trials())
    saved = sum(t.duration.total_seconds() / 2 for t in study.get_trials())
    assert "Pruning: 3 trials ran 6 epochs in all of the 9 they were given" in text
    assert f"would have taken about {saved:.0f} s more" in text
    assert f"{saved / (spent + saved):.0%} of the {spent + saved:.0f} s" in text
    assert f"({spent:.0f} s with it)" in text
    assert len([line for line in text.splitlines() if line.startswith("| ")]) == 2 + 3
    with Image.open(search_dir / "intermediate.png") as image:
        assert image.width > 500
    # History and importances need completed trials: not drawn, not linked.
    assert not (search_dir / "importances.png").exists()
    assert "importances.png" not in text


def test_the_same_command_continues_the_study_and_finds_the_best_trial(pruned_search):
    study, search_dir, args, _ = pruned_search
    more = [a for a in args if "pruner" not in a and "n_trials" not in a]
    continued = runner.run_search(
        [*more, "hparams_search.n_trials=5", "hparams_search.pruner._target_=optuna.pruners.NopPruner",
         "~hparams_search.pruner.n_startup_trials", "~hparams_search.pruner.n_warmup_steps"],
        train,
    )  # fmt: skip
    trials = continued.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]  # the same study, numbers go on
    assert [t.state for t in trials[3:]] == [TrialState.COMPLETE] * 2
    # A continued study does not propose its first points again (the seed moves on).
    assert trials[3].params != trials[0].params
    best = continued.best_trial
    metrics = run_files.read_json(search_dir / str(best.number) / run_files.TEST_METRICS_JSON)
    assert best.value == pytest.approx(metrics["best_val_acc"])

    text = (search_dir / finished_runs.SUMMARY_MD).read_text()
    assert f"Best trial: {best.number}, value {best.value:.4f}" in text
    command = text.split("```bash\n")[1].splitlines()[0]
    assert command.startswith("python -m fmnist_lightning.train debug=tiny")
    assert f"optimizer.lr={best.params['optimizer.lr']!r}" in command
    assert "hparams_search" not in command and "paths.run_dir" not in command
    table = pd.read_csv(search_dir / summary.TRIALS_CSV)
    assert table["trial"][0] == best.number  # best first
    for name in ("history.png", "importances.png"):
        assert (search_dir / name).stat().st_size > 10_000 and f"({name})" in text

    # Asked again, the study is full: nothing runs, the summary is rewritten.
    again = runner.run_search([*more, "hparams_search.n_trials=5"], train)
    assert len(again.get_trials()) == 5


def test_a_study_whose_database_is_gone_does_not_reuse_its_trial_folders(pruned_search):
    _, search_dir, args, _ = pruned_search
    renamed = search_dir / "study.db"
    renamed.rename(search_dir / "moved.db")
    try:
        with pytest.raises(UsageError, match="already holds trial folders"):
            runner.run_search(args, train)
    finally:
        (search_dir / "moved.db").rename(renamed)


# --- The command: processes sharing a study, a study continued after a kill -------------------


def search_process(args: list[str]) -> subprocess.Popen:
    path = os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    return subprocess.Popen(
        [sys.executable, "-m", "fmnist_lightning.search", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


@pytest.mark.slow
def test_two_processes_share_one_sqlite_study(synthetic_root, tmp_path):
    args = tiny_search(
        synthetic_root, tmp_path, "trainer.max_epochs=1", "hparams_search.n_trials=4"
    )
    # Each worker its own sampler seed, so that two started at once propose different points.
    workers = [search_process([*args, f"hparams_search.sampler.seed={seed}"]) for seed in (1, 2)]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output[-3000:]

    trials = study_of(tmp_path).get_trials()
    # Each process stops once the study holds 4; one may finish a trial it had started.
    assert 4 <= len(trials) <= 5
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    pids = {t.user_attrs["worker"].rsplit(":", 1)[1] for t in trials}
    assert pids == {str(worker.pid) for worker in workers}  # both worked on the one study
    for output in outputs:
        assert "Summary:" in output


@pytest.mark.slow
def test_a_search_killed_midway_continues_with_the_same_command(synthetic_root, tmp_path):
    slow = ["+callbacks.slow._target_=helpers.faults.SlowSteps", "+callbacks.slow.seconds=0.3"]
    args = tiny_search(
        synthetic_root, tmp_path, "trainer.max_epochs=1", "hparams_search.n_trials=3"
    )
    first = search_process([*args, *slow])
    trial_1 = tmp_path / "searches" / "fmnist" / "1" / run_files.METRICS_CSV
    deadline = time.monotonic() + 300
    while not trial_1.is_file() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, first.communicate()[0][-3000:]
    first.send_signal(signal.SIGKILL)  # no chance to record anything
    first.communicate(timeout=60)
    killed = study_of(tmp_path).get_trials()
    assert [t.state for t in killed] == [TrialState.COMPLETE, TrialState.RUNNING]

    second = search_process(args)
    output = second.communicate(timeout=600)[0]
    assert second.returncode == 0, output[-3000:]
    assert "Study 'fmnist': 1 of 3 trials finished" in output or "2 of 3" in output
    trials = study_of(tmp_path).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[0].user_attrs["worker"] != trials[2].user_attrs["worker"]
    record = run_files.read_json(tmp_path / "searches" / "fmnist" / "1" / TRIAL_JSON)
    assert record["state"] == "fail" and "stopped without reporting" in record["error"]
    text = (tmp_path / "searches" / "fmnist" / finished_runs.SUMMARY_MD).read_text()
    assert "3 trials (2 complete, 1 fail)" in text


@pytest.mark.slow
def test_an_interrupted_search_records_its_trial_and_says_how_to_continue(synthetic_root, tmp_path):
    stop = ["+callbacks.stop._target_=helpers.faults.SignalAtEpochEnd", "+callbacks.stop.epoch=0"]
    args = tiny_search(synthetic_root, tmp_path, "hparams_search.n_trials=2", *stop)
    process = search_process(args)
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert "Run the same command to continue the study" in output
    (trial,) = study_of(tmp_path).get_trials()  # the search stopped: no second trial
    assert trial.state == TrialState.FAIL
    record = run_files.read_json(tmp_path / "searches" / "fmnist" / "0" / TRIAL_JSON)
    assert record["state"] == "fail" and record["error"].startswith("TrainingInterrupted")
    assert (
        "1 trials (1 fail)"
        in (tmp_path / "searches" / "fmnist" / finished_runs.SUMMARY_MD).read_text()
    )


@pytest.mark.slow
def test_the_command_prints_its_usage_and_a_bad_setting_in_one_line(tmp_path, monkeypatch, capsys):
    usage = subprocess.run(
        [sys.executable, "-m", "fmnist_lightning.search", "--help"], capture_output=True, text=True
    )  # a real process: --help answers without loading torch
    assert usage.returncode == 0 and "hparams_search.n_trials" in usage.stdout
    # The refusals in this process (the same cli.run as __main__'s), without ~10 s of imports.
    status, _, err = run_command(
        lambda: search.main([f"paths.root={tmp_path}", "hparams_search.direction=sideways"]),
        capsys,
    )
    assert status == 2  # a setting refused
    assert err.strip().splitlines()[-1].startswith("Error: hparams_search.direction=")
    # The train command no longer searches (Hydra's Optuna sweeper is gone): it says where to.
    status, err = run_train(
        "hparams_search=optuna", f"paths.root={tmp_path}", cwd=tmp_path,
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert status == 2  # a setting refused, as every command's
    assert "python -m fmnist_lightning.search hparams_search=optuna" in err


def test_the_search_entry_point_is_thin():
    assert len(Path(search.__file__).read_text().splitlines()) < 45
