"""``python -m fmnist_lightning.benchmark``: see the package's docstring, or ``--help``."""

from fmnist_lightning.benchmark.cli import main

if __name__ == "__main__":
    main()
