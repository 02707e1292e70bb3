"""The hyperparameters of FashionMNISTModule: one frozen dataclass, checked once, stored as plain data.

A checkpoint may come from anywhere: :class:`HParams` accepts plain data only, and names in
``_target_`` only the project's networks, torch optimisers and torch schedules, checked by
name before anything is imported (the module builds them itself, no Hydra instantiate).
A new hyperparameter is one field here (its config key and check), its YAML key, and its use."""

import importlib
import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, NamedTuple

from omegaconf import Container, DictConfig, OmegaConf
from torch import optim
from torch.optim import Optimizer, lr_scheduler
from torch.optim.lr_scheduler import LRScheduler

from fmnist_lightning.errors import UsageError
from fmnist_lightning.models.registry import HEADED, NETWORKS

TARGET = "_target_"
# Hydra's instantiate reads these keys anywhere in a dict; in hyperparameters only the
# three class nodes below may hold one (_target_), and the module reads it, not Hydra.
RESERVED_KEYS = frozenset({TARGET, "_args_", "_partial_", "_recursive_", "_convert_"})
# Each class node and the argument the module passes its class itself.
SUPPLIED = {"net": "num_classes", "optimizer": "params", "scheduler.schedule": "optimizer"}
CLASS_NODES = ", ".join(f"{node}.{TARGET}" for node in SUPPLIED)
# The class nodes found in torch: (module, base class).
TORCH_NODES = {"optimizer": (optim, Optimizer), "scheduler.schedule": (lr_scheduler, LRScheduler)}
MAX_DEPTH = 12  # deeper than any real hyperparameter; keeps the check's recursion bounded


class HyperparameterError(UsageError):
    """Hyperparameters that this code will not build a model from; ``key`` names the culprit."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


def require(ok: bool, message: str, key: str) -> None:
    if not ok:
        raise HyperparameterError(message, key)


class Bound(NamedTuple):
    """The allowed values of a number: bounds (None: unbounded), open or closed; called as a
    field's check, it raises HyperparameterError (``optional``: None allowed too)."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    integer: bool = False
    optional: bool = False

    def __str__(self) -> str:
        low, high = (f"{v:.10g}" for v in (self.low or 0, self.high or 0))
        if self.high is None:
            return f"{'>' if self.open_low else '>='} {low}"
        return f"in {'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"

    def problem(self, key: str, value: Any) -> str | None:
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not is_number or (self.integer and not isinstance(value, int)):
            return f"{key}={value!r} must be {'an integer' if self.integer else 'a number'} {self}"
        low_ok = self.low is None or (value > self.low if self.open_low else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.open_high else value <= self.high)
        if not (math.isfinite(value) and low_ok and high_ok):
            return f"{key}={value!r} is out of range: it must be {self}"
        return None

    def __call__(self, key: str, value: Any) -> None:
        problem = None if self.optional and value is None else self.problem(key, value)
        require(problem is None, str(problem), key)


def child(key: str, name: str) -> str:  # net.blocks (a list's entry: net.blocks[0])
    return f"{key}.{name}" if key else name


def check_plain(value: Any, key: str, depth: int = 0) -> None:
    """Only plain values, with string keys and no reserved key except a class node's _target_."""
    require(depth <= MAX_DEPTH, f"{key} is nested more than {MAX_DEPTH} levels deep", key)
    if isinstance(value, dict):
        for name, entry in value.items():
            require(isinstance(name, str), f"{key} has a key that is not a string ({name!r})", key)
            where = child(key, name)
            reserved = name in RESERVED_KEYS and not (name == TARGET and key in SUPPLIED)
            require(not reserved, f"{where} is not allowed: only {CLASS_NODES} name a class", where)
            check_plain(entry, where, depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, entry in enumerate(value):
            check_plain(entry, f"{key}[{index}]", depth + 1)
    else:
        plain = value is None or isinstance(value, (bool, int, float, str))
        kinds = "None, a bool, number, string, list or dict"
        require(plain, f"{key} holds a {type(value).__name__}, not {kinds}", key)


def arguments(node: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in node.items() if name != TARGET}


def load_class(target: str) -> type:
    """The class ``package.module.Name`` imported, unchecked: for names ``class_of`` allowed."""
    module_name, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module_name), name)


def class_of(key: str, node: Any) -> type:
    """The class a class node (``key``: one of ``SUPPLIED``) names, its arguments checked against
    its signature: a network of ``NETWORKS``, or a torch class found by name (nothing imported)."""
    named = isinstance(node, dict) and isinstance(node.get(TARGET), str)
    require(named, f"{key} must be a dict with a {TARGET} string", key)
    target, where = node[TARGET], child(key, TARGET)
    if key == "net":
        message = f"{where}={target!r} is not a network of this project; expected one of "
        require(target in NETWORKS, message + ", ".join(sorted(NETWORKS)), where)
        cls = load_class(target)  # allowed: import it now
    else:
        module, base = TORCH_NODES[key]
        prefix = f"{module.__name__}."
        name = target.removeprefix(prefix)
        public = target.startswith(prefix) and name.isidentifier() and not name.startswith("_")
        cls = getattr(module, name, None) if public else None
        found = isinstance(cls, type) and issubclass(cls, base) and cls is not base
        what = f"a subclass of {module.__name__}.{base.__name__} (expected {prefix}<Name>)"
        require(found, f"{where}={target!r} is not {what}", where)
    parameters = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for name in arguments(node):
        where = child(key, name)
        passed = f"{where} may not be set: the module passes it to {cls.__name__}"
        require(name != SUPPLIED[key], passed, where)
        unknown = f"{where} is not an argument of {cls.__name__}"
        require(takes_any or name in parameters, unknown, where)
    return cls


