"""Where the Hydra configs live: conf/ at the repository root, or inside an installed wheel."""

from pathlib import Path
from typing import Any

import yaml

PACKAGE_DIR = Path(__file__).resolve().parents[1]
_PACKED = PACKAGE_DIR / "conf"  # inside a wheel
CONFIG_DIR = str(_PACKED if _PACKED.is_dir() else PACKAGE_DIR.parents[1] / "conf")


def group_options(group: str) -> dict[str, Any]:
    """A config group's options, name → settings: the .yaml files of conf/<group>/ (for the
    plain argparse commands, e.g. ``--tta flip`` reads conf/tta/flip.yaml)."""
    files = sorted((Path(CONFIG_DIR) / group).glob("*.yaml"))
    return {path.stem: yaml.safe_load(path.read_text()) for path in files}
