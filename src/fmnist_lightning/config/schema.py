"""The schema of the configs, and every check of a composed config before any work.

The dataclasses below, first in the defaults list of conf/train.yaml (evaluate's and
ensemble's: config/checkpoint_commands.py), make OmegaConf refuse undeclared keys and wrong
types while composing; :func:`validate_config` checks what a type cannot say (ranges, HParams, cross-key rules,
``_target_`` arguments, the run folder). config/messages.py prints any of these in one line.
"""

import difflib
import inspect
import pydoc
from collections.abc import Iterator
from dataclasses import MISSING as NO_DEFAULT
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fmnist_lightning.config.paths import CONFIG_DIR
from fmnist_lightning.data.files import CLASS_NAMES
from fmnist_lightning.errors import UsageError
from fmnist_lightning.inference.output_files import unwritable
from fmnist_lightning.models.hparams import Bound, HParams, HyperparameterError, config_key
from fmnist_lightning.models.module import FashionMNISTModule
from fmnist_lightning.models.tta import TTA, TTAError

# Open nodes: a _target_ and its arguments (checked by signature), or entries of such nodes.
Node = dict[str, Any] | None


@dataclass
class Data:
    _target_: str = MISSING
    root: str = MISSING
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    val_fraction: float = MISSING
    split_seed: int | None = None
    shuffle_seed: int | None = None
    download: bool = True
    on_device: bool = True
    augment: Any = None  # a string is refused in cross_key_problems, with the fix


@dataclass
class Model:
    net: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    init_from: str | None = None


def with_hparams(base: type, prefix: str) -> type:
    """``base`` with a field for each module hyperparameter whose config key is
    ``<prefix><name>``: ``HParams`` declares it, its type and default, once."""
    extra = [
        (name, spec.type, field(default=MISSING if spec.default is NO_DEFAULT else spec.default))
        for spec in fields(HParams)
        if spec.metadata["key"].startswith(prefix)
        and (name := spec.metadata["key"].removeprefix(prefix))
        and "." not in name
        and name not in {declared.name for declared in fields(base)}
    ]
    return make_dataclass(base.__name__, extra, bases=(base,))


Data = with_hparams(Data, "data.")  # mean, std
Model = with_hparams(Model, "model.")  # channels_last, compile, head_lr


@dataclass
class Scheduler:
    interval: str = "epoch"
    schedule: Node = None


@dataclass
class Paths:
    root: str = MISSING
    run_dir: str = MISSING
    checkpoint_dir: str = MISSING


@dataclass
class TTASettings:
    flip: bool = False
    shift: int = 0


@dataclass
class Distill:
    teacher: Any = MISSING  # a run folder or .ckpt file, or a list of them
    temperature: float = MISSING
    alpha: float = MISSING


@dataclass
class Train:
    data: Data = field(default_factory=Data)
    model: Model = field(default_factory=Model)
    optimizer: dict[str, Any] = field(default_factory=dict)
    scheduler: Scheduler = field(default_factory=Scheduler)
    trainer: dict[str, Any] = field(default_factory=dict)
    callbacks: dict[str, Any] = field(default_factory=dict)
    logger: dict[str, Any] = field(default_factory=dict)
    paths: Paths = field(default_factory=Paths)
    analysis: Node = None
    tta: TTASettings | None = None
    distill: Distill | None = None
    hparams_search: Node = None  # the search command's space (conf/hparams_search/)
    seed: int = MISSING
    resume: str | None = None
    ckpt_path: str | None = None
    objective: str = MISSING
    float32_matmul_precision: str | None = None


Train = with_hparams(Train, "")  # label smoothing


# The first default of conf/train.yaml (those of evaluate and ensemble:
# config/checkpoint_commands.py). Registered on import: every command imports this module
# before Hydra composes its config.
ConfigStore.instance().store(name="train_schema", node=Train)


class ConfigValidationError(UsageError):
    """A config that cannot run: a key, a value out of range, settings that do not agree."""


class RunFolderError(UsageError):
    """A run folder that cannot be used as asked (already holds a run, or is not a run)."""

    prefix = ""  # its messages start with the setting concerned (resume=...)


