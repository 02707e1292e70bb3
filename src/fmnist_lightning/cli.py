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
        sys.exit(command() or 0)
    except FmnistError as error:
        # Every rank of a launch raises alike: the first one prints.
        from fmnist_lightning.config.launch import launch_rank  # a refusal's import only

        if launch_rank() == 0:
            print(f"{error.prefix}{error}", file=sys.stderr)
        sys.exit(error.exit_status)
    except KeyboardInterrupt:
        sys.exit(130)  # 128 + SIGINT, as for every signal (errors.Stopped)


def command_parser(name: str, doc: str) -> argparse.ArgumentParser:
    """The parser of a plain argparse command; its help: the first paragraph of the command's
    docstring, its epilog the last (exit statuses)."""
    paragraphs = doc.split("\n\n")
    prog = f"python -m fmnist_lightning.{name}"
    return argparse.ArgumentParser(prog, description=paragraphs[0], epilog=paragraphs[-1])


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    """--overwrite, of every command that writes an ``--output`` file."""
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def checkpoint_command(name: str, doc: str) -> argparse.ArgumentParser:
    """The parser of a command that reads a checkpoint and writes an ``--output`` file."""
    parser = command_parser(name, doc)
    parser.add_argument("checkpoint", type=Path, help="a .ckpt file written by training")
    add_overwrite(parser)
    return parser
