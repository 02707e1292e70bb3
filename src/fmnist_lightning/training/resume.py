"""Resume a run in its own folder, with its own settings.

``resume=RUN_DIR`` (or ``resume=RUN_DIR/checkpoints/x.ckpt``, or ``ckpt_path=`` a checkpoint
inside a run folder) makes Hydra's run folder that run's folder (the ``run_folder``
resolver), reloads the run's saved ``config.yaml`` (:func:`config_to_run`) and continues
training from the checkpoint. The pieces that make a resumed run continue exactly:
``callbacks.interrupt.GracefulInterrupt`` (``last.ckpt`` on Ctrl-C/SIGTERM),
``callbacks.random_state.RandomState`` (RNG states in checkpoints),
``loggers.AppendingCSVLogger`` (metrics.csv appended to) and ``run_folder`` (one folder per run).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from fmnist_lightning.analysis import run_files
from fmnist_lightning.models.checkpoint_file import read_checkpoint
from fmnist_lightning.training.run_folder import RunFolderError

LAST_CHECKPOINT_FILE = f"{run_files.LAST_CHECKPOINT}.ckpt"
# Settings that say where to resume from; they are not copied over the saved config.
RESUME_KEYS = ("resume", "ckpt_path")


@dataclass(frozen=True)
class ResumePoint:
    run_dir: Path
    checkpoint: Path


def _is_run_folder(path: Path) -> bool:
    return (path / run_files.CONFIG_YAML).is_file()


def resume_point(resume: str | None, ckpt_path: str | None) -> ResumePoint | None:
    """Where ``resume`` / ``ckpt_path`` point: a run folder and its checkpoint; None for a fresh run.

    ``ckpt_path`` outside a run folder is not a resume: a new run starts from that state.
    """
    if not resume:
        if ckpt_path and Path(ckpt_path).parent.name == run_files.CHECKPOINT_DIR:
            run_dir = Path(ckpt_path).parent.parent
            if _is_run_folder(run_dir):
                return ResumePoint(run_dir, Path(ckpt_path))
        return None
    path = Path(resume)
    if path.is_dir():
        checkpoint = path / run_files.CHECKPOINT_DIR / LAST_CHECKPOINT_FILE
        if not _is_run_folder(path) or not checkpoint.is_file():
            raise RunFolderError(
                f"resume={resume}: this folder holds no run to continue (expected "
                f"{run_files.CONFIG_YAML} and {run_files.CHECKPOINT_DIR}/{LAST_CHECKPOINT_FILE} in it). Pass the "
                "folder of a run that trained at least one epoch or was interrupted, e.g. "
                "resume=lightning_logs/runs/<run>, or a checkpoint: resume=<run>/checkpoints/<file>.ckpt"
            )
        return ResumePoint(path, checkpoint)
    if (
        path.is_file()
        and path.parent.name == run_files.CHECKPOINT_DIR
        and _is_run_folder(path.parent.parent)
    ):
        return ResumePoint(path.parent.parent, path)
    if path.is_file():
        raise RunFolderError(
            f"resume={resume}: this checkpoint is not inside a run folder (<run>/checkpoints/), so "
            f"there is no run to continue. To start a new run from it use ckpt_path={resume}."
        )
    raise RunFolderError(
        f"resume={resume}: no such folder or file. Pass a run folder, e.g. "
        "resume=lightning_logs/runs/<run>, or one of its checkpoints."
    )


def _resume_point_or_none(resume: str | None, ckpt_path: str | None) -> ResumePoint | None:
    # Hydra resolves its run folder before the app runs and would print a stack trace; a bad
    # resume= gets a new folder here, and train() then stops with the clear error.
    try:
        return resume_point(resume, ckpt_path)
    except RunFolderError:
        return None


def run_folder(resume: str | None, ckpt_path: str | None, fresh: str) -> str:
    """Resolver for ``hydra.run.dir``: the resumed run's folder, else ``fresh`` (a new folder)."""
    point = _resume_point_or_none(resume, ckpt_path)
    return str(point.run_dir) if point else fresh


def hydra_subdir(resume: str | None, ckpt_path: str | None, stamp: str) -> str:
    """Resolver for ``hydra.output_subdir``: a resumed run keeps its original ``.hydra`` files."""
    return f".hydra/resumed-{stamp}" if _resume_point_or_none(resume, ckpt_path) else ".hydra"


def _command_line_overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def config_to_run(cfg: DictConfig) -> DictConfig:
    """The config a run uses: as composed for a fresh run; for a resume, the run's saved config.

    Overrides typed next to ``resume=`` (``trainer.max_epochs=20``) are applied over the saved
    config; changing a config group (``optimizer=adam``) is refused.
    """
    point = resume_point(cfg.get("resume"), cfg.get("ckpt_path"))
    if point is None:
        return cfg
    saved = OmegaConf.load(point.run_dir / run_files.CONFIG_YAML)
    for override in OverridesParser.create().parse_overrides(_command_line_overrides()):
        key = override.key_or_group
        if key in RESUME_KEYS or override.is_delete():
            continue
        if isinstance(OmegaConf.select(saved, key), DictConfig):
            raise RunFolderError(
                f"'{override.input_line}' changes a whole config group, which a resumed run "
                "cannot do (its weights and optimiser state belong to its saved settings). "
                "Start a new run for different settings."
            )
        OmegaConf.update(saved, key, override.value(), force_add=True)
    saved.resume = str(point.run_dir)
    saved.ckpt_path = str(point.checkpoint)
    saved.paths.run_dir = str(point.run_dir)
    return saved


def starting_checkpoint(cfg: DictConfig) -> dict[str, Any] | None:
    """The checkpoint a run continues from (``ckpt_path``, which ``resume=`` sets too), read
    and checked by ``read_checkpoint`` before Lightning reads it; None for a fresh run.

    A missing file, a file that is not a checkpoint of this project, or one whose
    hyperparameters are not plain data stops the run here with a CheckpointError.
    """
    ckpt_path = cfg.get("ckpt_path")
    return read_checkpoint(ckpt_path) if ckpt_path else None
