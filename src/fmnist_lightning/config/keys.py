"""Keys that nothing reads: a typo inside a preset file, or a preset without its package line.

Hydra composes in struct mode, so a misspelt key on the command line stops at start-up.
The files of the defaults list, though, are merged before struct mode is set: a preset
(conf/experiment/, conf/debug/) that misspells a key (``label_smothing: 0.0``) adds a new
key that nothing reads, and the run goes on with the default value; a preset without
``# @package _global_`` puts all its keys under ``experiment.`` with the same effect.

:func:`unknown_key_problems` finds both in a composed config. A key is known when a config
file of conf/ that is not a preset declares it, or, inside a node with a ``_target_``, when
it is an argument of the class or function that the target names (``optimizer.eps``,
``+trainer.gradient_clip_val=1``); the entries of ``callbacks`` and ``logger`` may have any
name, as every one of them is built (``training.builders``).
"""

import difflib
import inspect
import pydoc
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from fmnist_lightning.config.paths import CONFIG_DIR

# Groups whose files set keys of other groups (presets), rather than declare keys.
PRESET_GROUPS = ("experiment", "debug", "hparams_search")
GLOBAL_PACKAGE = "# @package _global_"
# Nodes whose every entry is built, whatever its name.
BUILT_COLLECTIONS = ("callbacks", "logger")
# Nodes with a _target_ that FashionMNISTModule checks itself (config.model_checks.module_problem).
CHECKED_BY_THE_MODULE = ("model.net", "optimizer", "scheduler.schedule")


def dotted_keys(node: Any, prefix: str) -> Iterator[str]:
    """Every key of a plain config node as a dotted path, nested ones too."""
    if isinstance(node, dict):
        for name, value in node.items():
            key = f"{prefix}.{name}" if prefix else str(name)
            yield key
            yield from dotted_keys(value, key)


@cache
def declared_keys(config_name: str = "train") -> frozenset[str]:
    """The keys that the primary config and the group files of conf/ (not presets) declare."""
    root = Path(CONFIG_DIR)
    keys: set[str] = set()
    for path in sorted(root.rglob("*.yaml")):
        group = path.parent.relative_to(root).as_posix()
        if group == "." and path.stem != config_name:
            continue  # another command's primary config
        if group.split("/")[0] in (*PRESET_GROUPS, "hydra"):
            continue
        text = path.read_text()
        package = "" if group == "." or text.startswith(GLOBAL_PACKAGE) else group.replace("/", ".")
        node = OmegaConf.to_container(OmegaConf.create(text)) or {}
        node.pop("defaults", None)
        parts = package.split(".") if package else []
        keys.update(".".join(parts[: i + 1]) for i in range(len(parts)))  # data, data.augment
        keys.update(dotted_keys(node, package))
    return frozenset(keys)


def parameters_of(target: str) -> tuple[str, set[str] | None] | None:
    """(a name for it, the keyword arguments it takes, None for any) of what ``target``
    names; None when it cannot be imported."""
    try:
        found = pydoc.locate(target)
    except pydoc.ErrorDuringImport:
        return None
    if found is None or not callable(found):
        return None
    try:
        parameters = inspect.signature(found).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): anything goes
        return getattr(found, "__name__", target), None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return found.__name__, None
    return found.__name__, {p.name for p in parameters}


def argument_problems(node: dict[str, Any], key: str) -> Iterator[str]:
    """Keys of a ``_target_`` node that the target does not take."""
    target = node.get("_target_")
    if not isinstance(target, str) or key in CHECKED_BY_THE_MODULE:
        return
    found = parameters_of(target)
    if found is None:
        yield f"{key}._target_={target!r} cannot be imported"
        return
    name, parameters = found
    for argument in node:
        if parameters is not None and not argument.startswith("_") and argument not in parameters:
            close = difflib.get_close_matches(argument, sorted(parameters), n=1)
            hint = f" (did you mean {key}.{close[0]}?)" if close else ""
            yield f"{key}.{argument} is not an argument of {name}{hint}"


def unknown(key: str, declared: frozenset[str]) -> str:
    """Why ``key`` is not known, and the likely fix."""
    head = key.split(".")[0]
    if head in PRESET_GROUPS:
        return (
            f"{key} is not a key of the config: a preset of conf/{head}/ sets keys of the "
            f"whole config and needs '{GLOBAL_PACKAGE}' as its first line"
        )
    parent = key.rpartition(".")[0]
    siblings = [k.rpartition(".")[2] for k in declared if k.rpartition(".")[0] == parent]
    close = difflib.get_close_matches(key.rpartition(".")[2], siblings, n=1)
    hint = f"did you mean {f'{parent}.' if parent else ''}{close[0]}?" if close else ""
    return (
        f"{key} is not a key of the config (a misspelt key in a preset file adds one that "
        f"nothing reads{'; ' + hint if hint else ''})"
    )


def is_built(value: Any) -> bool:
    return value is None or (isinstance(value, dict) and "_target_" in value)


def node_problems(node: Any, key: str, declared: frozenset[str]) -> Iterator[str]:
    if isinstance(node, list):
        for index, item in enumerate(node):
            if isinstance(item, dict) and "_target_" in item:
                yield from node_problems(item, f"{key}[{index}]", declared)
        return
    if not isinstance(node, dict):
        return
    if "_target_" in node:
        yield from argument_problems(node, key)
        for name, value in node.items():  # nested built nodes (data.augment, trainer.plugins)
            if isinstance(value, (dict, list)):
                yield from node_problems(value, f"{key}.{name}", declared)
        return
    for name, value in node.items():
        child = f"{key}.{name}" if key else str(name)
        if child not in declared and not (key in BUILT_COLLECTIONS and is_built(value)):
            yield unknown(child, declared)
        else:
            yield from node_problems(value, child, declared)


def unknown_key_problems(config: dict[str, Any], config_name: str = "train") -> list[str]:
    """Every key of a resolved, plain config that nothing would read, in words."""
    return list(node_problems(config, "", declared_keys(config_name)))
