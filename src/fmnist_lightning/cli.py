"""The one command-line front of every command, ``cli.run(main)``: run it, print what stopped
it as one line, exit with the status of ``fmnist_lightning.errors``. Only the commands import
this."""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from fmnist_lightning.errors import FmnistError


def run(command: Callable[[], int | None]) -> NoReturn:
    """Call ``command``; exit with its status, or print what stopped it and exit with that."""
    try:
        status = command()
    except FmnistError as error:
        # Every rank of a launch raises alike: the first one prints.
        from fmnist_lightning.config.launch import launch_rank  # a refusal's import only

        if launch_rank() == 0:
            print(f"{error.prefix}{error}", file=sys.stderr)
        sys.exit(error.exit_status)
    except KeyboardInterrupt:
        sys.exit(130)  # 128 + SIGINT, as for every signal (errors.Stopped)
    sys.exit(status or 0)


def checkpoint_command(name: str, doc: str, statuses: str) -> argparse.ArgumentParser:
    """The parser of a command that reads a checkpoint and writes an ``--output`` file."""
    prog, epilog = f"python -m fmnist_lightning.{name}", f"Exit status: {statuses}"
    parser = argparse.ArgumentParser(prog, description=doc.split("\n\n")[0], epilog=epilog)
    parser.add_argument("checkpoint", type=Path, help="a .ckpt file written by training")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return parser
