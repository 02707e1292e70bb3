"""Check a composed training config before any work: values in range, a model that exists.

Unknown keys never get this far: Hydra composes in struct mode, so a typo such as
``data.batchsize=64`` stops at start-up with "Key 'batchsize' is not in struct" (``+key=value``
adds a key on purpose). What struct mode cannot see is a known key with a bad value, and
that is what this schema checks.

The schema is a set of dataclasses, one per config group, whose fields are the keys that
have an allowed range. It is deliberately *not* registered in Hydra's ConfigStore as the
schema of the whole config: that would make every key of every group part of one closed
schema, so adding a key to a YAML file (a new callback, an augmentation setting) would also
mean editing this module. Keys without a range need no entry; to check a new one, add a
field with ``bounded(...)`` to the dataclass of its group.

It also answers a nested group set with a dot, ``data.augment=standard`` (the string
"standard" in place of the preset), for configs composed in Python; on the command line
``config.overrides`` catches it before Hydra runs. And before any work it checks what the
run would otherwise find out late: keys that nothing reads (``config.keys``: a typo inside a
preset), the hyperparameters FashionMNISTModule would refuse (``models.hparams``: a network
that is not the project's, an optimiser that is not torch's), a callback that monitors a
metric the module does not log, a validation schedule that skips the last epochs
(``config.trainer_checks``), a run folder that cannot be created.
"""

import math
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fmnist_lightning.config.keys import unknown_key_problems
from fmnist_lightning.config.model_checks import (
    model_problems,
    module_problem,
    monitor_problems,
    tta_problem,
)
from fmnist_lightning.config.paths import CONFIG_DIR
from fmnist_lightning.config.trainer_checks import validation_schedule_problem


class ConfigValidationError(ValueError):
    """A config value outside its allowed range, or a model that cannot be built."""


@dataclass(frozen=True)
class Range:
    """The allowed values of a number: bounds (None: unbounded), each inclusive or not."""

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True

    def __contains__(self, value: float) -> bool:
        if self.low is not None and not (
            value >= self.low if self.low_inclusive else value > self.low
        ):
            return False
        return self.high is None or (
            value <= self.high if self.high_inclusive else value < self.high
        )

    def __str__(self) -> str:
        low, high = number(self.low), number(self.high)
        if self.high is None:
            return f"{'>=' if self.low_inclusive else '>'} {low}"
        if self.low is None:
            return f"{'<=' if self.high_inclusive else '<'} {high}"
        opening, closing = "[" if self.low_inclusive else "(", "]" if self.high_inclusive else ")"
        return f"in {opening}{low}, {high}{closing}"


def number(value: float | None) -> str:
    """1 rather than 1.0, 4294967295 rather than 4.29497e+09, 0.001 as 0.001."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def bounded(
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    required: bool = True,
) -> Any:
    """A schema field: the key's allowed range; ``required=False`` skips the key where absent."""
    allowed = Range(low, high, low_inclusive, high_inclusive)
    return field(default=None, metadata={"range": allowed, "required": required})


# One dataclass per config group, named by ``group``; field types say int or float.
@dataclass
class TopLevelSchema:
    seed: int = bounded(0, 2**32 - 1)  # the range numpy's and Lightning's seeding accept
    label_smoothing: float = bounded(0, 1, high_inclusive=False, required=False)


@dataclass
class DataSchema:
    batch_size: int = bounded(1)
    eval_batch_size: int = bounded(1)
    val_fraction: float = bounded(0, 1, low_inclusive=False, high_inclusive=False)
    mean: float = bounded(0, 1)  # of pixels in [0, 1]
    std: float = bounded(0, low_inclusive=False)


@dataclass
class ModelSchema:
    # Not every network has dropout (e.g. a ResNet); where it has, it must be a probability < 1.
    dropout: float = bounded(0, 1, high_inclusive=False, required=False)
    kernel_size: int = bounded(1, required=False)
    first_kernel_size: int = bounded(1, required=False)


@dataclass
class OptimizerSchema:
    lr: float = bounded(0, low_inclusive=False)
    weight_decay: float = bounded(0, required=False)


