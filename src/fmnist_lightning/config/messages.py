"""One line for a config that Hydra, OmegaConf or YAML refused: where, why, the likely fix."""

import difflib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fmnist_lightning.config.compose import compose
from fmnist_lightning.config.overrides import command_line_problem
from fmnist_lightning.config.resolvers import resumed_run_dir
from fmnist_lightning.config.schema import resumed_run_folder_problem, run_folder_problem

# Groups whose files set keys of other groups (presets): they need '# @package _global_'.
PRESET_GROUPS = ("experiment", "debug")


def causes(error: BaseException) -> Iterator[BaseException]:
    """An error and the errors it was raised from or during."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def unknown_key_hint(error: OmegaConfBaseException) -> str:
    """The fix for a key the schema does not declare: a preset's package line, or the
    declared key it resembles."""
    name = str(getattr(error, "key", "") or "")
    parent = (getattr(error, "full_key", "") or "").rpartition(".")[0]
    if name in PRESET_GROUPS or (error.full_key or "").split(".")[0] in PRESET_GROUPS:
        return f"; a preset of conf/{name or parent}/ needs '# @package _global_' as its first line"
    known = getattr(getattr(error, "object_type", None), "__dataclass_fields__", {})
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {f'{parent}.' if parent else ''}{close[0]}?)" if close else ""


def error_message(error: BaseException) -> str:
    """One line for a config that Hydra or OmegaConf refused (or one of ours)."""
    found = next((e for e in causes(error) if isinstance(e, yaml.YAMLError)), None)
    if found is not None:  # where a config file's YAML is broken, and what the parser expected
        mark = getattr(found, "problem_mark", None)
        at = f"'{mark.name}', line {mark.line + 1}, column {mark.column + 1}" if mark else "a file"
        problem = getattr(found, "problem", None) or str(found).splitlines()[0]
        context = f" ({found.context})" if getattr(found, "context", None) else ""
        return f"Error: the config file {at} is not valid YAML: {problem}{context}; fix the file's syntax"
    found = next((e for e in causes(error) if isinstance(e, OmegaConfBaseException)), None)
    message = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
    if found is not None and found is not error:
        key = getattr(found, "full_key", None)
        key = f" ({key})" if key and key not in message else ""
        message = f"{message.rstrip('.')}: {str(found).splitlines()[0]}{key}"
    if found is not None and re.search(r"not in struct|not in '\w+'", str(found)):
        message += unknown_key_hint(found)
    return message if message.startswith("Error: ") else f"Error: {message}"


def preflight_problem(config_name: str, args: Sequence[str]) -> str | None:
    """Why ``python -m fmnist_lightning.<config_name> <args>`` cannot create its run folder
    (or write a resumed run's), in one line naming what moves it; None when it can, or when
    the config does not compose (Hydra's own message says why)."""
    try:
        cfg = compose(config_name, [arg for arg in args if not arg.startswith("-")], True)
        multirun = bool({"-m", "--multirun"} & {*args}) or "MULTIRUN" in str(cfg.hydra.mode)
        folder = OmegaConf.select(cfg, "hydra.sweep.dir" if multirun else "hydra.run.dir")
    except Exception:  # Hydra and OmegaConf raise many kinds
        return None
    if not folder:
        return None
    if not multirun and resumed_run_dir(cfg.get("resume"), cfg.get("ckpt_path")):
        return resumed_run_folder_problem(folder)
    return run_folder_problem(Path(folder), "paths.root")


def refusal(error: BaseException, config_name: str, args: Sequence[str]) -> str:
    """The one line for ``python -m fmnist_lightning.<config_name> <args>`` stopped by Hydra
    before the app ran: an override Hydra crashed on or misread, a run folder it could not
    create (with the key that moves it), or what Hydra, OmegaConf or YAML said."""
    problem = command_line_problem(args)
    if problem is None and isinstance(error, OSError):
        problem = preflight_problem(config_name, args)
    problem = problem or error_message(error).removeprefix("Error: ")
    return problem[:1].upper() + problem[1:]
