"""The ensemble command: the mean softmax of several checkpoints, chosen on validation."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from fmnist_lightning.analysis.ensembles import find_ensembles
from fmnist_lightning.analysis.run_files import run_checkpoint
from fmnist_lightning.config.schema import ConfigValidationError
from fmnist_lightning.ensemble import evaluate_ensemble
from fmnist_lightning.errors import UsageError
from fmnist_lightning.inference.batches import predict_probabilities
from fmnist_lightning.models import registry
from fmnist_lightning.models.module import FashionMNISTModule
from fmnist_lightning.models.tta import TTA
from helpers.compose import compose
from helpers.data import make_datamodule
from helpers.modules import tiny_module

SPLIT = {"val_fraction": 0.2, "split_seed": 0}


def classifier(seed: int, **options) -> FashionMNISTModule:
    """An untrained, seeded classifier: members that disagree on many images."""
    torch.manual_seed(seed)
    return tiny_module(blocks=[[8], [16]], dense=[32], **options).eval()


def make_run(
    folder: Path, module: FashionMNISTModule, split=SPLIT, elapsed=(10.0, 20.5), best=1, seed=0
) -> Path:
    """A run folder as training leaves it: config.yaml, metrics.csv, ``best`` best-*.ckpt."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text(
        f"seed: {seed}\nmodel:\n  net:\n    _target_: {registry.VGG}\ndata:\n"
        + "".join(f"  {k}: {v}\n" for k, v in split.items())
    )
    pd.DataFrame({"epoch": range(len(elapsed)), "val_acc": 0.5, "elapsed_seconds": elapsed}).to_csv(
        folder / "metrics.csv", index=False
    )
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    for epoch in range(best):
        torch.save(checkpoint, folder / "checkpoints" / f"best-epoch{epoch:02d}-val_acc0.5.ckpt")
    torch.save(checkpoint, folder / "checkpoints" / "last.ckpt")
    return folder


def ensemble_config(members, *extra: str, root: Path):
    listed = ",".join(str(member) for member in members)
    return compose(
        "ensemble", [f"members=[{listed}]", f"data.root={root}", "accelerator=cpu", *extra]
    )


def test_validation_ensemble_writes_the_mean_softmax_accuracy_and_the_members_fit(
    synthetic_root, tmp_path
):
    runs = [make_run(tmp_path / "sweep" / str(s), classifier(s)) for s in (0, 1)]
    # fp32 as the hand computation below (auto is bf16-mixed on a CPU with AMX)
    config = ensemble_config(runs, "precision=32-true", root=synthetic_root)
    metrics, output_dir = evaluate_ensemble(config)

    datamodule = make_datamodule(synthetic_root)  # the members' split: SPLIT
    datamodule.setup("fit")
    images, labels = datamodule.tensors["val"].tensors
    alone = [predict_probabilities(classifier(s), images, 64, tta=TTA(flip=True)) for s in (0, 1)]
    assert not torch.equal(alone[0].argmax(1), alone[1].argmax(1))  # they do disagree
    mean = (alone[0] + alone[1]) / 2  # the ensemble's probabilities: the members' mean
    expected = float((mean.argmax(1) == labels).double().mean())

    assert output_dir == tmp_path / "sweep" / "ensemble-0+1-val-tta"
    assert metrics["split"] == "val" and metrics["images"] == 80  # 20% of 400
    assert metrics["accuracy"] == pytest.approx(expected)
    assert metrics["loss"] == pytest.approx(
        float(-mean[torch.arange(80), labels].log().mean()), rel=1e-5
    )
    for row, probabilities in zip(metrics["members"], alone, strict=True):
        assert row["accuracy"] == pytest.approx(
            float((probabilities.argmax(1) == labels).double().mean())
        )
        assert row["fit_seconds"] == 20.5 and row["checkpoint"].endswith("val_acc0.5.ckpt")
    assert metrics["fit_seconds"] == 41.0  # the two fits one after the other
    assert metrics["tta"] == {"flip": True, "shift": 0}
    saved = json.loads((output_dir / "ensemble_metrics.json").read_text())
    assert saved["accuracy"] == metrics["accuracy"]
    per_class = pd.read_csv(output_dir / "per_class.csv")
    assert len(per_class) == 10 + 2  # the classes, macro and weighted averages
    confusion = pd.read_csv(output_dir / "confusion_matrix.csv", index_col=0)
    assert confusion.to_numpy().sum() == 80
    assert "members:" in (output_dir / "ensemble_config.yaml").read_text()


def test_members_on_different_splits_are_refused_on_validation_but_not_on_test(
    synthetic_root, tmp_path
):
    first = make_run(tmp_path / "a", classifier(0))
    other = make_run(tmp_path / "b", classifier(1), split={"val_fraction": 0.2, "split_seed": 1})
    with pytest.raises(UsageError, match="different train/val splits.*data.split_seed"):
        evaluate_ensemble(ensemble_config([first, other], root=synthetic_root))
    assert not (tmp_path / "ensemble-a+b-val-tta").exists()  # refused before writing

    metrics, output_dir = evaluate_ensemble(
        ensemble_config([first, other], "split=test", "tta=none", root=synthetic_root)
    )
    assert output_dir == tmp_path / "ensemble-a+b-test"
    assert metrics["images"] == 100 and metrics["tta"] is None


