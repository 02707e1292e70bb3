"""python -m fmnist_lightning.results on hand-written run folders of a small study."""

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from fmnist_lightning import cli
from fmnist_lightning.analysis import run_files
from fmnist_lightning.analysis.curve_plots import accuracy_against_time
from fmnist_lightning.analysis.ensembles import find_ensembles
from fmnist_lightning.analysis.finished_runs import portable, read_validation_run
from fmnist_lightning.inference.output_files import OutputFileError
from fmnist_lightning.results import (
    find_runs,
    main,
    replace_between_markers,
    results_markdown,
    selection_markdown,
)
from helpers.faults import disk_full_in

# (configuration overrides, seed, test acc, test acc with TTA, val_acc per epoch, parameters,
#  s/epoch). Epoch e (0-based) ends its validation at (e + 1) * s/epoch seconds.
RUNS = [
    (["experiment=seed_keras"], 0, 0.9100, None, [0.88, 0.90, 0.89], 1_413_834, 60.0),
    (["experiment=seed_keras"], 1, 0.9140, None, [0.87, 0.91, 0.93], 1_413_834, 62.0),
    (["experiment=best"], 0, 0.9450, 0.9480, [0.90, 0.93, 0.94, 0.95], 1_161_224, 70.0),
    (["experiment=best"], 1, 0.9470, 0.9490, [0.91, 0.95, 0.94, 0.93], 1_161_224, 72.0),
    (["experiment=best"], 2, 0.9490, 0.9530, [0.92, 0.93, 0.94, 0.96], 1_161_224, 74.0),
]
TEST_SECONDS = 5.0
THRESHOLDS = ("0.90", "0.92", "0.93", "0.94", "0.95")


def first_times(val_accs: list[float], seconds: float) -> dict[str, float | None]:
    """time_to_val_acc as TimeToAccuracy writes it."""
    return {
        key: next(((e + 1) * seconds for e, a in enumerate(val_accs) if a >= float(key)), None)
        for key in THRESHOLDS
    }


def composed_config(overrides: list[str], seed: int, run_dir: str, split_seed: str) -> str:
    """A stand-in for the config the overrides compose: it differs between command lines,
    and like the real one has keys that follow the seed and the run's folder."""
    recipe = " ".join(sorted(o for o in overrides if not o.startswith("trainer.max_epochs")))
    return (
        f"seed: {seed}\nrecipe: '{recipe}'\nmodel:\n  _target_: x.Net\n"
        f"data:\n  root: /data\n  split_seed: {split_seed}\npaths:\n  run_dir: {run_dir}\n"
        f"logger:\n  save_dir: {run_dir}\ntrainer:\n  enable_progress_bar: {seed == 0}\n"
    )


def write_run(folder, overrides, seed, test_acc, tta, val_accs, parameters, seconds, timed=True):
    """A run folder as train() and Hydra leave it (the files the table reads)."""
    (folder / ".hydra").mkdir(parents=True)
    hydra_overrides = [*overrides, f"seed={seed}", "data.root=/data", "paths.root=/logs"]
    (folder / ".hydra" / "overrides.yaml").write_text(
        "".join(f"- {override}\n" for override in hydra_overrides)
    )
    composed = composed_config(overrides, seed, "${hydra:runtime.output_dir}", "${seed}")
    (folder / ".hydra" / "config.yaml").write_text(composed)  # as Hydra saves it
    (folder / "config.yaml").write_text(composed_config(overrides, seed, str(folder), str(seed)))
    rows = ["epoch,step,train_loss_epoch,val_acc,val_loss,elapsed_seconds"]
    for epoch, val_acc in enumerate(val_accs):
        step, elapsed = 10 * epoch + 9, (epoch + 1) * seconds
        rows += [f"{epoch},{step},0.5,,,", f"{epoch},{step},,{val_acc},0.3,{elapsed}"]
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    summary = {
        "test_acc": test_acc,
        "epochs": len(val_accs),
        "parameters": parameters,
        "seconds_per_epoch": seconds,
        "fit_seconds": seconds * len(val_accs),
        "device": "cpu",
        # The code that ran: the tables leave it out.
        "version": "0.1.0",
        "commit": "c0ffee" * 6 + "c0ff",
        "dirty": False,
    }
    if tta is not None:
        summary["test_acc_tta"] = tta
    if timed:
        summary["time_to_val_acc"] = first_times(val_accs, seconds)
        summary["test_seconds"] = TEST_SECONDS
    (folder / "test_metrics.json").write_text(json.dumps(summary))