# The ranges of the config's numbers (those of the module's hyperparameters are in HParams).
RANGES: dict[str, Bound] = {
    "seed": Bound(0, 2**32 - 1, integer=True),  # the range numpy's and Lightning's seeding accept
    "data.batch_size": Bound(1, integer=True),
    "data.eval_batch_size": Bound(1, integer=True),
    "data.val_fraction": Bound(0, 1, open_low=True, open_high=True),
    "data.augment.crop_padding": Bound(0, integer=True),
    "data.augment.flip_p": Bound(0, 1),
    "data.augment.erase_p": Bound(0, 1),
    # Not every network has dropout (e.g. a ResNet); where it has, it must be a probability < 1.
    "model.net.dropout": Bound(0, 1, open_high=True),
    "model.net.kernel_size": Bound(1, integer=True),
    "model.net.first_kernel_size": Bound(1, integer=True),
    "optimizer.lr": Bound(0, open_low=True),
    "optimizer.weight_decay": Bound(0),
    "trainer.max_epochs": Bound(1, integer=True),
    "trainer.check_val_every_n_epoch": Bound(1, integer=True),
    "distill.temperature": Bound(0, open_low=True),
    "distill.alpha": Bound(0, 1),
}


def range_problems(config: dict[str, Any], keys: tuple[str, ...] = tuple(RANGES)) -> list[str]:
    """The values out of range (keys the schema requires are there: it says MISSING)."""
    problems = []
    for key in keys:
        value: Any = config
        for part in key.split("."):
            value = value.get(part, KeyError) if isinstance(value, dict) else KeyError
        if value is not KeyError:
            problems.append(RANGES[key].problem(key, value))
    return problems


def argument_problems(value: Any, key: str) -> Iterator[str]:
    """Keys of a ``_target_`` node (and of those nested in it) that the target does not take,
    as ``instantiate`` would call it; the module checks its own three (``HParams``)."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from argument_problems(item, f"{key}[{index}]")
    if not isinstance(value, dict):
        return
    target = value.get("_target_")
    if isinstance(target, str) and key not in ("model.net", "optimizer", "scheduler.schedule"):
        try:
            found = pydoc.locate(target)
        except pydoc.ErrorDuringImport:
            found = None
        if not callable(found):
            yield f"{key}._target_={target!r} cannot be imported"
            return
        try:
            parameters = inspect.signature(found).parameters
        except (TypeError, ValueError):  # no signature to read (a builtin): anything goes
            parameters = None
        if parameters is not None and all(p.kind is not p.VAR_KEYWORD for p in parameters.values()):
            for argument in value:
                if not argument.startswith("_") and argument not in parameters:
                    close = difflib.get_close_matches(argument, sorted(parameters), n=1)
                    hint = f" (did you mean {key}.{close[0]}?)" if close else ""
                    yield f"{key}.{argument} is not an argument of {found.__name__}{hint}"
    for name, entry in value.items():
        yield from argument_problems(entry, f"{key}.{name}" if key else name)


def module_problem(config: DictConfig) -> str | None:
    """What FashionMNISTModule would refuse in its hyperparameters, with the config key named."""
    try:
        HParams.from_config(config, CLASS_NAMES)
    except HyperparameterError as error:
        key = config_key(error.key)
        message = str(error).replace(error.key, key, 1)
        if key == "model.net._target_":
            models = sorted(path.stem for path in (Path(CONFIG_DIR) / "model").glob("*.yaml"))
            message += f"; choose one of model={', model='.join(models)}"
        elif key == "tta":
            message += " (conf/tta/: none, flip, flip_shift)"
        return message
    return None


def monitor_problems(config: dict[str, Any]) -> list[str]:
    """Callbacks (EarlyStopping, ModelCheckpoint) that monitor a metric the module never logs
    while it trains: they would fail after the first epoch."""
    try:
        tta = TTA.of(config.get("tta")).enabled
    except TTAError:
        tta = False  # reported by the module's check
    metrics = FashionMNISTModule.logged_metrics("fit", tta=tta)
    return [
        f"callbacks.{name}.monitor={callback['monitor']!r} is not a metric the model logs in "
        f"training; monitor one of {', '.join(metrics)} (or null)"
        for name, callback in (config.get("callbacks") or {}).items()
        if isinstance(callback, dict) and callback.get("monitor") not in (None, *metrics)
    ]


def pick_preset(key: str, value: Any) -> str:
    """The fix for a group's preset chosen with a dot (``data.augment=standard``)."""
    return f"to pick the preset write {key.replace('.', '/')}={value} (a slash picks a config)"