def test_the_results_table_reads_a_test_ensemble_back_wherever_its_tree_moves(
    synthetic_root, tmp_path
):
    runs = [make_run(tmp_path / "sweep" / str(s), classifier(s), seed=s) for s in (3, 4)]
    evaluate_ensemble(ensemble_config(runs, root=synthetic_root))  # val: for choosing only
    metrics, _ = evaluate_ensemble(ensemble_config(runs, "split=test", root=synthetic_root))
    (tmp_path / "sweep").rename(tmp_path / "moved")  # relative member paths still resolve

    (ensemble,), problems = find_ensembles([tmp_path / "moved"])
    assert problems == []
    assert ensemble.folder == tmp_path / "moved" / "ensemble-3+4-test-tta"
    assert ensemble.seeds == [3, 4] and ensemble.tta == "flip"
    assert ensemble.test_acc == metrics["accuracy"] and ensemble.fit_seconds == 41.0
    assert ensemble.member_acc == [row["accuracy"] for row in metrics["members"]]
    assert ensemble.configuration == "VGGStyleCNN"  # no Hydra record: named by the network


def test_a_member_is_a_checkpoint_file_or_a_run_folder_with_one_best_checkpoint(tmp_path):
    run = make_run(tmp_path / "run", classifier(0))
    assert run_checkpoint(run).name == "best-epoch00-val_acc0.5.ckpt"
    assert run_checkpoint(run / "checkpoints" / "last.ckpt").name == "last.ckpt"
    with pytest.raises(UsageError, match="has 2 checkpoints/best-.*name its .ckpt file"):
        run_checkpoint(make_run(tmp_path / "two", classifier(0), best=2))
    with pytest.raises(UsageError, match="has no checkpoints/best-"):
        run_checkpoint(make_run(tmp_path / "none", classifier(0), best=0))
    with pytest.raises(UsageError, match="No run folder or checkpoint file at"):
        run_checkpoint(tmp_path / "missing")


def test_members_must_be_two_distinct_checkpoints_with_one_normalisation(synthetic_root, tmp_path):
    run = make_run(tmp_path / "a", classifier(0))
    with pytest.raises(ConfigValidationError, match="members must list two or more"):
        evaluate_ensemble(ensemble_config([run], root=synthetic_root))
    with pytest.raises(UsageError, match="listed twice"):
        evaluate_ensemble(
            ensemble_config(
                [run, run / "checkpoints" / "best-epoch00-val_acc0.5.ckpt"], root=synthetic_root
            )
        )
    other = make_run(tmp_path / "b", classifier(1, mean=0.5))
    with pytest.raises(UsageError, match="has mean=0.5 but .* must agree"):
        evaluate_ensemble(ensemble_config([run, other], root=synthetic_root))


def test_a_run_and_its_copy_are_not_two_members(synthetic_root, tmp_path):
    run = make_run(tmp_path / "a", classifier(0))
    copy = shutil.copytree(run, tmp_path / "copy")
    with pytest.raises(UsageError) as error:
        evaluate_ensemble(ensemble_config([run, copy], "split=test", root=synthetic_root))
    best = "checkpoints/best-epoch00-val_acc0.5.ckpt"
    assert str(error.value).startswith(f"{copy / best} holds the same weights as {run / best}")
    assert "\n" not in str(error.value)
    assert not list(tmp_path.glob("ensemble-*"))  # refused before writing


def test_unknown_keys_are_refused(synthetic_root, tmp_path):
    runs = [make_run(tmp_path / str(s), classifier(s)) for s in (0, 1)]
    with pytest.raises(ConfigValidationError, match="data.eval_batch_size"):
        evaluate_ensemble(ensemble_config(runs, "data.eval_batch_size=0", root=synthetic_root))


def test_cli_prints_members_and_ensemble_and_fails_in_one_line(synthetic_root, tmp_path):
    runs = [make_run(tmp_path / "sweep" / str(s), classifier(s)) for s in (0, 1)]
    command = [sys.executable, "-m", "fmnist_lightning.ensemble", f"data.root={synthetic_root}"]
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [*command, f"members=[{runs[0]},{runs[1]}]", "accelerator=cpu"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ensemble (mean softmax)" in done.stdout and "val split: 80 images" in done.stdout
    assert (tmp_path / "sweep" / "ensemble-0+1-val-tta" / "ensemble_metrics.json").is_file()

    failed = subprocess.run(
        [*command, f"members=[{runs[0]},{tmp_path / 'nope'}]"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [
        f"Error: No run folder or checkpoint file at {tmp_path / 'nope'}."
    ]
