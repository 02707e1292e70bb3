"""The one command-line front: run a command, print what stopped it as one line, exit.

    if __name__ == "__main__":
        cli.run(main)          # main() returns an exit status (or None) or raises

The statuses are those of ``fmnist_lightning.errors``; only the commands import this.
"""

import os
import sys
from collections.abc import Callable
from typing import NoReturn

from fmnist_lightning.errors import FmnistError

SIGINT_STATUS = 130


def is_rank_zero() -> bool:
    """Whether this process prints: the first rank of a launch (every rank raises alike)."""
    return all(os.environ.get(name, "0") == "0" for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID"))


def report(error: FmnistError) -> None:
    """The one line a user sees for ``error``, on stderr."""
    if is_rank_zero():
        print(f"{error.prefix}{error}", file=sys.stderr)


def run(command: Callable[[], int | None]) -> NoReturn:
    """Call ``command``; exit with its status, or print what stopped it and exit with that."""
    try:
        status = command()
    except FmnistError as error:
        report(error)
        sys.exit(error.exit_status)
    except KeyboardInterrupt:
        sys.exit(SIGINT_STATUS)
    sys.exit(status or 0)
