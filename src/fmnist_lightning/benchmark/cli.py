"""The command line of ``python -m fmnist_lightning.benchmark``: options, the run, the JSON file."""

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from fmnist_lightning.benchmark.harness import BenchmarkError
from fmnist_lightning.benchmark.report import eval_only_table, table
from fmnist_lightning.benchmark.suite import run, run_eval_only
from fmnist_lightning.config.schema import ConfigValidationError
from fmnist_lightning.data.files import DataError
from fmnist_lightning.models.checkpoint_file import CheckpointError

# --quick: a smoke test of every measurement in well under a minute.
QUICK = {"steps": 2, "warmup": 2, "repeats": 3, "baseline_steps": 3, "matmul_size": 256}
MINIMUMS = {
    "steps": 1,
    "warmup": 0,
    "repeats": 1,
    "baseline_steps": 1,
    "matmul_size": 1,
    "threads": 1,
}


def parser() -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(
        prog="python -m fmnist_lightning.benchmark",
        description="Training/eval throughput, data wait, memory, FLOP/s and epoch time of "
        "the project's default training path, versus a plain loop and a textbook baseline; "
        "or, with --eval-only, the inference speed of a trained checkpoint.",
    )
    add = out.add_argument
    add("--steps", type=int, default=25, help="training steps per timed window")
    add("--warmup", type=int, default=10, help="untimed steps before timing")
    add("--repeats", type=int, default=5, help="timed windows (medians are taken)")
    add("--batch-size", type=int, help="training batch size (default: config's)")
    add("--precision", help="trainer.precision: auto (default config), 32-true, bf16-mixed, ...")
    add(
        "--memory-format",
        choices=("channels_last", "contiguous"),
        help="memory format of the convolutions (default: config's model.channels_last)",
    )
    add(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the network (default: config's model.compile)",
    )
    add(
        "--epoch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time one whole epoch (train + validation) and take the Trainer windows from it",
    )
    add(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the textbook fp32 baseline (ToTensor, DataLoader workers, batch 32)",
    )
    add("--baseline-steps", type=int, default=40, help="steps per baseline window")
    add("--baseline-workers", type=int, default=2, help="baseline DataLoader workers")
    add("--threads", type=int, help="torch intra-op threads (default: torch's, one per core)")
    add("--matmul-size", type=int, help="n of the n x n matmul peak (default: 2048, 8192 on GPU)")
    add(
        "--eval-only",
        metavar="CKPT",
        help="only time the inference path (what evaluate runs) of this checkpoint on the test "
        "set, per precision (--precision: that one; default: 32-true and bf16-mixed), "
        "--repeats passes each",
    )
    add(
        "--quick",
        action="store_true",
        help="a smoke test: 2 warm-up steps, 3 windows of 2 steps, small matmul and baseline",
    )
    add(
        "--synthetic",
        action="store_true",
        help="random images written in the IDX format to a temporary folder instead of the "
        "real data (the real loading code still runs); small with --quick",
    )
    add("--data-root", help="folder holding FashionMNIST/raw/ (default: config's)")
    add(
        "--output",
        type=Path,
        help="JSON file to write (default: lightning_logs/benchmarks/benchmark-<time>.json)",
    )
    add(
        "overrides",
        nargs="*",
        help="Hydra overrides of the training config, e.g. model.net.dropout=0.3",
    )
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options, with --quick applied and every count checked."""
    options = parser()
    args = options.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        vars(args).update(QUICK)
    for name, minimum in MINIMUMS.items():
        value = getattr(args, name)
        if value is not None and value < minimum:
            option = "--" + name.replace("_", "-")
            options.error(f"{option} must be at least {minimum}, got {value}")
    return args


def default_output() -> Path:
    return Path("lightning_logs/benchmarks") / f"benchmark-{datetime.now():%Y-%m-%d_%H-%M-%S}.json"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its table, write its JSON; returns the figures."""
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = run_eval_only(args) if args.eval_only else run(args)
    except (BenchmarkError, CheckpointError, ConfigValidationError, DataError) as error:
        raise SystemExit(f"Error: {error}") from None
    finally:
        torch.set_num_threads(threads)  # callers in the same process keep their setting
    output = args.output or default_output()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    console = Console()
    console.print(eval_only_table(result) if args.eval_only else table(result))
    console.print(f"JSON: {output.resolve()}")
    return result
