"""The hyperparameters a checkpoint stores: their schema, its check, and the upgrade of 0.1.0's layout.

Layout now (the arguments of ``FashionMNISTModule``, all plain types)::

    net:        {_target_: <a network of models.registry.NETWORKS>, ...its arguments}
    optimizer:  {_target_: torch.optim.X, lr: ..., ...its arguments}
    scheduler:  {interval: step|epoch, schedule: {_target_: torch.optim.lr_scheduler.X, ...} | null}
    label_smoothing, class_names, mean, std, channels_last, compile, head_lr

Hyperparameters are data, and a checkpoint may come from anywhere. :func:`validate_hparams`
refuses, with a :class:`HyperparameterError` naming the key, anything but that layout:
every key of the right type; values only None, booleans, numbers, strings, lists and dicts;
``net._target_`` one of the project's networks (0.1.0's names mapped first),
``optimizer._target_`` a torch.optim optimiser and ``scheduler.schedule._target_`` a
torch.optim.lr_scheduler class, checked by their names before anything is imported; the
other keys of these three arguments of that class; and no ``_target_``, ``_args_``,
``_partial_``, ``_recursive_`` or ``_convert_`` anywhere else. The module builds these three
classes itself from the checked names (no Hydra instantiate), so no checkpoint can make
loading call anything else.

Release 0.1.0 kept the network's arguments and the run-time keys together under ``model``
(with ``weights`` and ``init_from``, which a checkpoint no longer needs) and the
scheduler's ``interval`` inside the scheduler's own arguments.
"""

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch

from fmnist_lightning.models.registry import NETWORKS, current_target, network_class
from fmnist_lightning.models.tta import TTA, TTAError

# Keys of 0.1.0's ``model`` that said how the network runs, not what it is.
RUNTIME_KEYS = ("channels_last", "compile", "head_lr")
# Starting points of a fresh run (read once by the builder): not part of a trained model.
STARTING_WEIGHT_KEYS = ("weights", "init_from")

TARGET = "_target_"
# Hydra's instantiate reads these keys anywhere in a dict; in hyperparameters only the
# three class nodes below may hold one (_target_), and the module reads it, not Hydra.
RESERVED_KEYS = frozenset({TARGET, "_args_", "_partial_", "_recursive_", "_convert_"})
CLASS_NODES = ("net", "optimizer", "scheduler.schedule")
OPTIMIZERS = "torch.optim."
SCHEDULERS = "torch.optim.lr_scheduler."
INTERVALS = ("step", "epoch")
MAX_DEPTH = 12  # deeper than any real hyperparameter; keeps the check's recursion bounded
PLAIN = "None, a boolean, a number, a string, a list or a dict"


class HyperparameterError(ValueError):
    """Hyperparameters that this code will not build a model from; ``key`` names the culprit."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


def is_legacy(hparams: dict[str, Any]) -> bool:
    """Release 0.1.0's layout: a ``model`` key and no ``net``."""
    return "model" in hparams and "net" not in hparams


def upgrade_scheduler(scheduler: dict[str, Any] | None) -> dict[str, Any]:
    """0.1.0's scheduler (its arguments with ``interval`` among them, or empty) → the new layout."""
    schedule = dict(scheduler or {})
    interval = schedule.pop("interval", "epoch")
    return {"interval": interval, "schedule": schedule or None}


def upgrade_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters in the current layout; those of 0.1.0 are rewritten, others copied.

    Only the shape is changed here; what the values are is :func:`validate_hparams`'s business.
    """
    upgraded = dict(hparams)
    model = upgraded.get("model")
    if not is_legacy(hparams) or not isinstance(model, dict):
        return upgraded
    model = dict(upgraded.pop("model"))
    for key in STARTING_WEIGHT_KEYS:
        model.pop(key, None)
    runtime = {key: model.pop(key) for key in RUNTIME_KEYS if key in model}
    if isinstance(model.get(TARGET), str):
        model[TARGET] = current_target(model[TARGET])
    upgraded["net"] = model
    scheduler = upgraded.get("scheduler")
    if scheduler is None or isinstance(scheduler, dict):
        upgraded["scheduler"] = upgrade_scheduler(scheduler)
    return {**upgraded, **runtime}


# --- The check ------------------------------------------------------------------------


def child(key: str, name: str | int) -> str:
    """The name of an entry of ``key``: ``net.blocks``, ``net.blocks[0]``."""
    if isinstance(name, int):
        return f"{key}[{name}]"
    return f"{key}.{name}" if key else name


def check_plain(value: Any, key: str, depth: int = 0) -> None:
    """Only plain values, with string keys and no reserved key except a class node's _target_."""
    if depth > MAX_DEPTH:
        raise HyperparameterError(f"{key} is nested more than {MAX_DEPTH} levels deep", key)
    if value is None or isinstance(value, (bool, int, float, str)):
        return
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
    else:
        raise HyperparameterError(
            f"{key} holds a {type(value).__name__}, not a plain value ({PLAIN})", key
        )


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_number(key: str, value: Any) -> None:
    if not is_number(value):
        raise HyperparameterError(f"{key}={value!r} must be a number", key)