@pytest.fixture
def study(tmp_path):
    """Two sweep folders as `-m seed=...` makes them, with what else lies in such folders:
    an unfinished run, a resumed run's bookkeeping, a sweep's own summary."""
    sweeps = tmp_path / "sweeps"
    for index, run in enumerate(RUNS):
        sweep = "keras" if "seed_keras" in run[0][0] else "best"
        write_run(sweeps / sweep / str(index), *run)
    unfinished = sweeps / "best" / "9"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("seed: 9\n")
    resumed = sweeps / "best" / "2" / ".hydra" / "resumed-2026-01-01_00-00-00"
    resumed.mkdir()
    (resumed / "config.yaml").write_text("seed: 2\n")
    for name in ("multirun.yaml", "summary.csv", "config.yaml"):  # a sweep summary, not a run
        (sweeps / "best" / name).write_text("seed: 0\n")
    return sweeps


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def test_the_table_groups_seeds_by_configuration(study, tmp_path, capsys):
    output = tmp_path / "out" / "results.md"
    assert main([str(study / "keras"), str(study / "best"), "--output", str(output)]) == 0
    text = output.read_text()
    assert text == capsys.readouterr().out
    lines = table_lines(text)
    assert lines[0] == (
        "| configuration | seeds | test acc (%) | with TTA (%) | time to 93% (s) | s / epoch "
        "| fit + test (s) | best epoch | epochs run | parameters | device |"
    )
    # seed_keras: mean 91.20, sample std 0.28, no TTA; seed 0 never reached 93%;
    # fit + test: (3 x 60 + 5 + 3 x 62 + 5) / 2 = 188 s.
    assert lines[2] == (
        "| `experiment=seed_keras` | 0, 1 | 91.20 ± 0.28 |  | — (1 of 2 not reached) | 61.0 "
        "| 188 | 2, 3 | 3, 3 | 1,413,834 | cpu |"
    )
    # best: 93% first at epoch 2, 2, 2 → (140 + 144 + 148) / 3 = 144 s; 4 x 72 + 5 = 293 s.
    assert lines[3] == (
        "| `experiment=best` | 0, 1, 2 | 94.70 ± 0.20 | 95.00 ± 0.26 | 144 | 72.0 "
        "| 293 | 4, 2, 4 | 4, 4, 4 | 1,161,224 | cpu |"
    )
    assert len(lines) == 4  # no row for the unfinished run, the bookkeeping or the summary
    assert "python -m fmnist_lightning.train -m experiment=seed_keras seed=0,1" in text
    assert "python -m fmnist_lightning.train -m experiment=best seed=0,1,2" in text


