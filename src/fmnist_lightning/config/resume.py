"""The resumed run's config: the run ``resume=`` points at, and the settings it continues with.

``resume=RUN_DIR`` (or ``resume=RUN_DIR/checkpoints/x.ckpt``, or ``ckpt_path=`` a checkpoint
inside a run folder) makes Hydra's run folder that run's folder (the ``run_folder``
resolver) and reloads the run's saved ``config.yaml`` (:func:`config_to_run`).

A run folder may be copied or moved: the paths that its config holds under the folder where
it was written are re-rooted onto the folder being resumed (:func:`relocated`).

A resumed run is the same experiment: of the overrides typed next to ``resume=`` only those
of :data:`RESUMABLE_KEYS` may change a value (how long it trains, progress, logging, the
end-of-run analysis, where the data is read from); any other change is refused before
anything runs, and so is a longer or shorter run whose schedule has a fixed length (one-cycle).
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import Container, DictConfig, OmegaConf

from fmnist_lightning.analysis import run_files
from fmnist_lightning.errors import UsageError

LAST_CHECKPOINT_FILE = f"{run_files.LAST_CHECKPOINT}.ckpt"
# Settings that say where to resume from; they are not copied over the saved config.
RESUME_KEYS = ("resume", "ckpt_path")
# What a resumed run may change (a key and the keys below it), by what it is about.
# Everything else (the data and its split, the network, the optimiser and its schedule,
# the seed, the callbacks) is the experiment that the checkpoint belongs to.
RESUMABLE_KEYS: dict[str, tuple[str, ...]] = {
    "how long it trains": ("trainer.max_epochs",),
    "progress": ("trainer.enable_progress_bar", "callbacks.progress_bar"),
    "logging": ("trainer.log_every_n_steps", "trainer.enable_model_summary"),
    "the end-of-run analysis": ("analysis",),
    "where the data is read from": ("data.root", "data.download", "data.on_device"),
}
# Overrides that do not touch the saved config: Hydra's own settings, and paths.root (a
# resumed run stays in its folder).
IGNORED_ON_RESUME = ("hydra", "paths.root")


class RunFolderError(UsageError):
    """A run folder that cannot be used as asked (already holds a run, or is not a run)."""

    prefix = ""  # its messages start with the setting concerned (resume=...)


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


def resume_point_or_none(resume: str | None, ckpt_path: str | None) -> ResumePoint | None:
    """``resume_point``, or None for a bad ``resume=`` too: Hydra resolves its run folder before
    the app runs and would print a stack trace; a bad resume= gets a new folder, and train()
    then stops with the clear error."""
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


def _command_line_overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def under(key: str, prefixes: tuple[str, ...]) -> bool:
    """``key`` is one of ``prefixes`` or lies below one (``analysis.seed`` under ``analysis``)."""
    return any(key == p or key.startswith((f"{p}.", f"{p}/")) for p in prefixes)


def may_change(key: str) -> bool:
    return under(key, tuple(k for keys in RESUMABLE_KEYS.values() for k in keys))


def resumable_keys_sentence() -> str:
    """The keys a resumed run may change, in words, for the messages and the docs."""
    parts = [
        keys[0] + f" ({what})" if len(keys) == 1 else f"{what} ({', '.join(keys)})"
        for what, keys in RESUMABLE_KEYS.items()
    ]
    return "A resumed run may change only " + ", ".join(parts[:-1]) + " and " + parts[-1]


def plain_value(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, Container) else node


def delete(config: DictConfig, key: str) -> None:
    parent_key, _, name = key.rpartition(".")
    parent = OmegaConf.select(config, parent_key) if parent_key else config
    if isinstance(parent, DictConfig) and name in parent:
        del parent[name]


def apply_overrides(saved: DictConfig, overrides: list[Override]) -> list[str]:
    """Apply the overrides that keep the experiment; return those that would change it."""
    refused = []
    for override in overrides:
        key = override.key_or_group
        if key in RESUME_KEYS or under(key, IGNORED_ON_RESUME):
            continue
        current = OmegaConf.select(saved, key)
        if override.is_delete():
            if current is not None and not may_change(key):
                refused.append(override.input_line)
            elif current is not None:
                delete(saved, key)
            continue
        value = override.value()
        if isinstance(current, DictConfig) and isinstance(value, str):
            raise RunFolderError(
                f"'{override.input_line}' changes a whole config group, which a resumed run "
                "cannot do (its weights and optimiser state belong to its saved settings). "
                "Start a new run for different settings."
            )
        if plain_value(current) == value:
            continue  # the value the run already has: nothing changes
        if not may_change(key):
            refused.append(override.input_line)
            continue
        OmegaConf.update(saved, key, value, force_add=True)
    return refused


def schedule_length_problem(saved: DictConfig, epochs_before: Any) -> str | None:
    """A changed trainer.max_epochs that the run's schedule cannot follow, in words."""
    epochs = OmegaConf.select(saved, "trainer.max_epochs")
    schedule = OmegaConf.select(saved, "scheduler.schedule")
    if epochs == epochs_before or not isinstance(schedule, DictConfig):
        return None
    if schedule.get("total_steps") is None and schedule.get("epochs") is None:
        return None  # a schedule without a length (a constant rate, step decay...) goes on
    name = "one-cycle" if "OneCycle" in str(schedule.get("_target_")) else "learning-rate"
    return (
        f"'trainer.max_epochs={epochs}': this run's {name} schedule "
        f"({schedule.get('_target_')}) was laid out for the {epochs_before} epochs it started "
        "with, and a resumed run keeps its schedule (its state is in the checkpoint). Resume "
        f"with trainer.max_epochs={epochs_before}, or start a new run; a run with "
        "scheduler=none can be resumed for longer."
    )


