"""Knowledge distillation (distill=soft): the loss, the teacher's member rules, a distilled run
that predicts without its teacher, and the results labels of runs with different teachers."""

import hashlib
import json
import shutil
import time
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from filelock import FileLock

from fmnist_lightning.analysis.finished_runs import find_runs, read_run, read_validation_run
from fmnist_lightning.errors import UsageError
from fmnist_lightning.models.distillation import Teacher, distillation_loss
from fmnist_lightning.models.module import FashionMNISTModule, load_module
from fmnist_lightning.results import results_markdown, summarise
from fmnist_lightning.train import train
from fmnist_lightning.training.distillation import build_teacher
from helpers.compose import tiny
from helpers.modules import tiny_module

SEED = 42  # debug=tiny's: its data.split_seed
SPLIT = {"val_fraction": 0.2, "split_seed": SEED}
T = 3.0


def member(seed: int, **options) -> FashionMNISTModule:
    """An untrained, seeded network: members that disagree."""
    torch.manual_seed(seed)
    return tiny_module(blocks=[[8]], dense=[16], **options).eval()


def make_run(folder: Path, module: FashionMNISTModule, split=SPLIT, finished=True) -> Path:
    """A run folder as training leaves it: config.yaml, metrics.csv, one best checkpoint and
    (``finished``) test_metrics.json."""
    (folder / "checkpoints").mkdir(parents=True)
    data = "".join(f"  {key}: {value}\n" for key, value in split.items())
    (folder / "config.yaml").write_text(f"seed: {SEED}\ndata:\n{data}")
    metrics = {"epoch": [0, 1], "val_acc": 0.5, "elapsed_seconds": [10.0, 20.5]}
    pd.DataFrame(metrics).to_csv(folder / "metrics.csv", index=False)
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    torch.save(checkpoint, folder / "checkpoints" / "best-epoch01-val_acc0.5.ckpt")
    if finished:
        (folder / "test_metrics.json").write_text('{"test_acc": 0.5}')
    return folder


def student_config(data_root: Path, run_dir: Path, teacher: list[Path], *extra: str):
    listed = ",".join(str(run) for run in teacher)
    return tiny(data_root, run_dir, "distill=soft", f"distill.teacher=[{listed}]", *extra)


def images_and_labels(count: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(count, 1, 28, 28), torch.arange(count) % 10


def test_the_loss_is_the_cross_entropy_at_alpha_0():
    logits, labels = torch.randn(6, 10), torch.arange(6)
    teacher = torch.softmax(torch.randn(6, 10), dim=1)
    loss = distillation_loss(logits, teacher, labels, T, alpha=0.0, label_smoothing=0.1)
    assert loss == pytest.approx(float(F.cross_entropy(logits, labels, label_smoothing=0.1)))


@pytest.mark.filterwarnings("ignore:You are trying to")  # a step without a Trainer
def test_the_loss_at_alpha_1_is_the_softened_kl_of_an_ensemble_teacher_over_its_views():
    images, labels = images_and_labels()
    flipping, plain = member(0, tta={"flip": True, "shift": 0}), member(1)
    teacher = Teacher([flipping, plain], temperature=T, alpha=1.0)
    student = member(2)  # in eval mode: no dropout between the two steps below
    student.teacher = teacher

    with torch.no_grad():  # by hand: member 0 over the image and its mirror, member 1 once
        views = (flipping(images).softmax(1) + flipping(images.flip(-1)).softmax(1)) / 2
        mean = (views + plain(images).softmax(1)) / 2
        target = mean.double() ** (1 / T) / (mean.double() ** (1 / T)).sum(1, keepdim=True)
        logits = student(images)
        own = (logits.double() / T).softmax(1)
        expected = float(T**2 * (target * (target.log() - own.log())).sum(1).mean())

    assert torch.allclose(teacher.probabilities(images), mean, atol=1e-6)
    with torch.no_grad():
        loss = teacher.loss(logits, images, labels, 0.0)
        assert float(loss) == pytest.approx(expected, rel=1e-4)  # a small KL of float32 logs
        # The module's training loss is the teacher's; validation keeps the cross-entropy.
        assert float(student.training_step((images, labels), 0)) == float(loss)
        plain_loss = F.cross_entropy(logits, labels)
        assert float(student._shared_step((images, labels), "val")) == pytest.approx(
            float(plain_loss)
        )
    assert not any("teacher" in key for key in student.state_dict())


def test_a_teacher_member_on_another_split_is_refused(synthetic_root, tmp_path):
    other = make_run(tmp_path / "other", member(0), split={**SPLIT, "split_seed": 7})
    cfg = student_config(synthetic_root, tmp_path / "run", [other])
    with pytest.raises(UsageError, match="trained on the split .* but this run on"):
        build_teacher(cfg, member(2))


def test_a_teacher_member_still_training_is_refused(synthetic_root, tmp_path):
    fresh = make_run(tmp_path / "fresh", member(0), finished=False)
    cfg = student_config(synthetic_root, tmp_path / "run", [fresh])
    with pytest.raises(UsageError, match="has not finished training"):
        build_teacher(cfg, member(2))

    resumed = make_run(tmp_path / "resumed", member(1))  # finished once, training again
    cfg = student_config(synthetic_root, tmp_path / "run", [resumed])
    lock = FileLock(resumed / ".lock", timeout=0)  # as a training process holds it
    with lock, pytest.raises(UsageError, match="in use by a training process"):
        build_teacher(cfg, member(2))


def test_a_teacher_member_that_is_a_copy_of_another_is_refused(synthetic_root, tmp_path):
    original = make_run(tmp_path / "a", member(0))
    copy = tmp_path / "b"
    shutil.copytree(original, copy)
    cfg = student_config(synthetic_root, tmp_path / "run", [original, copy])
    with pytest.raises(UsageError, match="holds the same weights as .*a copy of one run"):
        build_teacher(cfg, member(2))


def test_a_teacher_with_another_normalisation_than_the_student_is_refused(synthetic_root, tmp_path):
    teacher = make_run(tmp_path / "a", member(0))
    cfg = student_config(synthetic_root, tmp_path / "run", [teacher])
    with pytest.raises(UsageError, match="has mean=.* but This run has 0.5; they must agree"):
        build_teacher(cfg, member(2, mean=0.5))


def test_a_resumed_run_whose_teacher_changed_is_refused(synthetic_root, tmp_path):
    teacher = make_run(tmp_path / "a", member(0))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "teacher.json").write_text('{"id": "0123456789ab"}')
    cfg = student_config(synthetic_root, run_dir, [teacher])
    cfg.resume = str(run_dir)
    with pytest.raises(UsageError, match="teacher's checkpoints changed since this run started"):
        build_teacher(cfg, member(2))


