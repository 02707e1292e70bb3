"""A resumed run: where it is (the run ``resume=`` or ``ckpt_path=`` points at), and the
settings it continues with, its saved config and the overrides it may take.

A resumed run is the same experiment: of the overrides typed next to ``resume=`` only those
of :data:`RESUMABLE_KEYS` may change a value; any other change is refused before anything
runs, and so is a new length for a schedule of fixed length (one-cycle).
"""

import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf

from fmnist_lightning.analysis import run_files
from fmnist_lightning.config.overrides import parse_overrides
from fmnist_lightning.config.schema import RunFolderError
from fmnist_lightning.models.hparams import plain

LAST_CHECKPOINT_FILE = f"{run_files.LAST_CHECKPOINT}.ckpt"
# What a resumed run may change (a key and the keys below it), by what it is about; the
# rest is the experiment that the checkpoint belongs to.
RESUMABLE_KEYS: dict[str, tuple[str, ...]] = {
    "how long it trains": ("trainer.max_epochs",),
    "progress": ("trainer.enable_progress_bar", "callbacks.progress_bar"),
    "logging": ("trainer.log_every_n_steps", "trainer.enable_model_summary"),
    "the end-of-run analysis": ("analysis",),
    "where the data is read from": ("data.root", "data.download", "data.on_device"),
}
# What to do instead, in the messages refusing a resume= or a change to a resumed run.
PASS_A_RUN = "pass a run folder (resume=lightning_logs/runs/<run>) or one of its checkpoints"
NEW_RUN = "start a new run for other settings"


def _run_of(checkpoint: Path) -> Path | None:
    """The run folder that holds ``checkpoint`` in its checkpoints/, or None."""
    run_dir = checkpoint.parent.parent
    in_run = checkpoint.parent.name == run_files.CHECKPOINT_DIR
    return run_dir if in_run and (run_dir / run_files.CONFIG_YAML).is_file() else None


def resume_point(resume: str | None, ckpt_path: str | None) -> tuple[Path, Path] | None:
    """(run folder, checkpoint) where ``resume`` / ``ckpt_path`` point; None for a fresh run
    (``ckpt_path`` outside a run folder too: a new run starts from that state)."""
    if not resume:
        run_dir = _run_of(Path(ckpt_path)) if ckpt_path else None
        return (run_dir, Path(ckpt_path)) if run_dir else None
    path = Path(resume)
    if path.is_dir():
        checkpoint = path / run_files.CHECKPOINT_DIR / LAST_CHECKPOINT_FILE
        if not _run_of(checkpoint) or not checkpoint.is_file():
            raise RunFolderError(
                f"resume={resume}: this folder holds no run to continue (no {run_files.CONFIG_YAML} "
                f"or {run_files.CHECKPOINT_DIR}/{LAST_CHECKPOINT_FILE}); {PASS_A_RUN}"
            )
        return path, checkpoint
    if path.is_file():
        if _run_of(path):
            return path.parent.parent, path
        raise RunFolderError(
            f"resume={resume}: this checkpoint is not inside a run folder (<run>/checkpoints/); "
            f"to start a new run from it use ckpt_path={resume}"
        )
    raise RunFolderError(f"resume={resume}: no such folder or file; {PASS_A_RUN}")


