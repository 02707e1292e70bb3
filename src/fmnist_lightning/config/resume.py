"""Where a resumed run is (the run ``resume=`` or ``ckpt_path=`` points at), for Hydra's
resolvers and for :func:`config_to_run`; its saved settings are config/resumed.py's."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fmnist_lightning.analysis import run_files
from fmnist_lightning.config.schema import RunFolderError

LAST_CHECKPOINT_FILE = f"{run_files.LAST_CHECKPOINT}.ckpt"


@dataclass(frozen=True)
class ResumePoint:
    run_dir: Path
    checkpoint: Path


def _run_of(checkpoint: Path) -> Path | None:
    """The run folder that holds ``checkpoint`` in its checkpoints/, or None."""
    run_dir = checkpoint.parent.parent
    in_run = checkpoint.parent.name == run_files.CHECKPOINT_DIR
    return run_dir if in_run and (run_dir / run_files.CONFIG_YAML).is_file() else None


def resume_point(resume: str | None, ckpt_path: str | None) -> ResumePoint | None:
    """Where ``resume`` / ``ckpt_path`` point; None for a fresh run (``ckpt_path`` outside a
    run folder too: a new run starts from that state)."""
    if not resume:
        run_dir = _run_of(Path(ckpt_path)) if ckpt_path else None
        return ResumePoint(run_dir, Path(ckpt_path)) if run_dir else None
    path = Path(resume)
    if path.is_dir():
        checkpoint = path / run_files.CHECKPOINT_DIR / LAST_CHECKPOINT_FILE
        if not _run_of(checkpoint) or not checkpoint.is_file():
            raise RunFolderError(
                f"resume={resume}: this folder holds no run to continue (expected "
                f"{run_files.CONFIG_YAML} and {run_files.CHECKPOINT_DIR}/{LAST_CHECKPOINT_FILE} in it). Pass the "
                "folder of a run that trained at least one epoch or was interrupted, e.g. "
                "resume=lightning_logs/runs/<run>, or a checkpoint: resume=<run>/checkpoints/<file>.ckpt"
            )
        return ResumePoint(path, checkpoint)
    if path.is_file():
        if _run_of(path):
            return ResumePoint(path.parent.parent, path)
        raise RunFolderError(
            f"resume={resume}: this checkpoint is not inside a run folder (<run>/checkpoints/), so "
            f"there is no run to continue. To start a new run from it use ckpt_path={resume}."
        )
    raise RunFolderError(
        f"resume={resume}: no such folder or file. Pass a run folder, e.g. "
        "resume=lightning_logs/runs/<run>, or one of its checkpoints."
    )


def resume_point_or_none(resume: str | None, ckpt_path: str | None) -> ResumePoint | None:
    """``resume_point``, or None for a bad ``resume=``: Hydra resolves the run folder before
    the app runs (a stack trace); train() then stops with the clear error."""
    try:
        return resume_point(resume, ckpt_path)
    except RunFolderError:
        return None


def run_folder(resume: str | None, ckpt_path: str | None, fresh: str) -> str:
    """Resolver for ``hydra.run.dir``: the resumed run's folder, else ``fresh`` (a new folder)."""
    point = resume_point_or_none(resume, ckpt_path)
    return str(point.run_dir) if point else fresh


def hydra_subdir(resume: str | None, ckpt_path: str | None, stamp: str) -> str:
    """Resolver for ``hydra.output_subdir``: a resumed run keeps its original ``.hydra`` files."""
    return f".hydra/resumed-{stamp}" if resume_point_or_none(resume, ckpt_path) else ".hydra"


def rerooted(value: Any, old: str, new: str) -> Any:
    """``value`` with every path string under the folder ``old`` moved under ``new``."""
    if isinstance(value, str) and (value == old or value.startswith(old + os.sep)):
        return new + value[len(old) :]
    if isinstance(value, dict):
        return {rerooted(k, old, new): rerooted(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [rerooted(item, old, new) for item in value]
    return value


def relocated(saved: DictConfig, run_dir: Path) -> DictConfig:
    """The saved config of a run now in ``run_dir``: a copied or moved run must not write to
    the absolute paths under the folder it was written in."""
    old = str(OmegaConf.select(saved, "paths.run_dir") or "").rstrip(os.sep)
    if not old or os.path.realpath(old) == os.path.realpath(run_dir):
        return saved
    return OmegaConf.create(rerooted(OmegaConf.to_container(saved), old, os.path.abspath(run_dir)))


def _command_line_overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def config_to_run(cfg: DictConfig) -> DictConfig:
    """The config a run uses: as composed for a fresh run; for a resume, the run's saved
    config with the allowed overrides applied."""
    point = resume_point(cfg.get("resume"), cfg.get("ckpt_path"))
    if point is None:
        return cfg
    # Imported here: only a resumed run needs it, and a plain run's start-up need not pay for it.
    from fmnist_lightning.config.resumed import continued

    saved = relocated(OmegaConf.load(point.run_dir / run_files.CONFIG_YAML), point.run_dir)
    return continued(saved, point.run_dir, point.checkpoint, _command_line_overrides())
