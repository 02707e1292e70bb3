"""``python -m fmnist_lightning.benchmark``: see the package's docstring, or ``--help``."""

from fmnist_lightning import cli
from fmnist_lightning.benchmark.cli import main

if __name__ == "__main__":
    cli.run(lambda: main() and None)  # main returns the figures, not an exit status
