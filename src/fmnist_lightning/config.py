"""Where the Hydra configs live, and the resolvers they use."""

import uuid
from pathlib import Path

from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent
# The configs sit in conf/ at the repository root; a wheel carries them inside the package.
CONFIG_DIR = next(
    (
        str(path)
        for path in (PACKAGE_DIR / "conf", PACKAGE_DIR.parents[1] / "conf")
        if path.is_dir()
    ),
    str(PACKAGE_DIR.parents[1] / "conf"),
)


def register_resolvers() -> None:
    """``${unique_id:}``: six hex digits, so two runs started in the same second get two folders."""
    if not OmegaConf.has_resolver("unique_id"):
        OmegaConf.register_new_resolver("unique_id", lambda: uuid.uuid4().hex[:6], use_cache=True)
