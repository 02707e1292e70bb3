"""Where the Hydra configs live: conf/ at the repository root, or inside an installed wheel."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
_PACKED = PACKAGE_DIR / "conf"  # inside a wheel
CONFIG_DIR = str(_PACKED if _PACKED.is_dir() else PACKAGE_DIR.parents[1] / "conf")