def test_a_distilled_run_records_its_teacher_and_predicts_without_it(synthetic_root, tmp_path):
    teachers = [make_run(tmp_path / "teachers" / str(s), member(s)) for s in (0, 1)]
    run_dir = tmp_path / "student"
    small = ("model.net.blocks=[[8]]", "model.net.dense=[16]", "~analysis")
    cfg = student_config(synthetic_root, run_dir, teachers, "trainer.max_epochs=1", *small)
    summary = train(cfg)

    checkpoints = [next((run / "checkpoints").glob("best-*.ckpt")) for run in teachers]
    recorded = summary["teacher"]
    assert json.loads((run_dir / "test_metrics.json").read_text())["teacher"] == recorded
    assert [row["sha256"] for row in recorded["members"]] == [
        hashlib.sha256(checkpoint.read_bytes()).hexdigest() for checkpoint in checkpoints
    ]
    assert [row["folder"] for row in recorded["members"]] == ["../teachers/0", "../teachers/1"]
    assert [row["fit_seconds"] for row in recorded["members"]] == [20.5, 20.5]
    assert recorded["fit_seconds"] == 41.0

    shutil.rmtree(tmp_path / "teachers")
    with pytest.raises(UsageError, match="No run folder or checkpoint file at"):
        train(tiny(synthetic_root, run_dir, f"resume={run_dir}"))  # it checks its teacher again
    student = load_module(next((run_dir / "checkpoints").glob("best-*.ckpt")))
    assert not any("teacher" in key for key in student.state_dict())
    images, _ = images_and_labels()
    probabilities = student.predict_step(images)
    assert probabilities.shape == (6, 10)
    assert torch.allclose(probabilities.sum(1), torch.ones(6))