def check_positive(key: str, value: Any) -> None:
    if not is_number(value) or value <= 0:
        raise HyperparameterError(f"{key}={value!r} must be a number > 0", key)


def check_optional_positive(key: str, value: Any) -> None:
    if value is not None:
        check_positive(key, value)


def check_boolean(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise HyperparameterError(f"{key}={value!r} must be true or false", key)


def check_class_names(key: str, value: Any) -> None:
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(v, str) for v in value)
    ):
        raise HyperparameterError(f"{key} must be a list of strings (one per class)", key)


def class_node(key: str, node: Any) -> str:
    """The ``_target_`` string of a dict that names a class."""
    if not isinstance(node, dict) or not isinstance(node.get(TARGET), str):
        raise HyperparameterError(f"{key} must be a dict with a {TARGET} string", key)
    return node[TARGET]


def arguments(node: dict[str, Any]) -> dict[str, Any]:
    """A class node's arguments: every key but ``_target_``."""
    return {name: value for name, value in node.items() if name != TARGET}


def check_arguments(key: str, node: dict[str, Any], cls: type, supplied: tuple[str, ...]) -> None:
    """Every argument of the node is a parameter of ``cls``; ``supplied`` ones the module passes."""
    parameters = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for name in arguments(node):
        where = child(key, name)
        if name in supplied:
            raise HyperparameterError(
                f"{where} may not be set: the module passes it to {cls.__name__}", where
            )
        if not takes_any and name not in parameters:
            raise HyperparameterError(f"{where} is not an argument of {cls.__name__}", where)


def torch_class(key: str, target: str, prefix: str, base: type, what: str) -> type:
    """The class ``prefix + Name`` of torch, found by name first: nothing else is imported."""
    name = target.removeprefix(prefix)
    module = torch.optim if prefix == OPTIMIZERS else torch.optim.lr_scheduler
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


def optimizer_class(target: str) -> type[torch.optim.Optimizer]:
    """The torch.optim optimiser that ``optimizer._target_`` names (checked by name)."""
    return torch_class(
        "optimizer", target, OPTIMIZERS, torch.optim.Optimizer, "a torch.optim optimiser"
    )


def scheduler_class(target: str) -> type:
    """The torch.optim.lr_scheduler class that ``scheduler.schedule._target_`` names."""
    return torch_class(
        "scheduler.schedule",
        target,
        SCHEDULERS,
        torch.optim.lr_scheduler.LRScheduler,
        "a torch.optim.lr_scheduler class",
    )


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
    cls = network_class(target)
    check_arguments(key, net, cls, supplied=("num_classes",))
    return cls


def check_network(key: str, net: Any) -> None:
    network_of(net, key)


def check_optimizer(key: str, optimizer: Any) -> None:
    cls = optimizer_class(class_node(key, optimizer))
    check_arguments(key, optimizer, cls, supplied=("params",))


def check_scheduler(key: str, scheduler: Any) -> None:
    if scheduler is None:
        return
    if not isinstance(scheduler, dict):
        raise HyperparameterError(f"{key} must be null or a dict of interval and schedule", key)
    for name in scheduler:
        if name not in ("interval", "schedule"):
            raise HyperparameterError(f"{child(key, name)} is not a key of {key}", child(key, name))
    interval = scheduler.get("interval", "epoch")
    if interval not in INTERVALS:
        where = child(key, "interval")
        raise HyperparameterError(
            f"{where}={interval!r} must be one of {', '.join(map(repr, INTERVALS))}", where
        )
    schedule = scheduler.get("schedule")
    if schedule is not None:
        where = child(key, "schedule")
        cls = scheduler_class(class_node(where, schedule))
        check_arguments(where, schedule, cls, supplied=("optimizer",))


def check_tta(key: str, tta: Any) -> None:
    """None (off) or {flip, shift} as models.tta.TTA takes them."""
    try:
        TTA.of(tta)
    except TTAError as error:
        raise HyperparameterError(str(error).rstrip("."), key) from error


# Every argument of FashionMNISTModule: its check, and whether it may be left out.
SCHEMA: dict[str, tuple[Callable[[str, Any], None], bool]] = {
    "net": (check_network, True),
    "optimizer": (check_optimizer, True),
    "scheduler": (check_scheduler, True),
    "label_smoothing": (check_number, True),
    "class_names": (check_class_names, True),
    "mean": (check_number, True),
    "std": (check_positive, True),
    "channels_last": (check_boolean, False),
    "compile": (check_boolean, False),
    "head_lr": (check_optional_positive, False),
    "tta": (check_tta, False),
}


def validate_hparams(hparams: Any) -> None:
    """Raise HyperparameterError (naming the key) unless ``hparams`` fit the schema above."""
    if not isinstance(hparams, dict):
        raise HyperparameterError("the hyperparameters must be a dict", "")
    check_plain(hparams, "")  # reserved keys and foreign types first, wherever they are
    for name in hparams:
        if name not in SCHEMA:
            raise HyperparameterError(
                f"{name} is not a hyperparameter of FashionMNISTModule "
                f"(expected: {', '.join(SCHEMA)})",
                name,
            )
    for name, (check, required) in SCHEMA.items():
        if name in hparams:
            check(name, hparams[name])
        elif required:
            raise HyperparameterError(f"{name} is missing", name)
