"""The schema of the commands that read checkpoints (evaluate, ensemble) and their checks.

Registered in Hydra's ConfigStore on import (``evaluate_schema``, ``ensemble_schema``, the
first defaults of conf/evaluate.yaml and conf/ensemble.yaml): those commands import this
module before Hydra composes their config.
"""

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from fmnist_lightning.config.schema import (
    ConfigValidationError,
    Data,
    Node,
    TTASettings,
    argument_problems,
    range_problems,
    refuse,
    resolved,
)

KEYS = ("seed", "data.batch_size", "data.eval_batch_size", "data.val_fraction")


@dataclass
class CheckpointCommand:
    data: Data = field(default_factory=Data)
    tta: TTASettings | None = None
    split: str = MISSING
    output_dir: str | None = None
    accelerator: str = "auto"
    precision: str = "auto"
    seed: int = MISSING


@dataclass
class Evaluate(CheckpointCommand):
    analysis: Node = None
    ckpt_path: str | None = MISSING


@dataclass
class Ensemble(CheckpointCommand):
    members: list[str] | None = MISSING


ConfigStore.instance().store(name="evaluate_schema", node=Evaluate)
ConfigStore.instance().store(name="ensemble_schema", node=Ensemble)


def validate_evaluate_config(cfg: DictConfig) -> None:
    """Raise ConfigValidationError listing every problem of an evaluate config, in one line."""
    given = not OmegaConf.is_missing(cfg, "ckpt_path") and cfg.get("ckpt_path")
    missing = "ckpt_path is required: pass the .ckpt file to evaluate, e.g. ckpt_path=lightning_logs/runs/<run>/checkpoints/last.ckpt"
    validate_checkpoint_command(cfg, None if given else missing)


def validate_ensemble_config(cfg: DictConfig) -> None:
    """Raise ConfigValidationError listing every problem of an ensemble config, in one line."""
    members = not OmegaConf.is_missing(cfg, "members") and cfg.get("members")
    missing = "members must list two or more run folders or .ckpt files, e.g. 'members=[lightning_logs/sweeps/<sweep>/0,lightning_logs/sweeps/<sweep>/1]'"
    validate_checkpoint_command(cfg, None if members and len(members) >= 2 else missing)


def validate_checkpoint_command(cfg: DictConfig, missing: str | None) -> None:
    """The checks of the commands that read checkpoints: ``missing`` (what names the
    checkpoints is absent or wrong), ranges, the arguments of _target_ nodes."""
    try:
        config = resolved(cfg)
    except ConfigValidationError as error:
        refuse([missing, str(error).removeprefix("Invalid config: ")])
    refuse([missing, *range_problems(config, KEYS), *argument_problems(config, "")])
