"""The hyperparameters of FashionMNISTModule: one frozen dataclass, checked once, stored as plain data.

A checkpoint may come from anywhere: :class:`HParams` accepts plain data only, and names in
``_target_`` only the project's networks, torch optimisers and torch schedules, checked by
name before anything is imported (the module builds them itself, no Hydra instantiate).
A new hyperparameter is one field here (its config key and check), its YAML key, and its use.
"""

import inspect
import math
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, NamedTuple

import torch
from omegaconf import DictConfig, OmegaConf

from fmnist_lightning.errors import UsageError
from fmnist_lightning.models.compat import current_target, upgrade_hparams
from fmnist_lightning.models.registry import NETWORKS, network_class
from fmnist_lightning.models.tta import TTA, TTAError

__all__ = ["HParams", "HyperparameterError", "upgrade_hparams", "validate_hparams"]

TARGET = "_target_"
# Hydra's instantiate reads these keys anywhere in a dict; in hyperparameters only the
# three class nodes below may hold one (_target_), and the module reads it, not Hydra.
RESERVED_KEYS = frozenset({TARGET, "_args_", "_partial_", "_recursive_", "_convert_"})
CLASS_NODES = ("net", "optimizer", "scheduler.schedule")
INTERVALS = ("step", "epoch")
MAX_DEPTH = 12  # deeper than any real hyperparameter; keeps the check's recursion bounded
PLAIN = "None, a boolean, a number, a string, a list or a dict"


class HyperparameterError(UsageError):
    """Hyperparameters that this code will not build a model from; ``key`` names the culprit."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


class Bound(NamedTuple):
    """The allowed values of a number: bounds (None: unbounded), open or closed."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    integer: bool = False

    def __str__(self) -> str:
        low, high = (
            str(int(v)) if float(v).is_integer() else f"{v:g}"
            for v in (self.low or 0, self.high or 0)
        )
        if self.high is None:
            return f"{'>' if self.open_low else '>='} {low}"
        return f"in {'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"

    def problem(self, key: str, value: Any) -> str | None:
        """What is wrong with ``value`` for ``key``, in words, or None."""
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not is_number or (self.integer and not isinstance(value, int)):
            return f"{key}={value!r} must be {'an integer' if self.integer else 'a number'} {self}"
        low_ok = self.low is None or (value > self.low if self.open_low else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.open_high else value <= self.high)
        if not (math.isfinite(value) and low_ok and high_ok):
            return f"{key}={value!r} is out of range: it must be {self}"
        return None


def child(key: str, name: str | int) -> str:
    """The name of an entry of ``key``: ``net.blocks``, ``net.blocks[0]``."""
    if isinstance(name, int):
        return f"{key}[{name}]"
    return f"{key}.{name}" if key else name