@dataclass
class TrainerSchema:
    max_epochs: int = bounded(1)
    check_val_every_n_epoch: int = bounded(1)


SCHEMAS: dict[str, type] = {
    "": TopLevelSchema,
    "data": DataSchema,
    "model.net": ModelSchema,
    "optimizer": OptimizerSchema,
    "trainer": TrainerSchema,
}


def first_line(error: object) -> str:
    """The first line of an error's message: the messages here stay on one line."""
    return next(iter(str(error).splitlines()), "")


def type_name(expected: type) -> str:
    return "an integer" if expected is int else "a number"


def check_value(key: str, value: Any, expected: type, allowed: Range) -> str | None:
    """A problem with one value, in words, or None when it is fine."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or (expected is int and not isinstance(value, int)):
        return f"{key}={value!r} must be {type_name(expected)} {allowed}"
    if not math.isfinite(value) or value not in allowed:
        return f"{key}={value!r} is out of range: it must be {allowed}"
    return None


def range_problems(cfg: DictConfig, groups: Iterable[str] = tuple(SCHEMAS)) -> list[str]:
    """Every key of the schema (of ``groups``) whose value is missing, of the wrong type or out
    of range."""
    problems = []
    for group in groups:
        schema = SCHEMAS[group]
        node = OmegaConf.select(cfg, group) if group else cfg
        for spec in fields(schema):
            key = f"{group}.{spec.name}" if group else spec.name
            if not isinstance(node, DictConfig) or spec.name not in node:
                if spec.metadata["required"]:
                    problems.append(
                        f"{key} is missing; it must be {type_name(spec.type)} {spec.metadata['range']}"
                    )
                continue
            problem = check_value(key, node[spec.name], spec.type, spec.metadata["range"])
            if problem:
                problems.append(problem)
    return problems


def nested_groups() -> list[str]:
    """Config groups inside another group's node, e.g. "data/augment" (not Hydra's own)."""
    root = Path(CONFIG_DIR)
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.glob("*/*")
        if path.is_dir() and path.parent.name != "hydra"
    )


def group_syntax_hint(key: str, value: Any) -> str:
    """What to write instead of ``data.augment=standard``: the group syntax, with a slash."""
    return (
        f"to pick the preset write {key.replace('.', '/')}={value} (a slash selects a config "
        "of a group; a dot sets one value)"
    )


def nested_group_problems(cfg: DictConfig) -> list[str]:
    """Nested groups set to a string (``data.augment=standard``) instead of a preset's config."""
    problems = []
    for group in nested_groups():
        key = group.replace("/", ".")
        value = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
        if isinstance(value, str):
            problems.append(
                f"{key}={value!r} is a string, not a config; {group_syntax_hint(key, value)}"
            )
    return problems


def run_folder_problem(
    run_dir: Path | str,
    key: str = "paths.run_dir",
    what: str = "run folder",
    example: str | None = "$HOME/fmnist-runs",
) -> str | None:
    """Why the run folder (or another folder, ``what``) cannot be created or written (its
    nearest existing folder is read-only, or a file is in the way), in words naming ``key``;
    None when it can."""
    run_dir = Path(run_dir).absolute()
    existing = next((p for p in (run_dir, *run_dir.parents) if p.exists()), None)
    if existing is None:
        return None
    fix = f"set {key} to a folder you may write" + (f", e.g. {key}={example}" if example else "")
    if not existing.is_dir():
        return f"the {what} '{run_dir}' cannot be created: '{existing}' is a file; {fix}"
    try:  # a real attempt: os.access says yes to root on a read-only filesystem
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".fmnist-write-check-"))
    except OSError as error:
        why = "is not writable" if isinstance(error, PermissionError) else f"({error.strerror})"
        return f"the {what} '{run_dir}' cannot be created: '{existing}' {why}; {fix}"
    return None