def rerooted(value: Any, old: str, new: str) -> Any:
    """``value`` with every path string under the folder ``old`` moved under ``new``."""
    if isinstance(value, str) and (value == old or value.startswith(old + os.sep)):
        return new + value[len(old) :]
    if isinstance(value, dict):
        return {rerooted(k, old, new): rerooted(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [rerooted(item, old, new) for item in value]
    return value


def under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith((f"{p}.", f"{p}/")) for p in prefixes)


def resumable_keys_sentence() -> str:
    parts = [
        keys[0] + f" ({what})" if len(keys) == 1 else f"{what} ({', '.join(keys)})"
        for what, keys in RESUMABLE_KEYS.items()
    ]
    return "A resumed run may change only " + ", ".join(parts[:-1]) + " and " + parts[-1]


def apply_overrides(saved: DictConfig, overrides: list[Override]) -> list[str]:
    """Apply the overrides that keep the experiment; return those that would change it."""
    refused = []
    for override in overrides:
        key = override.key_or_group
        if under(key, ("resume", "ckpt_path", "hydra", "paths.root")):
            continue  # they do not touch the saved config (a resumed run stays in its folder)
        current = OmegaConf.select(saved, key)
        if override.is_delete() and current is None:
            continue  # nothing to delete
        value = None if override.is_delete() else override.value()
        if isinstance(current, DictConfig) and isinstance(value, str):
            # The run's weights and optimiser state belong to the configs it started with.
            raise RunFolderError(
                f"'{override.input_line}' changes a whole config group, which a resumed run cannot do; {NEW_RUN}"
            )
        if plain(current) == value:
            continue  # the value the run already has: nothing changes
        if not under(key, tuple(k for keys in RESUMABLE_KEYS.values() for k in keys)):
            refused.append(override.input_line)
        elif override.is_delete():
            parent_key, _, name = key.rpartition(".")
            del OmegaConf.select(saved, parent_key)[name]  # "" selects the root
        else:
            OmegaConf.update(saved, key, value, force_add=True)
    return refused


def refuse_new_schedule_length(saved: DictConfig, epochs_before: Any, run_dir: Path) -> None:
    """Refuse a changed trainer.max_epochs that the run's schedule cannot follow."""
    epochs = OmegaConf.select(saved, "trainer.max_epochs")
    schedule = OmegaConf.select(saved, "scheduler.schedule")
    if epochs == epochs_before or not isinstance(schedule, DictConfig):
        return
    if schedule.get("total_steps") is None and schedule.get("epochs") is None:
        return  # a schedule without a length (a constant rate, step decay...) goes on
    name = "one-cycle" if "OneCycle" in str(schedule.get("_target_")) else "learning-rate"
    # A resumed run keeps its schedule: its state is in the checkpoint.
    raise RunFolderError(
        f"resume={run_dir}: 'trainer.max_epochs={epochs}': this run's {name} schedule is laid out for {epochs_before} "
        f"epoch(s); resume with trainer.max_epochs={epochs_before} (only a run with scheduler=none can be resumed for longer)"
    )


def _command_line_overrides() -> list[str]:
    return HydraConfig.get().overrides.task if HydraConfig.initialized() else []


def config_to_run(cfg: DictConfig) -> DictConfig:
    """The config a run uses: as composed for a fresh run; for a resume, the run's saved
    config with the overrides typed on the command line that it allows applied."""
    point = resume_point(cfg.get("resume"), cfg.get("ckpt_path"))
    if point is None:
        return cfg
    run_dir, checkpoint = point
    saved = OmegaConf.load(run_dir / run_files.CONFIG_YAML)
    # A copied or moved run must not write to the absolute paths under the folder it was
    # written in.
    old = str(OmegaConf.select(saved, "paths.run_dir") or "").rstrip(os.sep)
    new = os.path.abspath(run_dir)
    if old and os.path.realpath(old) != os.path.realpath(new):
        saved = OmegaConf.create(rerooted(OmegaConf.to_container(saved), old, new))
    epochs_before = OmegaConf.select(saved, "trainer.max_epochs")
    typed = parse_overrides(_command_line_overrides())
    if refused := apply_overrides(saved, typed):
        raise RunFolderError(
            f"resume={run_dir}: {', '.join(map(repr, refused))} would change this run's experiment; "
            f"{resumable_keys_sentence()}; {NEW_RUN}"
        )
    refuse_new_schedule_length(saved, epochs_before, run_dir)
    # The analysis callback's settings follow ``analysis`` again, as in
    # conf/callbacks/default.yaml: the saved config holds them resolved.
    callback = OmegaConf.select(saved, "callbacks.test_analysis")
    if isinstance(callback, DictConfig) and "settings" in callback:
        callback.settings = plain(saved.get("analysis"))
    saved.resume = str(run_dir)
    saved.ckpt_path = str(checkpoint)
    saved.paths.run_dir = str(run_dir)
    return saved