def check_plain(value: Any, key: str, depth: int = 0) -> None:
    """Only plain values, with string keys and no reserved key except a class node's _target_."""
    if depth > MAX_DEPTH:
        raise HyperparameterError(f"{key} is nested more than {MAX_DEPTH} levels deep", key)
    if isinstance(value, dict):
        for name, entry in value.items():
            if not isinstance(name, str):
                raise HyperparameterError(f"{key} has a key that is not a string ({name!r})", key)
            if name in RESERVED_KEYS and not (name == TARGET and key in CLASS_NODES):
                where = child(key, name)
                raise HyperparameterError(
                    f"{where} is not allowed: hyperparameters are data, and only "
                    f"{', '.join(f'{node}.{TARGET}' for node in CLASS_NODES)} name a class",
                    where,
                )
            check_plain(entry, child(key, name), depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, entry in enumerate(value):
            check_plain(entry, child(key, index), depth + 1)
    elif value is not None and not isinstance(value, (bool, int, float, str)):
        raise HyperparameterError(
            f"{key} holds a {type(value).__name__}, not a plain value ({PLAIN})", key
        )


def arguments(node: dict[str, Any]) -> dict[str, Any]:
    """A class node's arguments: every key but ``_target_``."""
    return {name: value for name, value in node.items() if name != TARGET}


def class_node(key: str, node: Any) -> str:
    """The ``_target_`` string of a dict that names a class."""
    if not isinstance(node, dict) or not isinstance(node.get(TARGET), str):
        raise HyperparameterError(f"{key} must be a dict with a {TARGET} string", key)
    return node[TARGET]


def check_arguments(key: str, node: dict[str, Any], cls: type, supplied: str) -> type:
    """Every argument of the node is a parameter of ``cls``; ``supplied`` the module passes."""
    parameters = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for name in arguments(node):
        where = child(key, name)
        if name == supplied:
            raise HyperparameterError(
                f"{where} may not be set: the module passes it to {cls.__name__}", where
            )
        if not takes_any and name not in parameters:
            raise HyperparameterError(f"{where} is not an argument of {cls.__name__}", where)
    return cls


# The class nodes found in torch: (module, base class, what the message calls them).
TORCH_NODES = {
    "optimizer": (torch.optim, torch.optim.Optimizer, "a torch.optim optimiser"),
    "scheduler.schedule": (
        torch.optim.lr_scheduler,
        torch.optim.lr_scheduler.LRScheduler,
        "a torch.optim.lr_scheduler class",
    ),
}


def torch_class(key: str, target: str) -> type:
    """The class ``<module>.<Name>`` of torch, found by name first: nothing else is imported."""
    module, base, what = TORCH_NODES[key]
    prefix = f"{module.__name__}."
    name = target.removeprefix(prefix)
    found = getattr(module, name, None) if target.startswith(prefix) else None
    if (
        not name.isidentifier()
        or name.startswith("_")
        or not isinstance(found, type)
        or not issubclass(found, base)
        or found is base
    ):
        where = child(key, TARGET)
        raise HyperparameterError(
            f"{where}={target!r} is not {what} (expected {prefix}<Name>)", where
        )
    return found


def network_of(net: Any, key: str = "net") -> type:
    """The class of a ``net`` node: one of the project's networks, checked with its arguments."""
    target = current_target(class_node(key, net))
    if target not in NETWORKS:
        where = child(key, TARGET)
        raise HyperparameterError(
            f"{where}={net[TARGET]!r} is not a network of this project; expected one of "
            f"{', '.join(sorted(NETWORKS))}",
            where,
        )
    return check_arguments(key, net, network_class(target), supplied="num_classes")


def check_optimizer(key: str, optimizer: Any) -> None:
    check_arguments(key, optimizer, torch_class(key, class_node(key, optimizer)), "params")


def check_scheduler(key: str, scheduler: Any) -> None:
    if scheduler is None:
        return
    if not isinstance(scheduler, dict):
        raise HyperparameterError(f"{key} must be null or a dict of interval and schedule", key)
    unknown = sorted(set(scheduler) - {"interval", "schedule"})
    if unknown:
        where = child(key, unknown[0])
        raise HyperparameterError(f"{where} is not a key of {key}", where)
    if scheduler.get("interval", "epoch") not in INTERVALS:
        where, choices = child(key, "interval"), ", ".join(map(repr, INTERVALS))
        message = f"{where}={scheduler['interval']!r} must be one of {choices}"
        raise HyperparameterError(message, where)
    if scheduler.get("schedule") is not None:
        where = child(key, "schedule")
        cls = torch_class("scheduler.schedule", class_node(where, scheduler["schedule"]))
        check_arguments(where, scheduler["schedule"], cls, supplied="optimizer")


def check_class_names(key: str, value: Any) -> None:
    strings = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    if not strings or not value:
        raise HyperparameterError(f"{key} must be a list of strings (one per class)", key)


def check_boolean(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise HyperparameterError(f"{key}={value!r} must be true or false", key)


def check_tta(key: str, tta: Any) -> None:
    """None (off) or {flip, shift} as models.tta.TTA takes them."""
    try:
        TTA.of(tta)
    except TTAError as error:
        raise HyperparameterError(str(error).rstrip("."), key) from error


def bounded(bound: Bound, optional: bool = False) -> Any:
    def check(key: str, value: Any) -> None:
        problem = None if optional and value is None else bound.problem(key, value)
        if problem:
            raise HyperparameterError(problem, key)

    return check


def hparam(key: str, check: Any, default: Any = MISSING) -> Any:
    """A field: its config key (what ``HParams.from_config`` reads) and its check."""
    return field(default=default, metadata={"key": key, "check": check})


@dataclass(frozen=True)
class HParams:
    """Every argument of FashionMNISTModule, checked in this order when made."""

    net: dict[str, Any] = hparam("model.net", lambda key, net: network_of(net, key))
    optimizer: dict[str, Any] = hparam("optimizer", check_optimizer)
    # {"interval": "step" | "epoch", "schedule": {_target_...} | None}
    scheduler: dict[str, Any] | None = hparam("scheduler", check_scheduler)
    # Cross-entropy label smoothing in training (validation and test use none).
    label_smoothing: float = hparam("label_smoothing", bounded(Bound(0, 1, open_high=True)))
    class_names: list[str] = hparam("", check_class_names)  # the datamodule's classes
    mean: float = hparam("data.mean", bounded(Bound(0, 1)))  # of pixels in [0, 1]
    std: float = hparam("data.std", bounded(Bound(0, open_low=True)))
    channels_last: bool = hparam("model.channels_last", check_boolean, False)
    compile: bool = hparam("model.compile", check_boolean, False)
    head_lr: float | None = hparam("model.head_lr", bounded(Bound(0, open_low=True), True), None)
    tta: dict[str, Any] | None = hparam("tta", check_tta, None)

    def __post_init__(self) -> None:
        check_plain({spec.name: getattr(self, spec.name) for spec in fields(self)}, "")
        for spec in fields(self):
            spec.metadata["check"](spec.name, getattr(self, spec.name))

    @classmethod
    def of(cls, hparams: Any) -> "HParams":
        """The hyperparameters of a dict (a checkpoint's, a constructor's keyword arguments)."""
        if not isinstance(hparams, dict):
            raise HyperparameterError("the hyperparameters must be a dict", "")
        check_plain(hparams, "")  # reserved keys and foreign types first, wherever they are
        names = [spec.name for spec in fields(cls)]
        for name in (name for name in hparams if name not in names):
            expected = ", ".join(names)
            message = f"{name} is not a hyperparameter of FashionMNISTModule (expected: {expected})"
            raise HyperparameterError(message, name)
        for spec in (s for s in fields(cls) if s.name not in hparams and s.default is MISSING):
            raise HyperparameterError(f"{spec.name} is missing", spec.name)
        return cls(**hparams)

    @classmethod
    def from_config(cls, cfg: DictConfig, class_names: Sequence[str]) -> "HParams":
        """The hyperparameters of a training config, checked."""
        return cls.of(config_values(cfg, class_names))


def config_values(cfg: DictConfig, class_names: Sequence[str]) -> dict[str, Any]:
    """The module's keyword arguments in a training config (each field's metadata key), unchecked."""
    values: dict[str, Any] = {"class_names": list(class_names)}
    for spec in fields(HParams):
        if spec.metadata["key"]:
            node = OmegaConf.select(cfg, spec.metadata["key"], default=spec.default)
            values[spec.name] = None if node is MISSING else node  # runs saved before a key existed
            if isinstance(node, DictConfig):
                values[spec.name] = OmegaConf.to_container(node, resolve=True)
    return values


def config_key(key: str) -> str:
    """The config key of a hyperparameter's key (``net.dropout`` → ``model.net.dropout``)."""
    root = key.split(".")[0].split("[")[0]
    spec = next((s for s in fields(HParams) if s.name == root), None)
    return (spec.metadata["key"] if spec and spec.metadata["key"] else root) + key[len(root) :]


def validate_hparams(hparams: Any) -> None:
    """Raise HyperparameterError (naming the key) unless ``hparams`` make an :class:`HParams`."""
    HParams.of(hparams)
