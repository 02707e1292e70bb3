"""python -m fmnist_lightning.results --validation: the table recipe choices are made on."""

import json

import pytest

from fmnist_lightning import cli
from fmnist_lightning.analysis.finished_runs import find_runs, read_validation_run
from fmnist_lightning.results import main, selection_markdown

# A test accuracy no validation figure equals: if it shows up anywhere, the test set was read.
TEST_ACC = 0.4321


def write_run(folder, overrides, seed, val_accs, tta_accs=None, finished=True):
    """A run folder as train() and Hydra leave it (metrics.csv logs train and val rows apart)."""
    (folder / ".hydra").mkdir(parents=True)
    hydra_overrides = [*overrides, f"seed={seed}", "paths.root=/logs"]
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in hydra_overrides))
    recipe = " ".join(sorted(overrides))
    (folder / ".hydra" / "config.yaml").write_text(f"seed: {seed}\nrecipe: '{recipe}'\n")
    (folder / "config.yaml").write_text(f"seed: {seed}\nrecipe: '{recipe}'\n")
    header = "epoch,step,train_loss_epoch,val_acc" + (",val_acc_tta" if tta_accs else "")
    rows = [header]
    for epoch, val_acc in enumerate(val_accs):
        tta = f",{tta_accs[epoch]}" if tta_accs else ""
        blank = "," if tta_accs else ""
        rows += [
            f"{epoch},{epoch * 10 + 9},0.5,{blank}",
            f"{epoch},{epoch * 10 + 9},,{val_acc}{tta}",
        ]
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    if finished:
        test = {"test_acc": TEST_ACC, "test_acc_tta": TEST_ACC, "best_val_acc": max(val_accs)}
        (folder / "test_metrics.json").write_text(json.dumps(test))


@pytest.fixture
def search(tmp_path):
    """A sweep of two recipes over seeds, one run still going, and a sweep's own summary."""
    sweep = tmp_path / "sweep"
    write_run(sweep / "0", [], 0, [0.90, 0.93, 0.92], [0.91, 0.93, 0.94])
    write_run(sweep / "1", [], 1, [0.91, 0.92, 0.95], [0.92, 0.93, 0.95])
    write_run(sweep / "2", ["optimizer.lr=0.002"], 0, [0.92, 0.96], [0.93, 0.97])
    write_run(sweep / "3", ["optimizer.lr=0.002"], 1, [0.90], [0.90], finished=False)
    (sweep / "4").mkdir()
    (sweep / "4" / "config.yaml").write_text("seed: 2\n")  # started, not yet validated
    for name in ("multirun.yaml", "summary.csv", "config.yaml"):
        (sweep / name).write_text("seed: 0\n")
    return sweep


def table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_the_best_epoch_of_each_run_is_grouped_by_recipe_and_ranked(search):
    found, _, problems = find_runs([search], read_validation_run)
    assert problems == []
    assert len(found) == 4  # not the folder that has not validated, nor the sweep's own
    rows = table_rows(selection_markdown(found))
    assert rows[0] == [
        "configuration",
        "seeds",
        "best val acc (%)",
        "with TTA (%)",
        "per seed (%)",
        "best epoch",
        "epochs run",
    ]
    # lr 0.002: TTA 97 and 90 → mean 93.50 ± 4.95; default: TTA 94, 95 → 94.50 ± 0.71 ranks first.
    assert rows[2] == [
        "`default`",
        "0, 1",
        "94.00 ± 1.41",
        "94.50 ± 0.71",
        "93.00 / 94.00, 95.00 / 95.00",
        "2, 3",
        "3, 3",
    ]
    assert rows[3] == [
        "`optimizer.lr=0.002`",
        "0, 1",
        "93.00 ± 4.24",
        "93.50 ± 4.95",
        "96.00 / 97.00, 90.00 / 90.00",
        "2, 1",
        "2, 1",
    ]


def test_no_test_figure_is_read(search):
    for test_metrics in search.rglob("test_metrics.json"):
        test_metrics.write_text("{not json")  # reading it would raise
    found, _, problems = find_runs([search], read_validation_run)
    assert problems == [] and len(found) == 4
    assert f"{100 * TEST_ACC:.2f}" not in selection_markdown(found)


def test_runs_without_tta_rank_by_plain_accuracy(tmp_path):
    write_run(tmp_path / "a", ["model=cnn"], 0, [0.90, 0.91])
    write_run(tmp_path / "b", ["model=cnn_bn"], 0, [0.92, 0.93])
    run = read_validation_run(tmp_path / "a")
    assert (run.best_val_acc, run.best_val_acc_tta, run.best_epoch, run.epochs) == (
        0.91,
        None,
        2,
        2,
    )
    found, _, _ = find_runs([tmp_path], read_validation_run)
    rows = table_rows(selection_markdown(found))
    assert [row[0] for row in rows[2:]] == ["`model=cnn_bn`", "`model=cnn`"]
    assert rows[2][3] == "" and rows[2][4] == "93.00"


def test_the_command_writes_selection_md_and_leaves_results_md_alone(
    search, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results.md").write_text("the results table\n")
    assert main(["--validation", str(search)]) == 0
    assert (tmp_path / "results.md").read_text() == "the results table\n"
    written = (tmp_path / "selection.md").read_text()
    assert written == capsys.readouterr().out
    assert "`optimizer.lr=0.002`" in written


@pytest.mark.parametrize("extra", [["--readme", "README.md"], ["--plot", "a.png"]])
def test_validation_refuses_the_results_only_options(search, extra, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.run(lambda: main(["--validation", str(search), *extra]))
    assert stopped.value.code == 2
    assert "--output only" in capsys.readouterr().err


def test_folders_without_validated_runs_are_an_error(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(SystemExit) as stopped:
        cli.run(lambda: main(["--validation", str(tmp_path)]))
    assert stopped.value.code == 2
    assert "has logged a validation epoch" in capsys.readouterr().err


def test_an_unreadable_metrics_file_is_reported_and_the_rest_is_read(search, capsys):
    (search / "1" / "metrics.csv").write_text("epoch,val_acc\n0,0.9\n1,0.9,1,2,3\n")
    assert main(["--validation", str(search), "--output", str(search.parent / "s.md")]) == 0
    err = capsys.readouterr().err
    assert "cannot be read" in err and str(search / "1") in err and "metrics.csv" in err
    rows = table_rows((search.parent / "s.md").read_text())
    assert [row[1] for row in rows[2:]] == ["0", "0, 1"]  # default lost seed 1


def test_a_run_validated_every_third_epoch_counts_its_epochs_not_its_validations(tmp_path):
    write_run(tmp_path / "run", [], 0, [0.90, 0.93])
    rows = ["epoch,step,train_loss_epoch,val_acc"]
    rows += [f"{epoch},{epoch},0.5," for epoch in range(6)]
    rows += ["2,2,,0.93", "5,5,,0.92"]  # validated after epochs 3 and 6 (1-based)
    (tmp_path / "run" / "metrics.csv").write_text("\n".join(rows) + "\n")
    run = read_validation_run(tmp_path / "run")
    assert (run.epochs, run.best_epoch, run.best_val_acc) == (6, 3, 0.93)