def write_sweep(folder: Path, runs: int, configurations: int = 4) -> None:
    """``runs`` finished runs of ``configurations`` command lines, seeds 0, 1, ... in each: the
    folders of docs/performance.md's figure for ``results`` over many runs."""
    for job in range(runs):
        config, seed = divmod(job, runs // configurations)
        accuracy, val_accs = 0.9 + config / 100 + seed / 1e5, [0.8, 0.9 + config / 100]
        write_run(
            folder / str(job),
            [f"model.dropout=0.{config}"],
            seed,
            accuracy,
            None,
            val_accs,
            1000,
            2.0,
        )


def test_a_sweep_of_many_runs_gives_one_row_per_configuration(tmp_path):
    write_sweep(tmp_path / "sweep", 400)
    output = tmp_path / "results.md"
    assert main([str(tmp_path / "sweep"), "--output", str(output)]) == 0
    lines = table_lines(output.read_text())[2:]
    assert [line.split(" | ")[0] for line in lines] == [
        f"| `model.dropout=0.{c}`" for c in range(4)
    ]
    seeds = ", ".join(map(str, range(100)))
    for config, line in enumerate(lines):
        cells = line.split(" | ")
        # mean of 90 + c + seed / 1000 over seeds 0..99: + 0.0495; sample std 0.029
        assert cells[1:3] == [seeds, f"{90 + config + 0.0495:.2f} ± 0.03"]
        assert cells[6:8] == [", ".join(["2"] * 100), ", ".join(["2"] * 100)]


def test_a_longer_command_line_that_composed_the_same_config_joins_its_row(tmp_path):
    """seed 0 spelled out what experiment=best now says (the stand-in config drops
    trainer.max_epochs from its recipe, as if the experiment set the same value)."""
    long = ["experiment=best", "trainer.max_epochs=4"]
    write_run(tmp_path / "a" / "0", long, 0, 0.945, None, [0.9, 0.95], 7, 70.0)
    for seed in (1, 2):
        write_run(
            tmp_path / "b" / str(seed), ["experiment=best"], seed, 0.947, None, [0.9], 7, 70.0
        )
    write_run(
        tmp_path / "c" / "0", ["experiment=best", "data.batch_size=64"], 0, 0.9, None, [0.9], 7, 9.0
    )
    found, _, _ = find_runs([tmp_path / "a", tmp_path / "b", tmp_path / "c"])
    text = results_markdown(found)
    rows = [line.split(" | ")[:2] for line in table_lines(text)[2:]]
    assert rows == [
        ["| `experiment=best`", "0, 1, 2"],
        ["| `experiment=best data.batch_size=64`", "0"],
    ]
    assert "train -m experiment=best seed=0,1,2\n" in text
    assert "max_epochs" not in text


def test_without_tta_runs_there_is_no_tta_column_and_old_runs_show_unknown_times(tmp_path):
    write_run(tmp_path / "a", ["model=cnn_bn"], 0, 0.93, None, [0.9, 0.93], 1_414_666, 50.0)
    write_run(tmp_path / "b", ["model=cnn_bn"], 1, 0.93, None, [0.9, 0.93], 1, 50.0, timed=False)
    found, _, _ = find_runs([tmp_path])
    lines = table_lines(results_markdown(found))
    assert "with TTA" not in lines[0]
    cells = lines[2].split(" | ")
    assert cells[3] == "?"  # seed 1 was written before times were recorded
    assert cells[5] == "?"  # and before the test was timed


def test_bookkeeping_and_summary_folders_are_not_runs(study):
    found, unfinished, problems = find_runs([study])
    assert len(found) == 5 and problems == []
    assert unfinished == [study / "best" / "9"]


def test_a_corrupt_file_is_reported_and_the_table_goes_on(study, tmp_path, capsys):
    (study / "best" / "3" / "test_metrics.json").write_text("{not json")
    (study / "keras" / "1" / "metrics.csv").write_text("epoch,val_acc\n0,0.9\n1,0.9,1,2,3\n")
    output = tmp_path / "results.md"
    assert main([str(study), "--output", str(output)]) == 0
    captured = capsys.readouterr()
    problems = [line for line in captured.err.splitlines() if "cannot be read" in line]
    assert len(problems) == 2
    assert any(str(study / "best" / "3") in p and "test_metrics.json" in p for p in problems)
    assert any(str(study / "keras" / "1") in p and "metrics.csv" in p for p in problems)
    lines = table_lines(output.read_text())
    # Rows in the order found (best/ sorts before keras/), each without its unreadable seed.
    assert lines[2].startswith("| `experiment=best` | 0, 2 | 94.70 ± 0.28 |")
    assert lines[3].startswith("| `experiment=seed_keras` | 0 | 91.00 |")


def write_ensemble(sweep: Path, jobs: list[str], split: str, accuracy: float, fits: list) -> Path:
    """An ensemble folder as ``python -m fmnist_lightning.ensemble`` leaves it (what the
    table reads: ensemble_metrics.json, members relative to the folder)."""
    folder = sweep / f"ensemble-{'+'.join(jobs)}-{split}-tta"
    folder.mkdir()
    members = [
        {
            "checkpoint": f"../{job}/checkpoints/best-epoch03.ckpt",
            "accuracy": 0.95,
            "fit_seconds": fit,
        }
        for job, fit in zip(jobs, fits, strict=True)
    ]
    total = None if None in fits else sum(fits)
    metrics = {"split": split, "accuracy": accuracy, "members": members, "fit_seconds": total}
    (folder / "ensemble_metrics.json").write_text(
        json.dumps({**metrics, "tta": {"flip": True, "shift": 0}})
    )
    return folder


def test_test_set_ensembles_get_their_own_table(study, tmp_path, capsys):
    best = study / "best"  # jobs 2, 3, 4: experiment=best, seeds 0, 1, 2
    write_ensemble(best, ["2", "3"], "test", 0.9600, [280.0, 290.0])
    write_ensemble(best, ["3", "4"], "test", 0.9620, [290.0, 300.0])
    write_ensemble(best, ["2", "4"], "val", 0.9900, [280.0, 300.0])  # choosing, not results
    write_ensemble(best, ["2", "7"], "test", 0.9700, [280.0, None])  # job 7 is not there
    output = tmp_path / "results.md"
    assert main([str(study), "--output", str(output)]) == 0
    errors = [line for line in capsys.readouterr().err.splitlines() if "cannot be read" in line]
    assert len(errors) == 1 and errors[0].endswith(
        f"ensemble-2+7-test-tta: a member's run folder {best / '7'} has no config.yaml"
    )
    text = output.read_text()
    lines = table_lines(text.split("Ensembles (")[1])
    assert lines[0] == (
        "| members' configuration | member seeds | test acc (%) | TTA | members' test acc (%) "
        "| members' fit (s) | device |"
    )
    # (96.00, 96.20): mean 96.10, std 0.14; the members' fits summed: 570 and 590 s.
    assert lines[2] == (
        "| `experiment=best` | 0+1, 1+2 | 96.10 ± 0.14 | flip | 95.00 ± 0.00 | 580 | cpu |"
    )
    assert len(lines) == 3
    assert "python -m fmnist_lightning.ensemble 'members=[<run>,<run>]' split=test" in text
    assert len(table_lines(text.split("Ensembles (")[0])) == 4  # the runs' table is unchanged


def test_a_run_under_several_of_the_folders_given_counts_once(study, tmp_path, monkeypatch, capsys):
    """``results best best/2 .``: the folders hold one another; each run and ensemble is one."""
    write_ensemble(study / "best", ["2", "3"], "test", 0.9600, [280.0, 290.0])
    monkeypatch.chdir(study)
    output = tmp_path / "results.md"
    assert main(["best", "best/2", ".", "--output", str(output)]) == 0
    assert f"({len(RUNS)} runs)" in capsys.readouterr().err
    runs_table, ensembles_table = output.read_text().split("Ensembles (")
    assert table_lines(runs_table)[2].startswith("| `experiment=best` | 0, 1, 2 | 94.70 ± 0.20 |")
    assert table_lines(ensembles_table)[2:] == [
        "| `experiment=best` | 0+1 | 96.00 | flip | 95.00 ± 0.00 | 570 | cpu |"
    ]
    assert len(find_runs([Path("best"), Path(".")], read_validation_run)[0]) == len(RUNS)


@pytest.mark.parametrize(
    "override, shown",
    [
        ("model.init_from=/home/me/runs/x/checkpoints/best.ckpt", "model.init_from=<checkpoint>"),
        ("model.init_from=../runs/x/last.ckpt", "model.init_from=<checkpoint>"),
        ("ckpt_path=last.ckpt", "ckpt_path=<checkpoint>"),
        ("model.weights=~/resnet18.pth", "model.weights=<checkpoint>"),
        ("data.root=/srv/data", "data.root=<path>"),
        ("+x.dir='./out'", "+x.dir=<path>"),
        ("model.net.blocks=[[8],[16]]", "model.net.blocks=[[8],[16]]"),
        ("optimizer.lr=0.003", "optimizer.lr=0.003"),
        ("data/augment=standard", "data/augment=standard"),
    ],
)
def test_path_values_become_placeholders(override, shown):
    assert portable(override) == shown


def test_reproduce_commands_hold_no_machine_specific_path(tmp_path):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        init = f"model.init_from={tmp_path}/seed{seed}/checkpoints/last.ckpt"
        write_run(runs / str(seed), ["experiment=finetune", init], seed, 0.93, None, [0.93], 1, 9.0)
    output = tmp_path / "results.md"
    assert main([str(runs), "--output", str(output)]) == 0
    text = output.read_text()
    assert str(tmp_path) not in text
    assert "| `experiment=finetune model.init_from=<checkpoint>` | 0, 1 |" in text
    assert "train -m experiment=finetune model.init_from=<checkpoint> seed=0,1" in text


def test_readme_gets_the_table_between_its_markers(study, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Title\n\n<!-- results:start -->\nold table\n<!-- results:end -->\n\nAfter.\n"
    )
    output = tmp_path / "results.md"
    assert main([str(study), "--output", str(output), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\n<!-- results:start -->\n| configuration |")
    assert text.endswith("```\n<!-- results:end -->\n\nAfter.\n")
    assert "old table" not in text
    assert output.read_text() in text
    # Again: the same file (the markers stay, nothing piles up).
    assert main([str(study), "--output", str(output), "--readme", str(readme)]) == 0
    assert readme.read_text() == text


def test_a_readme_without_markers_is_refused_and_left_alone(study, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# No markers\n")
    with pytest.raises(SystemExit) as exit_info:
        cli.run(
            lambda: main([str(study), "--output", str(tmp_path / "r.md"), "--readme", str(readme)])
        )
    assert exit_info.value.code == 2
    assert "<!-- results:start -->" in capsys.readouterr().err
    assert readme.read_text() == "# No markers\n" and not (tmp_path / "r.md").exists()
    with pytest.raises(ValueError, match="markers"):
        replace_between_markers("<!-- results:end --> <!-- results:start -->", "x")


def test_a_full_disk_leaves_the_readme_as_it_was(study, tmp_path, capsys):
    readme = tmp_path / "docs" / "README.md"
    readme.parent.mkdir()
    before = "# Title\n\n<!-- results:start -->\nold table\n<!-- results:end -->\n\nAfter.\n"
    readme.write_text(before)
    argv = [str(study), "--output", str(tmp_path / "results.md"), "--readme", str(readme)]
    with disk_full_in(readme.parent, 100), pytest.raises(SystemExit) as exited:
        cli.run(lambda: main(argv))
    assert exited.value.code == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"Error: could not write '{readme}' (") and " kB)" in error
    assert "No space left on device" in error and "'README.md' is kept as it was" in error
    assert readme.read_text() == before
    assert [p.name for p in readme.parent.iterdir()] == ["README.md"]  # no temporary


def test_a_run_file_is_written_whole_or_not_at_all(tmp_path):
    path = tmp_path / "test_metrics.json"
    run_files.write_json(path, {"test_acc": 0.9})
    with disk_full_in(tmp_path, 10), pytest.raises(OutputFileError, match="No space left"):
        run_files.write_json(path, {"test_acc": 0.95})
    assert run_files.read_json(path) == {"test_acc": 0.9}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary


def test_an_output_that_is_the_readme_or_a_run_file_is_refused(study, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:start -->\nold table\n<!-- results:end -->\n")
    run_file = study / "best" / "2" / "test_metrics.json"
    linked = tmp_path / "linked.md"
    linked.hardlink_to(run_file)  # the same file under another name
    before = {path: path.read_bytes() for path in (readme, run_file)}
    for output in (readme, linked):
        with pytest.raises(SystemExit) as exited:
            cli.run(partial(main, [str(study), "--output", str(output), "--readme", str(readme)]))
        assert exited.value.code == 2
        error = capsys.readouterr().err
        assert "writing there would replace it; choose another --output" in error
    assert {path: path.read_bytes() for path in before} == before
    # A file of a run folder that is not one of its records is an output like any other.
    table = study / "best" / "2" / "results.md"
    for _ in range(2):
        assert main([str(study), "--output", str(table)]) == 0
    assert "| configuration |" in table.read_text()


def test_the_plot_has_a_line_per_seed_and_a_mean_per_configuration(study, tmp_path):
    plot = tmp_path / "plots" / "time.png"
    assert main([str(study), "--output", str(tmp_path / "r.md"), "--plot", str(plot)]) == 0
    with Image.open(plot) as image:
        assert image.width > 500 and image.height > 300
    found, _, _ = find_runs([study])
    curves: dict[str, list[pd.DataFrame]] = {}
    for run in found:
        curves.setdefault(run.configuration, []).append(run.curve)
    figure = accuracy_against_time(curves, threshold=0.93)
    assert isinstance(figure, Figure)
    (axes,) = figure.axes
    lines = axes.get_lines()
    assert len(lines) == 5 + 2 + 1  # every seed, the two means, the 93% level
    means = [line for line in lines if line.get_label().startswith("experiment=best")]
    (mean,) = means
    assert list(mean.get_xdata()) == [72.0, 144.0, 216.0, 288.0]  # mean seconds per epoch end
    assert list(mean.get_ydata()) == pytest.approx([0.91, 0.9366667, 0.94, 0.9466667])


@pytest.mark.slow
def test_the_command_line_reports_unfinished_runs_and_bad_folders(study, tmp_path):
    command = [sys.executable, "-m", "fmnist_lightning.results", str(study)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Skipped 1 unfinished run(s)" in result.stderr and "best/9" in result.stderr
    assert "resumed-" not in result.stderr
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
    assert Path(tmp_path / "results.md").is_file()


@pytest.mark.parametrize(
    ("summary", "label"),
    [
        ({"device": "cpu", "cpu_threads": 2}, "cpu (2 threads)"),
        ({"device": "cpu", "cpu_threads": 1}, "cpu (1 thread)"),
        ({"device": "cpu"}, "cpu"),  # written before the thread count was recorded
        ({"device": "cuda:0", "cpu_threads": 16}, "cuda:0"),  # before the GPU was named
        (
            {"device": "cuda:0", "gpu_model": "NVIDIA H200", "cpu_threads": 16},
            "cuda:0 (NVIDIA H200)",
        ),
        ({"device": "cpu", "gpu_model": None, "cpu_threads": 2}, "cpu (2 threads)"),
        (
            {"device": "cpu", "cpu_model": "AMD EPYC 7B13", "cpu_threads": 2},
            "cpu (AMD EPYC 7B13, 2 threads)",
        ),
        ({"device": "cpu", "cpu_model": None, "cpu_threads": 1}, "cpu (1 thread)"),
    ],
)
def test_the_device_column_names_the_cpu_threads_a_run_used(tmp_path, summary, label):
    write_run(tmp_path / "run", ["model=compact"], 0, 0.9, None, [0.9], 1000, 10.0)
    metrics = tmp_path / "run" / "test_metrics.json"
    metrics.write_text(json.dumps(json.loads(metrics.read_text()) | summary))
    found, _, problems = find_runs([tmp_path])
    assert problems == []
    assert table_lines(results_markdown(found))[2].endswith(f"| {label} |")


def test_every_reproduce_command_is_one_hydra_accepts(study, tmp_path):
    """Hydra's parser takes no option between overrides: `train x=1 -m seed=0` is refused."""
    from hydra._internal.utils import get_args_parser

    found, _, _ = find_runs([study])
    commands = [
        line for line in results_markdown(found).splitlines() if line.startswith("python -m")
    ]
    assert len(commands) == 2
    for command in commands:
        args = get_args_parser().parse_args(command.split()[3:])
        assert args.multirun and any(o.startswith("seed=") for o in args.overrides)


DOCS = Path(__file__).parents[1] / "docs"
TABLE_RUNS = DOCS / "runs" / "2026-12-04-xeon-table"
BEST_RUNS = DOCS / "runs" / "2026-12-04-xeon-best"
DISTILL_RUNS = DOCS / "runs" / "2026-12-07-xeon-distill"
# The README table's folders, in its row order (docs/runs/README.md gives the command).
TABLE_FOLDERS = [
    TABLE_RUNS / "seed_keras",
    TABLE_RUNS / "default",
    TABLE_RUNS / "batch_size_128",
    TABLE_RUNS / "label_smoothing_0.1",
    TABLE_RUNS / "lr_0.002",
    DISTILL_RUNS / "baseline",
    DISTILL_RUNS / "seed_network",
    BEST_RUNS / "default_splits",
    BEST_RUNS / "pair0",
    BEST_RUNS / "split0b",
    DISTILL_RUNS / "compact",
    TABLE_RUNS / "speedrun",
]


def test_the_readme_table_is_what_results_makes_of_its_committed_run_records():
    """README.md's table and docs/results.md are regenerated, not typed: the same text from
    the run records in docs/runs/."""
    found, unfinished, problems = find_runs(TABLE_FOLDERS)
    ensembles, ensemble_problems = find_ensembles(TABLE_FOLDERS)
    assert (len(found), len(ensembles), unfinished, problems, ensemble_problems) == (
        30,
        3,
        [],
        [],
        [],
    )
    table = results_markdown(found, ensembles)
    assert table == (DOCS / "results.md").read_text()
    readme = (DOCS.parent / "README.md").read_text()
    assert replace_between_markers(readme, table) == readme


def test_the_gpu_selection_page_is_what_results_validation_makes_of_its_run_records():
    """docs/selection-h200.md (the seed network's second GPU round) is `results --validation`
    over its committed records: 13 configurations, three seeds each."""
    found, _, problems = find_runs(
        [DOCS / "runs" / "2026-12-04-h200-seed-network"], read_validation_run
    )
    assert (len(found), problems, len({run.configuration for run in found})) == (39, [], 13)
    assert selection_markdown(found) == (DOCS / "selection-h200.md").read_text()


def test_the_swa_table_in_the_results_notes_is_what_results_validation_makes_of_its_records():
    """docs/results-notes.md's SWA table (the seed network, seeds 0, 1, 2, against the
    table's default) is `results --validation` over the committed records."""
    swa_runs = [DOCS / "runs" / "2026-12-04-xeon-swa", DOCS / "runs" / "2026-12-04-xeon-swa-longer"]
    found, _, problems = find_runs([TABLE_RUNS / "default", *swa_runs], read_validation_run)
    assert (len(found), problems, len({run.configuration for run in found})) == (9, [], 3)
    table = selection_markdown(found).split("\n\n")[0]
    assert table in (DOCS / "results-notes.md").read_text()
