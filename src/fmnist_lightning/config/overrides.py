"""Command-line overrides that Hydra would crash on, or whose refusal would not say the fix.

Hydra 1.3 answers a config group given a number, null or a list of numbers (model=0,
experiment=null), or an override with no key (=0), with a stack trace of its internals;
the schema refuses ``data.augment=standard`` (meant: ``data/augment=standard``) and
``model.dropout=0.3`` (0.1.0's ``model.net.dropout``) without saying what was meant.
"""

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Override, OverrideType
from hydra.errors import OverrideParseException
from omegaconf import OmegaConf

from fmnist_lightning.config.paths import CONFIG_DIR
from fmnist_lightning.config.schema import ConfigValidationError, pick_preset


def group_values(override: Override) -> list[Any]:
    """The option names an override gives a config group (one, a list, or a choice sweep)."""
    value = override.value()
    if isinstance(value, ChoiceSweep):
        return list(value.list)
    return value if isinstance(value, list) else [value]


@cache
def model_keys() -> tuple[frozenset[str], frozenset[str]]:
    """(keys of the model configs beside ``net``, the network arguments under ``net``)."""
    outer, inner = set(), set()
    for path in (Path(CONFIG_DIR) / "model").glob("*.yaml"):
        config = OmegaConf.to_container(OmegaConf.load(path)) or {}
        outer |= set(config) - {"defaults"}
        inner |= set(config.get("net") or {})
    return frozenset(outer), frozenset(inner - {"_target_"})


def override_problem(text: str) -> str | None:
    """What Hydra would crash on, or misread (see the module's doc), in one command-line
    override; or None."""
    try:
        (override,) = OverridesParser.create().parse_overrides([text])
    except OverrideParseException:
        return None  # Hydra reports syntax errors itself, with a clear message
    key = override.key_or_group
    if not key:
        return f"'{text}' has no key; write key=value, e.g. model.net.dropout=0.3"
    if key.startswith("hydra/") or (Path(CONFIG_DIR) / key).is_dir():  # a config group
        if override.is_delete() and override.value() is None:
            return None
        if override.value() is None:
            return f"'{text}' is not a config name; to drop the config of group '{key}' use ~{key}"
        if bad := [value for value in group_values(override) if not isinstance(value, str)]:
            return f"'{text}': group '{key}' takes the name of one of its configs, not {bad[0]!r} (quote a name: {key}='{bad[0]}')"
        return None
    if override.type in (OverrideType.ADD, OverrideType.FORCE_ADD):
        return None  # adding a key on purpose
    if "." in key and (Path(CONFIG_DIR) / key.replace(".", "/")).is_dir():
        values = [v for v in group_values(override) if isinstance(v, str)]
        if values:
            return f"'{text}' sets {key} to a string; {pick_preset(key, values[0])}"
    parts = key.split(".")
    outer, inner = model_keys()
    if len(parts) > 1 and parts[0] == "model" and parts[1] not in outer and parts[1] in inner:
        moved = text.replace("model.", "model.net.", 1)
        return f"'{text}': the network's arguments are under model.net; write {moved}"
    return None


def parse_overrides(overrides: Sequence[str]) -> list[Override]:
    """Hydra's reading of the overrides, for a command that parses them itself (the search);
    ConfigValidationError with Hydra's words, on one line, for one it cannot parse."""
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException as error:
        problem, *_, see = str(error).splitlines()  # Hydra's last line links to its grammar
        raise ConfigValidationError(
            f"Invalid override: '{error.override}': {problem}; {see[:1].lower()}{see[1:]}"
        ) from error


def command_line_problem(args: Sequence[str]) -> str | None:
    """The one-line problem of the overrides among command-line ``args`` (flags skipped)
    that Hydra would crash on or misread, or None."""
    overrides = [arg for arg in args if not arg.startswith("-")]
    problems = [problem for text in overrides if (problem := override_problem(text))]
    return "Invalid override: " + "; ".join(problems) if problems else None


def check_overrides(overrides: Sequence[str]) -> None:
    """Raise ConfigValidationError for overrides that Hydra would crash on or misread."""
    if problem := command_line_problem(overrides):
        raise ConfigValidationError(problem)