def resumed_run_folder_problem(run_dir: Path | str) -> str | None:
    """Why a resumed run's folder cannot be written, with what to do: the folder is fixed
    (paths.root and paths.run_dir do not move it); None when it can be written."""
    if run_folder_problem(run_dir) is None:
        return None
    return (
        f"the run folder '{run_dir}' cannot be written, and a resumed run writes into its own "
        f"folder; make it writable (chmod -R u+w '{run_dir}'), or copy it to a folder you may "
        "write (cp -r) and resume the copy"
    )


def resolution_problem(cfg: DictConfig) -> str | None:
    """An interpolation (``${...}``) that cannot be resolved, found now rather than mid-run."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        message = first_line(error)
        if "HydraConfig was not set" in message:  # composed in Python, not by the CLI
            message += " (outside the command line, pass paths.run_dir=<folder> as an override)"
        return f"{error.full_key or 'a value'} cannot be resolved: {message}"
    return None


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigValidationError listing every problem of the config, in one line."""
    unresolvable = resolution_problem(cfg)
    if unresolvable:  # the checks below would trip on the same interpolation
        raise ConfigValidationError(f"Invalid config: {unresolvable}")
    config = OmegaConf.to_container(cfg, resolve=True)
    problems = nested_group_problems(cfg)
    problems += range_problems(cfg)
    module = module_problem(config)
    # One problem per key: a value out of range needs no second message from the module.
    if module and not any(p.startswith((f"{module[0]}=", f"{module[0]} ")) for p in problems):
        problems.append(module[1])
    problems += model_problems(config)
    problems.append(tta_problem(config))
    problems += monitor_problems(config)
    problems.append(validation_schedule_problem(config))
    problems += unknown_key_problems(config)
    run_dir = OmegaConf.select(cfg, "paths.run_dir")
    folder_problem = resumed_run_folder_problem if cfg.get("resume") else run_folder_problem
    problems.append(folder_problem(run_dir) if run_dir else None)
    problems = [problem for problem in problems if problem]
    if problems:
        raise ConfigValidationError("Invalid config: " + "; ".join(problems))


# The groups of the evaluate and ensemble configs that the schema checks (it has no model or trainer).
EVALUATE_GROUPS = ("", "data")


def validate_evaluate_config(cfg: DictConfig) -> None:
    """Raise ConfigValidationError listing every problem of an evaluate config, in one line:
    no ckpt_path, values out of range (``data.eval_batch_size=0``), keys nothing reads."""
    missing = None
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.get("ckpt_path"):
        missing = (
            "ckpt_path is required: pass the .ckpt file to evaluate, e.g. "
            "ckpt_path=lightning_logs/runs/<run>/checkpoints/last.ckpt"
        )
    validate_checkpoint_command(cfg, "evaluate", missing)


def validate_ensemble_config(cfg: DictConfig) -> None:
    """Raise ConfigValidationError listing every problem of an ensemble config, in one line:
    fewer than two members, values out of range, keys nothing reads."""
    members = None if OmegaConf.is_missing(cfg, "members") else cfg.get("members")
    missing = None
    if not isinstance(members, ListConfig) or len(members) < 2:
        missing = (
            "members must list two or more run folders or .ckpt files, e.g. "
            "'members=[lightning_logs/sweeps/<sweep>/0,lightning_logs/sweeps/<sweep>/1]'"
        )
    validate_checkpoint_command(cfg, "ensemble", missing)


def validate_checkpoint_command(cfg: DictConfig, config_name: str, missing: str | None) -> None:
    """The checks shared by the commands that read checkpoints (no model or trainer groups):
    ``missing`` (what names the checkpoints is absent or wrong), ranges, unknown keys."""
    problems = [missing] if missing else []
    unresolvable = resolution_problem(cfg)
    if unresolvable:
        raise ConfigValidationError("Invalid config: " + "; ".join([*problems, unresolvable]))
    problems += nested_group_problems(cfg)
    problems += range_problems(cfg, EVALUATE_GROUPS)
    problems += unknown_key_problems(OmegaConf.to_container(cfg, resolve=True), config_name)
    if problems:
        raise ConfigValidationError("Invalid config: " + "; ".join(problems))