def cross_key_problems(config: dict[str, Any]) -> Iterator[str]:
    """Settings that each are fine but do not work together, or with the data."""
    augment = (config.get("data") or {}).get("augment")
    if isinstance(augment, str):
        yield f"data.augment={augment!r} is a string, not a config; {pick_preset('data.augment', augment)}"
    model = config.get("model") or {}
    in_channels = (model.get("net") or {}).get("in_channels", 1)
    if in_channels != 1:
        yield f"model.net.in_channels={in_channels!r}: Fashion-MNIST images have 1 channel; set it to 1"
    if model.get("weights") and model.get("init_from"):
        yield "model.weights and model.init_from are both set: set one of them to null"
    distill = config.get("distill")
    if distill and distill.get("teacher") in (MISSING, None, "", []):
        yield "distill.teacher is not set: pass distill.teacher=<run folder> or a list of them"
    # Lightning validates after every n-th epoch and adds no validation after the last one:
    # with n = 2 and 3 epochs, the checkpoint chosen on val_acc and tested could never come
    # from the third epoch, and its time to accuracy would not be measured.
    trainer = config.get("trainer") or {}
    every, epochs = trainer.get("check_val_every_n_epoch"), trainer.get("max_epochs")
    numbers = isinstance(every, int) and isinstance(epochs, int) and every >= 1 and epochs >= 1
    if numbers and not trainer.get("fast_dev_run") and epochs % every:
        yield (
            f"trainer.check_val_every_n_epoch={every} does not divide trainer.max_epochs={epochs}: the last "
            f"{epochs % every} epoch(s) would never be validated; set trainer.max_epochs to a multiple of {every}"
        )


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
    why = unwritable(next(p for p in (run_dir, *run_dir.parents) if p.exists()))
    fix = f"set {key} to a folder you may write" + (f", e.g. {key}={example}" if example else "")
    return f"the {what} '{run_dir}' cannot be created: {why}; {fix}" if why else None


def resumed_run_folder_problem(run_dir: Path | str) -> str | None:
    """Why a resumed run's folder cannot be written, with what to do: the folder is fixed
    (paths.root and paths.run_dir do not move it); None when it can be written."""
    return run_folder_problem(run_dir) and (
        f"the run folder '{run_dir}' cannot be written (a resumed run writes into its own folder); "
        f"chmod -R u+w '{run_dir}', or copy it (cp -r) to a folder you may write and resume the copy"
    )


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain data; an interpolation that cannot be resolved is found now."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as error:
        message = str(error).splitlines()[0]
        if "HydraConfig was not set" in message:  # composed in Python, not by the CLI
            message += " (outside the command line, pass paths.run_dir=<folder> as an override)"
        raise ConfigValidationError(
            f"Invalid config: {error.full_key or 'a value'} cannot be resolved: {message}"
        ) from error


def refuse(problems: list[str | None]) -> None:
    if found := [problem for problem in problems if problem]:
        raise ConfigValidationError("Invalid config: " + "; ".join(found))


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigValidationError listing every problem of a training config, in one line."""
    config = resolved(cfg)
    problems = range_problems(config)
    module = module_problem(cfg)
    # One problem per key: a value out of range needs no second message from the module.
    if module and not any(p and p.split("=")[0].split(" ")[0] in module for p in problems):
        problems.append(module)
    problems += [*cross_key_problems(config), *monitor_problems(config)]
    problems += argument_problems(config, "")
    run_dir = config.get("paths", {}).get("run_dir")
    folder_problem = resumed_run_folder_problem if config.get("resume") else run_folder_problem
    problems.append(folder_problem(run_dir) if run_dir else None)
    refuse(problems)
