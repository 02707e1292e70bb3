"""A distilled run's teacher (``distill=soft``), loaded and checked before any work, and its
record (``teacher.json``, copied into test_metrics.json): what taught the run and what it cost.

No leak, no mix-up: every member is a finished run (not one still training), trained on this
run's train/val split (else the teacher has seen this run's validation images), with weights
of its own (the ensemble command's member rules, analysis/members.py) and this run's
normalisation. A resumed run checks all of it again, and that its teacher's checkpoints are
still those it started with."""

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig, OmegaConf

from fmnist_lightning.analysis import members, run_files
from fmnist_lightning.data.augment import BatchAugment
from fmnist_lightning.errors import UsageError
from fmnist_lightning.models.distillation import Teacher
from fmnist_lightning.models.module import FashionMNISTModule, load_module


def teacher_paths(cfg: DictConfig) -> list[str]:
    """``distill.teacher``, one path or a list of them, as a list of strings (Hydra reads a
    folder named ``0`` as a number)."""
    teacher = OmegaConf.to_container(cfg.distill, resolve=True)["teacher"]
    return [str(path) for path in (teacher if isinstance(teacher, list) else [teacher])]


def check_split(runs: list[Path], split: dict[str, Any]) -> None:
    """Each member trained on the student's training images: ``split`` is the student's."""
    for run in runs:
        trained = members.run_split(run)
        if trained != split:
            on = "an unknown split (no config.yaml)" if trained is None else f"the split {trained}"
            raise UsageError(
                f"The teacher member {run} trained on {on} but this run on {split}; distil from "
                "runs trained with this run's data.val_fraction and data.split_seed."
            )


def teacher_record(checkpoints: list[Path], run_dir: Path) -> dict[str, Any]:
    """Each member's folder and checkpoint (relative to the run folder, so that a moved tree
    still reads), its checkpoint's SHA-256 and fit seconds; ``id``: the teacher's short hash,
    the same whatever the order of the members; ``fit_seconds``: their fits together."""
    rows = [
        {
            "folder": os.path.relpath(run_files.run_dir_of(checkpoint), run_dir),
            "checkpoint": os.path.relpath(checkpoint.resolve(), run_dir),
            "sha256": members.sha256(checkpoint),
            "fit_seconds": members.fit_seconds(checkpoint),
        }
        for checkpoint in checkpoints
    ]
    hashes = "\n".join(sorted(row["sha256"] for row in rows))
    fits = [row["fit_seconds"] for row in rows]
    return {
        "id": hashlib.sha256(hashes.encode()).hexdigest()[:12],
        "members": rows,
        "fit_seconds": None if None in fits else round(sum(fits), 1),
    }


def check_unchanged(record: dict[str, Any], cfg: DictConfig) -> None:
    """A resumed run's teacher is the one it started with (its teacher.json)."""
    recorded = Path(cfg.paths.run_dir) / run_files.TEACHER_JSON
    if not cfg.get("resume") or not recorded.is_file():
        return
    before = run_files.read_json(recorded)["id"]
    if before != record["id"]:
        raise UsageError(
            f"resume={cfg.resume}: the teacher's checkpoints changed since this run started "
            f"(teacher {before}, now {record['id']}); put the original ones back, or start a new run."
        )


def build_teacher(cfg: DictConfig, student: FashionMNISTModule) -> tuple[Teacher, dict[str, Any]]:
    """The teacher of ``cfg.distill`` for ``student``, and its record; refusals before any work."""
    checkpoints = members.distinct_checkpoints(teacher_paths(cfg), "distill.teacher")
    runs = [run_files.run_dir_of(checkpoint) for checkpoint in checkpoints]
    for run in runs:
        members.check_finished(run)
    check_split(runs, members.data_split(cfg.data))
    record = teacher_record(checkpoints, Path(cfg.paths.run_dir).resolve())
    check_unchanged(record, cfg)
    modules = [load_module(checkpoint) for checkpoint in checkpoints]
    members.check_members(modules, checkpoints)
    members.check_shared_hparams([student, *modules], ["This run", *checkpoints])
    return Teacher(modules, cfg.distill.temperature, cfg.distill.alpha), record


def same_for_every_view(augment: BatchAugment | None, teacher: Teacher) -> bool:
    """Whether the teacher gives a training image one distribution whatever view of it the
    student's augmentation draws: with no augmentation, or with flips alone and members whose
    TTA views include the mirror images (an image's views and its mirror image's are then the
    same set)."""
    if augment is None or not augment.enabled:
        return True
    only_flips = not augment.erase and not (augment.crop and augment.crop_padding > 0)
    return only_flips and all(member.tta.flip for member in teacher.members)


class TeacherOncePerImage(L.Callback):
    """Moves the teacher to the training device, once, as fitting sets up. Where
    ``same_for_every_view``, it also computes the teacher's probabilities of the training
    images then (after the data's setup, before any training loader), as the training step
    would (its precision), and the training batches carry them: the online teacher's loss
    without its passes in every epoch (the default recipe: flips, members with flip TTA).
    Otherwise (shifts, erasing) the teacher runs online, on each augmented batch. A callback
    after the run's own: its pass counts in the fit's seconds (``TimeToAccuracy`` starts
    them at its setup)."""

    def setup(self, trainer: L.Trainer, pl_module: FashionMNISTModule, stage: str) -> None:
        if stage != "fit":
            return
        datamodule, teacher = trainer.datamodule, pl_module.teacher
        device = trainer.strategy.root_device
        teacher.to(device)
        if not same_for_every_view(datamodule.augment, teacher):
            return
        start, images = time.perf_counter(), datamodule.tensors["train"].tensors[0]
        with trainer.precision_plugin.train_step_context():
            probabilities = teacher.probabilities_of(images.to(device), datamodule.eval_batch_size)
        datamodule.carry_in_training_batches(probabilities)
        seconds = time.perf_counter() - start
        rank_zero_info(
            f"Teacher: {len(images):,} training images, computed once in {seconds:.0f} s"
        )