def check_keys(key: str, value: Any, names: tuple[str, str]) -> None:
    """``value`` is a mapping of ``names`` (or fewer); the error names the first other key."""
    what = " and ".join(names)
    require(isinstance(value, Mapping), f"{key}={value!r} must be null or a mapping of {what}", key)
    for name in sorted(set(value) - set(names)):
        message = f"{child(key, name)} is not a setting of {key}: it takes {what}"
        raise HyperparameterError(message, key)


def check_scheduler(key: str, scheduler: Any) -> None:
    if scheduler is None:
        return
    check_keys(key, scheduler, ("interval", "schedule"))
    interval, where = scheduler.get("interval", "epoch"), child(key, "interval")
    message = f"{where}={interval!r} must be one of 'step', 'epoch'"
    require(interval in ("step", "epoch"), message, where)
    if scheduler.get("schedule") is not None:
        class_of("scheduler.schedule", scheduler["schedule"])


def check_class_names(key: str, value: Any) -> None:
    strings = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    require(strings and bool(value), f"{key} must be a list of strings (one per class)", key)


def check_boolean(key: str, value: Any) -> None:
    require(isinstance(value, bool), f"{key}={value!r} must be true or false", key)


def check_tta(key: str, tta: Any) -> None:
    """None (off) or a mapping of flip and shift (pixels): a checkpoint's, a config's, or TTA's."""
    if tta is None:
        return
    check_keys(key, tta, ("flip", "shift"))
    check_boolean(child(key, "flip"), tta.get("flip", False))
    Bound(0, integer=True)(child(key, "shift"), tta.get("shift", 0))


def hparam(key: str, check: Any, default: Any = MISSING) -> Any:
    """A field: its config key (what ``HParams.from_config`` reads) and its check."""
    return field(default=default, metadata={"key": key, "check": check})


@dataclass(frozen=True)
class HParams:
    """Every argument of FashionMNISTModule, checked in this order when made."""

    net: dict[str, Any] = hparam("model.net", class_of)
    optimizer: dict[str, Any] = hparam("optimizer", class_of)
    # {"interval": "step" | "epoch", "schedule": {_target_...} | None}
    scheduler: dict[str, Any] | None = hparam("scheduler", check_scheduler)
    # Cross-entropy label smoothing in training (validation and test use none).
    label_smoothing: float = hparam("label_smoothing", Bound(0, 1, open_high=True))
    class_names: list[str] = hparam("", check_class_names)  # the datamodule's classes
    mean: float = hparam("data.mean", Bound(0, 1))  # of pixels in [0, 1]
    std: float = hparam("data.std", Bound(0, open_low=True))
    channels_last: bool = hparam("model.channels_last", check_boolean, False)
    compile: bool = hparam("model.compile", check_boolean, False)
    head_lr: float | None = hparam("model.head_lr", Bound(0, open_low=True, optional=True), None)
    tta: dict[str, Any] | None = hparam("tta", check_tta, None)

    def __post_init__(self) -> None:
        # Reserved keys and foreign types first, wherever they are.
        check_plain({spec.name: getattr(self, spec.name) for spec in fields(self)}, "")
        for spec in fields(self):
            spec.metadata["check"](spec.name, getattr(self, spec.name))
        if self.head_lr is not None and self.net[TARGET] not in HEADED:  # before any work
            heads = ", ".join(sorted(target.rpartition(".")[2] for target in HEADED))
            message = f"head_lr is set, but {self.net[TARGET]} has no `head` to give it to"
            raise HyperparameterError(f"{message}; set it to null, or use {heads}", "head_lr")

    @classmethod
    def of(cls, hparams: dict[str, Any]) -> "HParams":
        """The hyperparameters of a dict (a checkpoint's, a constructor's keyword arguments)."""
        expected = ", ".join(spec.name for spec in fields(cls))
        for name in sorted(set(hparams) - {spec.name for spec in fields(cls)}):
            message = f"{name} is not a hyperparameter of FashionMNISTModule (expected: {expected})"
            raise HyperparameterError(message, name)
        for spec in (s for s in fields(cls) if s.name not in hparams and s.default is MISSING):
            raise HyperparameterError(f"{spec.name} is missing", spec.name)
        return cls(**hparams)

    @classmethod
    def from_config(cls, cfg: DictConfig, class_names: Sequence[str]) -> "HParams":
        return cls.of(config_values(cfg, class_names))


def config_values(cfg: DictConfig, class_names: Sequence[str]) -> dict[str, Any]:
    """The module's keyword arguments in a training config (each field's metadata key), unchecked."""
    values: dict[str, Any] = {"class_names": list(class_names)}
    for spec in (s for s in fields(HParams) if s.metadata["key"]):
        node = OmegaConf.select(cfg, spec.metadata["key"], default=spec.default)
        values[spec.name] = None if node is MISSING else plain(node)  # MISSING: an older run
    return values


def plain(node: Any) -> Any:
    """A resolved config node as plain dicts and lists, safe to store in a checkpoint."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, Container) else node


def config_key(key: str) -> str:
    """The config key of a hyperparameter's key (``net.dropout`` → ``model.net.dropout``)."""
    root = key.split(".")[0].split("[")[0]
    spec = next((s for s in fields(HParams) if s.name == root), None)
    return (spec.metadata["key"] if spec and spec.metadata["key"] else root) + key[len(root) :]
