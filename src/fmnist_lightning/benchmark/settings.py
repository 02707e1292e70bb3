"""What the benchmark runs: the composed training config, and the synthetic data it may read.

The config is the one ``python -m fmnist_lightning.train`` would compose, with
``debug=benchmark`` (one quiet epoch, no end-of-run work), the command-line choices and the
user's overrides; its precision is resolved and it is validated like a training run's.
"""

import argparse
import math
from pathlib import Path

from omegaconf import DictConfig

from fmnist_lightning.benchmark.harness import Windows
from fmnist_lightning.config.compose import compose, finalise
from fmnist_lightning.config.overrides import check_overrides
from fmnist_lightning.config.schema import validate_config
from fmnist_lightning.data.datamodule import split_indices
from fmnist_lightning.data.synthetic import write_fashion_mnist

# --synthetic writes the real split sizes; with --quick, 500 test images and just enough
# training images for every timed window of one epoch (at least QUICK_TRAIN).
FULL_SIZES = (60_000, 10_000)
QUICK_TRAIN, QUICK_TEST = 640, 500


def windows_of(args: argparse.Namespace) -> Windows:
    return Windows(args.warmup, args.steps, args.repeats)


def config_overrides(args: argparse.Namespace, data_root: str | None, run_dir: Path) -> list[str]:
    """Hydra overrides for the benchmark: ``debug=benchmark`` (one quiet epoch, no end-of-run
    work) in a temporary run folder, the command-line choices, then the user's overrides."""
    overrides = ["debug=benchmark", f"paths.run_dir={run_dir}"]
    if data_root:
        overrides.append(f"data.root={data_root}")
    if args.batch_size:
        overrides.append(f"data.batch_size={args.batch_size}")
    if args.precision:
        overrides.append(f"trainer.precision={args.precision}")
    if args.memory_format:
        overrides.append(f"model.channels_last={args.memory_format == 'channels_last'}")
    if args.compile is not None:
        overrides.append(f"model.compile={args.compile}")
    if not args.epoch:
        # Only the timed steps, no validation: the callbacks that need val metrics go too.
        overrides += [
            f"trainer.limit_train_batches={windows_of(args).batches_needed}",
            "trainer.limit_val_batches=0",
            "trainer.num_sanity_val_steps=0",
            "callbacks.model_checkpoint=null",
            "callbacks.early_stopping=null",
        ]
    return overrides + list(args.overrides)


def compose_config(overrides: list[str]) -> DictConfig:
    """The training config with ``overrides``, checked, with its precision resolved."""
    check_overrides(overrides)
    cfg = finalise(compose("train", overrides))
    validate_config(cfg)
    return cfg


def synthetic_sizes(cfg: DictConfig, windows: Windows, quick: bool) -> tuple[int, int]:
    """Training and test images of the ``--synthetic`` files for this config."""
    if not quick:
        return FULL_SIZES
    # Full batches only: a last, smaller batch would be a step of another size in the epoch.
    needed = windows.batches_needed * int(cfg.data.batch_size)
    val_fraction = float(cfg.data.val_fraction)
    count = max(QUICK_TRAIN, math.ceil(needed / (1 - val_fraction)))
    while len(split_indices(count, val_fraction, seed=0)[0]) < needed:  # the split rounds
        count += 1
    return count, QUICK_TEST


def benchmark_config(args: argparse.Namespace, folder: Path, *extra: str) -> DictConfig:
    """The composed config the benchmark runs; with ``--synthetic`` it writes the data it reads."""
    data_root = str(folder / "data") if args.synthetic else args.data_root
    cfg = compose_config([*config_overrides(args, data_root, folder / "run"), *extra])
    if args.synthetic:
        write_fashion_mnist(folder / "data", *synthetic_sizes(cfg, windows_of(args), args.quick))
    return cfg