def relink_analysis(saved: DictConfig) -> None:
    """The analysis callback's settings follow the ``analysis`` group again (``~analysis``:
    none), as ``${oc.select:analysis,null}`` does in conf/callbacks/default.yaml; the saved
    config holds them resolved, so an override of ``analysis`` would not reach them."""
    callback = OmegaConf.select(saved, "callbacks.test_analysis")
    if isinstance(callback, DictConfig) and "settings" in callback:
        callback.settings = plain_value(saved.get("analysis"))


def rerooted(value: Any, old: str, new: str) -> Any:
    """``value`` with every path string under the folder ``old`` moved under ``new`` (the keys
    and values of dicts, the items of lists); anything else as it is."""
    if isinstance(value, str) and (value == old or value.startswith(old + os.sep)):
        return new + value[len(old) :]
    if isinstance(value, dict):
        return {rerooted(k, old, new): rerooted(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [rerooted(item, old, new) for item in value]
    return value


def relocated(saved: DictConfig, run_dir: Path) -> DictConfig:
    """The saved config of a run now in ``run_dir``: config.yaml holds absolute paths (the
    checkpoint and logger folders...) under the folder the run was written in, which a copied
    or moved run must not write to."""
    old = str(OmegaConf.select(saved, "paths.run_dir") or "").rstrip(os.sep)
    if not old or os.path.realpath(old) == os.path.realpath(run_dir):
        return saved
    return OmegaConf.create(rerooted(OmegaConf.to_container(saved), old, os.path.abspath(run_dir)))


def config_to_run(cfg: DictConfig) -> DictConfig:
    """The config a run uses: as composed for a fresh run; for a resume, the run's saved config.

    Overrides typed next to ``resume=`` that change a key of :data:`RESUMABLE_KEYS`
    (``trainer.max_epochs=20``, ``~analysis``) are applied over the saved config, as are
    those that repeat a saved value; any other change, a changed config group
    (``optimizer=adam``) and a new length for a schedule of fixed length are refused.
    """
    point = resume_point(cfg.get("resume"), cfg.get("ckpt_path"))
    if point is None:
        return cfg
    saved = relocated(OmegaConf.load(point.run_dir / run_files.CONFIG_YAML), point.run_dir)
    epochs_before = OmegaConf.select(saved, "trainer.max_epochs")
    overrides = OverridesParser.create().parse_overrides(_command_line_overrides())
    refused = apply_overrides(saved, overrides)
    if refused:
        raise RunFolderError(
            f"resume={point.run_dir}: {', '.join(repr(o) for o in refused)} would change the "
            f"experiment that this run's checkpoint belongs to. {resumable_keys_sentence()}; "
            "start a new run for other settings."
        )
    problem = schedule_length_problem(saved, epochs_before)
    if problem:
        raise RunFolderError(f"resume={point.run_dir}: {problem}")
    relink_analysis(saved)
    saved.resume = str(point.run_dir)
    saved.ckpt_path = str(point.checkpoint)
    saved.paths.run_dir = str(point.run_dir)
    return saved
