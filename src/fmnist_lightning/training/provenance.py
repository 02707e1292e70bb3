"""Which code wrote a run's files: recorded in test_metrics.json and in every checkpoint."""

import subprocess
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# The checkpoint key that holds provenance(); test_metrics.json holds its keys at the top.
CHECKPOINT_KEY = "fmnist_lightning"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def git(*args: str) -> str | None:
    """git's output in the package's folder; None when git, or a repository there, is absent."""
    try:
        done = subprocess.run(
            ["git", "-C", str(PACKAGE_DIR), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@cache  # three git calls, once per process: every checkpoint and the summary share them
def provenance() -> dict[str, str | bool | None]:
    """The package's ``version``; the ``commit`` of the checkout it is imported from and
    whether that had uncommitted changes (``dirty``) when first asked, both None outside a
    checkout (an installed wheel). Plain values: a checkpoint holding them loads with
    weights_only."""
    try:
        package_version = version("fmnist-lightning")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        package_version = None
    commit = dirty = None
    # A wheel installed into a virtual environment inside some repository is not that
    # repository's code: the package's own files must be tracked there.
    if git("ls-files", "--error-unmatch", "__init__.py") is not None:
        commit = git("rev-parse", "HEAD")
        # Untracked files are not looked at: cheap, and they are not the package's code.
        changes = git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no")
        dirty = bool(changes) if commit and changes is not None else None
    return {"version": package_version, "commit": commit, "dirty": dirty}