class TrainingBatches(L.Callback):
    """Each training batch a fit saw, with its teacher's online output for that batch."""

    def __init__(self) -> None:
        self.seen: list[tuple[tuple, torch.Tensor]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append((batch, pl_module.teacher.probabilities(batch[0])))


@pytest.mark.parametrize(
    ("augment", "member_tta", "once"),
    [
        ("flip", {"flip": True}, True),  # the default recipe: an image and its mirror alike
        ("none", None, True),  # one view
        ("flip", None, False),  # a member without flip TTA tells mirror images apart
        ("standard", {"flip": True}, False),  # shifts
    ],
)
def test_the_teacher_runs_once_per_image_only_where_every_view_gets_its_output(
    synthetic_root, tmp_path, monkeypatch, augment, member_tta, once
):
    slow = Teacher.probabilities_of  # a pass of 2 s more: it must count in the fit's seconds
    monkeypatch.setattr(Teacher, "probabilities_of", lambda *a: time.sleep(2) or slow(*a))
    teachers = [make_run(tmp_path / "t" / str(s), member(s, tta=member_tta)) for s in (0, 1)]
    small = ("model.net.blocks=[[8]]", "model.net.dense=[16]", "~analysis", "trainer.max_epochs=1")
    cfg = student_config(
        synthetic_root, tmp_path / "student", teachers, f"data/augment={augment}", *small
    )
    batches = TrainingBatches()
    train(cfg, [batches])

    assert batches.seen and all(len(batch) == (3 if once else 2) for batch, _ in batches.seen)
    if once:  # what it carries is what the teacher makes of the augmented images
        assert pd.read_csv(tmp_path / "student" / "metrics.csv")["elapsed_seconds"].min() > 2
        for (images, _, carried), online in batches.seen:
            assert carried.shape == (len(images), 10)
            assert torch.allclose(carried, online, atol=1e-6)


def write_student(folder: Path, seed: int, teacher: str | None, teacher_id: str, fit=None) -> None:
    """A finished run's records, as the command line leaves them; distilled from ``teacher``
    (``teacher_id``, its members' fits together ``fit``) unless that is None."""
    (folder / ".hydra").mkdir(parents=True)
    if teacher is None:
        (folder / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n")
        (folder / ".hydra" / "config.yaml").write_text(f"seed: {seed}\n")
        (folder / "config.yaml").write_text(f"seed: {seed}\n")
        (folder / "test_metrics.json").write_text('{"test_acc": 0.8}')
        return
    overrides = ["distill=soft", f"distill.teacher={teacher}", f"seed={seed}"]
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    config = f"seed: {seed}\ndistill:\n  teacher: {teacher}\n  alpha: 0.9\n"
    (folder / ".hydra" / "config.yaml").write_text(config)
    (folder / "config.yaml").write_text(config)
    (folder / "metrics.csv").write_text("epoch,step,val_acc,elapsed_seconds\n0,9,0.9,10\n")
    record = {"id": teacher_id, "fit_seconds": fit}
    (folder / "test_metrics.json").write_text(json.dumps({"test_acc": 0.9, "teacher": record}))
    (folder / "teacher.json").write_text(json.dumps(record))


@pytest.mark.parametrize("read", [read_run, read_validation_run])
def test_results_label_runs_with_different_teachers_as_different_configurations(tmp_path, read):
    write_student(tmp_path / "0", 0, "/runs/teachers-a", "aaaaaaaaaaaa")
    write_student(tmp_path / "1", 1, "/runs/teachers-a", "aaaaaaaaaaaa")
    write_student(tmp_path / "2", 0, "/runs/teachers-b", "bbbbbbbbbbbb")
    found, _, problems = find_runs([tmp_path], read)
    assert not problems
    labels = {run.folder.name: run.configuration for run in found}
    assert labels == {
        "0": "distill=soft distill.teacher=<path> teacher=aaaaaaaaaaaa",
        "1": "distill=soft distill.teacher=<path> teacher=aaaaaaaaaaaa",
        "2": "distill=soft distill.teacher=<path> teacher=bbbbbbbbbbbb",
    }


def test_results_show_each_teachers_fit_beside_its_students(tmp_path):
    write_student(tmp_path / "0", 0, "/runs/teachers-a", "aaaaaaaaaaaa", fit=4183.4)
    write_student(tmp_path / "1", 1, "/runs/teachers-a", "aaaaaaaaaaaa", fit=4183.4)
    write_student(tmp_path / "2", 0, "/runs/teachers-b", "bbbbbbbbbbbb")  # a fit not recorded
    write_student(tmp_path / "3", 0, None, "")
    found, _, _ = find_runs([tmp_path])
    rows = summarise(found).set_index("configuration")["teacher's fit (s)"]
    assert rows.to_dict() == {
        "`distill=soft distill.teacher=<path> teacher=aaaaaaaaaaaa`": "4183",
        "`distill=soft distill.teacher=<path> teacher=bbbbbbbbbbbb`": "?",
        "`default`": "",
    }
    write_student(tmp_path / "undistilled" / "4", 1, None, "")
    found, _, _ = find_runs([tmp_path / "undistilled"])
    assert "teacher's fit (s)" not in summarise(found)


def test_a_distilled_row_is_reproduced_by_its_overrides_not_its_teacher_id(tmp_path):
    """``teacher=<id>`` labels the row; the command to re-run it holds only overrides."""
    write_student(tmp_path / "0", 0, "/runs/teachers-a", "aaaaaaaaaaaa", fit=10.0)
    write_student(tmp_path / "1", 1, "/runs/teachers-a", "aaaaaaaaaaaa", fit=10.0)
    found, _, _ = find_runs([tmp_path])
    text = results_markdown(found)
    assert "| `distill=soft distill.teacher=<path> teacher=aaaaaaaaaaaa` |" in text
    commands = [line for line in text.splitlines() if line.startswith("python -m")]
    assert commands == [
        "python -m fmnist_lightning.train -m distill=soft distill.teacher=<path> seed=0,1"
    ]
