"""Checks of the model part of a training config, made before any work: what
FashionMNISTModule would refuse in its hyperparameters (``models.hparams``, with the config
key named), settings the network or the data cannot work with, callbacks that monitor a
metric the module never logs, and test-time augmentation settings.
"""

from pathlib import Path
from typing import Any

from fmnist_lightning.config.paths import CONFIG_DIR
from fmnist_lightning.data.files import CLASS_NAMES
from fmnist_lightning.models.hparams import HyperparameterError, validate_hparams
from fmnist_lightning.models.module import FashionMNISTModule
from fmnist_lightning.models.tta import TTA, TTAError

__all__ = ["known_models", "model_problems", "module_problem", "monitor_problems", "tta_problem"]


def known_models() -> list[str]:
    """The model configs that ship with the project, for ``model=<name>``."""
    return sorted(path.stem for path in (Path(CONFIG_DIR) / "model").glob("*.yaml"))


# The config key of each FashionMNISTModule hyperparameter (training.builders passes them).
HPARAM_KEYS = {
    "net": "model.net",
    "channels_last": "model.channels_last",
    "compile": "model.compile",
    "head_lr": "model.head_lr",
    "mean": "data.mean",
    "std": "data.std",
}


def module_hparams(config: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters training.builders.build_module would pass, from a plain config
    (keys the config lacks are left out, for the check to report)."""
    sources = {
        "net": ("model", "net"),
        "optimizer": ("optimizer",),
        "scheduler": ("scheduler",),
        "label_smoothing": ("label_smoothing",),
        "mean": ("data", "mean"),
        "std": ("data", "std"),
        "channels_last": ("model", "channels_last"),
        "compile": ("model", "compile"),
        "head_lr": ("model", "head_lr"),
    }
    hparams: dict[str, Any] = {"class_names": list(CLASS_NAMES)}
    for name, path in sources.items():
        node: Any = config
        for part in path:
            node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
        if node is not KeyError:
            hparams[name] = node
    return hparams


def module_problem(config: dict[str, Any]) -> tuple[str, str] | None:
    """(config key, what FashionMNISTModule would refuse in its hyperparameters), or None."""
    try:
        validate_hparams(module_hparams(config))
    except HyperparameterError as error:
        root = error.key.split(".")[0].split("[")[0]
        key = HPARAM_KEYS.get(root, root) + error.key[len(root) :]
        message = str(error).replace(error.key, key, 1)
        if key == "model.net._target_":
            message += f"; choose one of model={', model='.join(known_models())}"
        return key, message
    return None


def monitor_problems(config: dict[str, Any]) -> list[str]:
    """Callbacks (EarlyStopping, ModelCheckpoint) that monitor a metric the module never logs
    while it trains: they would fail after the first epoch."""
    metrics = FashionMNISTModule.logged_metrics("fit", tta=tta_enabled(config))
    problems = []
    for name, callback in (config.get("callbacks") or {}).items():
        monitor = callback.get("monitor") if isinstance(callback, dict) else None
        if monitor is not None and monitor not in metrics:
            problems.append(
                f"callbacks.{name}.monitor={monitor!r} is not a metric the model logs in "
                f"training; monitor one of {', '.join(metrics)} (or null)"
            )
    return problems


def model_problems(config: dict[str, Any]) -> list[str]:
    """Model settings that the network or the data cannot work with."""
    model = config.get("model") or {}
    problems = []
    in_channels = (model.get("net") or {}).get("in_channels", 1)
    if in_channels != 1:
        problems.append(
            f"model.net.in_channels={in_channels!r}: Fashion-MNIST images have 1 channel; "
            "set model.net.in_channels=1"
        )
    if model.get("weights") and model.get("init_from"):
        problems.append(
            "model.weights and model.init_from are both set: start from one of them "
            "(set the other to null)"
        )
    return problems


def tta_enabled(config: dict[str, Any]) -> bool:
    """Whether the run averages TTA views (False for bad settings: tta_problem reports them)."""
    try:
        return TTA.of(config.get("tta")).enabled
    except TTAError:
        return False


def tta_problem(config: dict[str, Any]) -> str | None:
    """Why ``tta`` is not a flip switch and a shift in pixels, or None (also when absent)."""
    try:
        TTA.of(config.get("tta"))
    except TTAError as error:
        return f"{error} (conf/tta/: none, flip, flip_shift)"
    return None
