"""Where the Hydra configs live: conf/ at the repository root, or inside an installed wheel."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
CONFIG_DIR = next(
    (
        str(path)
        for path in (PACKAGE_DIR / "conf", PACKAGE_DIR.parents[1] / "conf")
        if path.is_dir()
    ),
    str(PACKAGE_DIR.parents[1] / "conf"),
)
