"""The command ``python -m fmnist_lightning.benchmark``: its options, the training config it
composes, every measurement gathered into one JSON-ready dict, the table and the JSON file.

The config is the one ``python -m fmnist_lightning.train`` would compose, with
``debug=benchmark`` (one quiet epoch, no end-of-run work), the command-line choices and the
user's overrides; its precision is resolved and it is validated like a training run's.
"""

import argparse
import contextlib
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from fmnist_lightning.benchmark import measure
from fmnist_lightning.benchmark.flops import environment, flop_figures, memory
from fmnist_lightning.benchmark.report import TARGETS, eval_only_table, table
from fmnist_lightning.config.compose import compose, finalise
from fmnist_lightning.config.overrides import check_overrides
from fmnist_lightning.config.schema import validate_config
from fmnist_lightning.data.datamodule import split_indices
from fmnist_lightning.data.synthetic import write_fashion_mnist
from fmnist_lightning.inference.output_files import write_atomically
from fmnist_lightning.models.module import load_module
from fmnist_lightning.models.runtime import resolve_device
from fmnist_lightning.training.builders import build_datamodule
from fmnist_lightning.training.machine import keep_freed_memory

COMMAND = "python -m fmnist_lightning.benchmark"
# --quick: a smoke test of every measurement in well under a minute.
QUICK = {"steps": 2, "warmup": 2, "repeats": 3, "baseline_steps": 3, "matmul_size": 256}
MINIMUMS = dict(steps=1, warmup=0, repeats=1, baseline_steps=1, matmul_size=1, threads=1)
# --synthetic writes the real split sizes; with --quick, 500 test images and just enough
# training images for every timed window of one epoch (at least QUICK_TRAIN).
FULL_SIZES = (60_000, 10_000)
QUICK_TRAIN, QUICK_TEST = 640, 500
# What --eval-only compares when --precision is not given: fp32, and bf16 autocast
# (native on CPUs with AVX-512 BF16 or AMX and on recent GPUs, emulated and slow elsewhere).
EVAL_ONLY_PRECISIONS = ("32-true", "bf16-mixed")
# --no-epoch: only the timed steps, no validation: the callbacks that need val metrics go too.
NO_EPOCH = [
    "trainer.limit_val_batches=0",
    "trainer.num_sanity_val_steps=0",
    "callbacks.model_checkpoint=null",
    "callbacks.early_stopping=null",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options, with --quick applied and every count checked."""
    options = argparse.ArgumentParser(
        prog=COMMAND,
        description="Training/eval throughput, data wait, memory, FLOP/s and epoch time of "
        "the project's default training path, versus a plain loop and a textbook baseline; "
        "or, with --eval-only CKPT, the inference speed of a trained checkpoint on the test "
        "set, per precision (--precision: that one; default: 32-true and bf16-mixed). "
        "--synthetic writes random images in the IDX format to a temporary folder instead of "
        "the real data (the real loading code still runs), small with --quick. Trailing "
        "arguments are Hydra overrides of the training config, e.g. model.net.dropout=0.3.",
    )
    add, switch = options.add_argument, argparse.BooleanOptionalAction
    add("--steps", type=int, default=25, help="training steps per timed window")
    add("--warmup", type=int, default=10, help="untimed steps before timing")
    add("--repeats", type=int, default=5, help="timed windows (medians are taken)")
    add("--batch-size", type=int, help="training batch size (default: config's)")
    add("--precision", help="trainer.precision: auto (default config), 32-true, bf16-mixed, ...")
    add("--memory-format", choices=("channels_last", "contiguous"), help="of the convolutions")
    add("--compile", action=switch, help="torch.compile the network (default: model.compile)")
    add("--epoch", action=switch, default=True, help="time one epoch, train + val, windows in it")
    add("--baseline", action=switch, default=True, help="time the textbook fp32 baseline too")
    add("--baseline-steps", type=int, default=40, help="steps per baseline window")
    add("--baseline-workers", type=int, default=2, help="baseline DataLoader workers")
    add("--threads", type=int, help="torch intra-op threads (default: torch's, one per core)")
    add("--matmul-size", type=int, help="n of the n x n matmul peak (default: 2048, 8192 on GPU)")
    add("--eval-only", metavar="CKPT", help="time this checkpoint's inference path instead")
    add("--quick", action="store_true", help="smoke test: 3 windows of 2 steps, small matmul")
    add("--synthetic", action="store_true", help="random IDX files instead of the real data")
    add("--data-root", help="folder holding FashionMNIST/raw/ (default: config's)")
    add("--output", type=Path, help="default: lightning_logs/benchmarks/benchmark-<time>.json")
    add("overrides", nargs="*", help="Hydra overrides of the training config")
    args = options.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        vars(args).update(QUICK)
    # Batches one epoch must hold for every window (a window ends when the next step starts).
    args.batches = args.warmup + args.steps * args.repeats + 1
    for name, minimum in MINIMUMS.items():
        if (value := getattr(args, name)) is not None and value < minimum:
            options.error(f"--{name.replace('_', '-')} must be at least {minimum}, got {value}")
    return args


def synthetic_sizes(cfg: Any, batches: int, quick: bool) -> tuple[int, int]:
    """Training and test images of the ``--synthetic`` files for this config."""
    if not quick:
        return FULL_SIZES
    # Full batches only: a last, smaller batch would be a step of another size in the epoch.
    needed, val_fraction = batches * int(cfg.data.batch_size), float(cfg.data.val_fraction)
    count = max(QUICK_TRAIN, math.ceil(needed / (1 - val_fraction)))
    while len(split_indices(count, val_fraction, seed=0)[0]) < needed:  # the split rounds
        count += 1
    return count, QUICK_TEST


def benchmark_config(args: argparse.Namespace, folder: Path, *extra: str) -> Any:
    """The composed, checked config the benchmark runs, in a temporary run folder; with
    ``--synthetic`` it writes the data it reads."""
    data_root = str(folder / "data") if args.synthetic else args.data_root
    overrides = ["debug=benchmark", f"paths.run_dir={folder / 'run'}"]
    choices = {
        "data.root": data_root,
        "data.batch_size": args.batch_size,
        "trainer.precision": args.precision,
        "model.channels_last": {"channels_last": True, "contiguous": False}.get(args.memory_format),
        "model.compile": args.compile,
    }
    overrides += [f"{key}={value}" for key, value in choices.items() if value is not None]
    if not args.epoch:
        overrides += [f"trainer.limit_train_batches={args.batches}", *NO_EPOCH]
    overrides += [*args.overrides, *extra]
    check_overrides(overrides)
    cfg = finalise(compose("train", overrides))
    validate_config(cfg)
    if args.synthetic:
        write_fashion_mnist(folder / "data", *synthetic_sizes(cfg, args.batches, args.quick))
    return cfg


@contextlib.contextmanager
def timed(phases: dict[str, float], name: str) -> Iterator[None]:
    """Record how long a block took under ``phases[name]`` (to see where a run's time goes)."""
    started = time.perf_counter()
    yield
    phases[name] = time.perf_counter() - started


def document(args: argparse.Namespace, device: torch.device, **sections: Any) -> dict[str, Any]:
    """The JSON document: when, how and on what the figures were measured, then the figures."""
    return {
        "created": datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([COMMAND, *args.argv]),
        "environment": environment(device),
        **sections,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every training and evaluation measurement of the composed config."""
    keep_freed_memory()  # as train does, so that the figures are those of a real run
    warmup, steps, repeats, phases = args.warmup, args.steps, args.repeats, {}
    timer = measure.StepTimer(warmup, steps)
    with tempfile.TemporaryDirectory(prefix="fmnist-benchmark-") as tmp:
        cfg = benchmark_config(args, Path(tmp))
        with timed(phases, "trainer_fit"):
            trainer, fit_seconds = measure.lightning_training(cfg, timer)
        device, batch_size = trainer.strategy.root_device, int(cfg.data.batch_size)
        trainer_windows = timer.windows()
        lightning_rate = measure.median_rate(steps * batch_size, trainer_windows)
        step_seconds = statistics.median(trainer_windows) / steps
        with timed(phases, "trainer_test"):
            test_images = measure.trainer_test(trainer, timer, max(repeats, 2))
        eval_rate = measure.median_rate(test_images, timer.test_seconds)
        with timed(phases, "plain_loop"):
            plain_windows = measure.plain_training(cfg, trainer, args)
        plain_rate = measure.median_rate(steps * batch_size, plain_windows)
        fetch = measure.data_fetch_seconds(trainer, warmup + steps)
        memory_used = memory(device)  # before the matmul and the baseline allocate their own
        matmul_size = args.matmul_size or (8192 if device.type == "cuda" else 2048)
        with timed(phases, "flops_and_matmul"):
            flops = flop_figures(cfg, lightning_rate, matmul_size, device, repeats)
        epoch = baseline = None
        if args.epoch:
            # The benchmark fits one epoch; the projection uses the run length a user would get.
            max_epochs = int(compose("train", list(args.overrides)).trainer.max_epochs)
            epoch_seconds, tensors = timer.epoch_seconds[0], trainer.datamodule.tensors
            epoch = {
                "seconds": epoch_seconds,
                "train_images": len(tensors["train"]),
                "val_images": len(tensors["val"]),
                "fit_seconds_one_epoch": fit_seconds,
                "default_max_epochs": max_epochs,
                # Start-up (fit minus the epoch) + max_epochs epochs + one test pass.
                "projected_run_minutes": (
                    fit_seconds + (max_epochs - 1) * epoch_seconds + test_images / eval_rate
                )
                / 60,
            }
        if args.baseline:
            with timed(phases, "baseline"):
                baseline = measure.textbook_baseline(cfg, args, device, lightning_rate)
    return document(
        args,
        device,
        settings={
            "data": "synthetic" if args.synthetic else "real",
            "data_root": str(cfg.data.root),
            "precision": str(cfg.trainer.precision),  # resolved once, by finalise
            "channels_last": bool(cfg.model.channels_last),
            "compile": bool(cfg.model.compile),
            "batch_size": batch_size,
            "eval_batch_size": int(cfg.data.eval_batch_size),
            "steps": steps,
            "warmup": warmup,
            "repeats": repeats,
            "lightning_windows": len(trainer_windows),
            "statistic": "median over timed windows after warm-up",
            "overrides": list(args.overrides),
        },
        train={
            "lightning_images_per_s": lightning_rate,
            "plain_images_per_s": plain_rate,
            "lightning_vs_plain": lightning_rate / plain_rate,
            "step_ms": 1000 * step_seconds,
            # The first step compiles the training graph when model.compile=true.
            "first_step_s": timer.batch_ends[0] - timer.batch_starts[0],
            "fit_seconds": fit_seconds,
            "lightning_window_seconds": trainer_windows,
            "plain_window_seconds": plain_windows,
        },
        data_wait={
            # Upper bound: the gap also holds Lightning's per-step logging and bookkeeping.
            "data_wait_fraction": timer.between_steps_fraction(),
            "fetch_ms_per_batch": 1000 * fetch,
            "fetch_fraction": fetch / step_seconds,
        },
        eval={
            "test_images": test_images,
            "images_per_s": eval_rate,
            "window_seconds": timer.test_seconds,
        },
        memory=memory_used,
        flops=flops,
        epoch=epoch,
        baseline=baseline,
        targets=TARGETS,
        phase_seconds=phases,
    )


def run_eval_only(args: argparse.Namespace) -> dict[str, Any]:
    """The inference path (``predict_probabilities``) of the checkpoint ``--eval-only`` names,
    over the test set, per precision."""
    phases: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="fmnist-benchmark-") as tmp:
        module = load_module(args.eval_only)
        # The checkpoint's own normalisation: prediction preprocesses as its training did.
        normalisation = (f"data.mean={module.hparams.mean}", f"data.std={module.hparams.std}")
        cfg = benchmark_config(args, Path(tmp), *normalisation)
        device = resolve_device(cfg.trainer.accelerator)
        module.to(device)
        datamodule = build_datamodule(cfg)
        datamodule.prepare_data()
        datamodule.setup("test")
        test, batch_size = datamodule.tensors["test"], int(cfg.data.eval_batch_size)
        precisions = (str(cfg.trainer.precision),) if args.precision else EVAL_ONLY_PRECISIONS
        with timed(phases, "inference"):
            figures = measure.inference_speed(module, test, batch_size, precisions, args.repeats)
    return document(
        args,
        device,
        settings={
            "mode": "eval-only",
            "checkpoint": str(Path(args.eval_only).resolve()),
            "data": "synthetic" if args.synthetic else "real",
            "data_root": str(cfg.data.root),
            "eval_batch_size": batch_size,
            "repeats": args.repeats,
            "test_images": len(test),
            "statistic": "median over repeated passes after a warm-up batch",
            "overrides": list(args.overrides),
        },
        eval_only=figures,
        memory=memory(device),
        phase_seconds=phases,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its table, write its JSON; returns the figures."""
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = run_eval_only(args) if args.eval_only else run(args)
    finally:
        torch.set_num_threads(threads)  # callers in the same process keep their setting
    output = args.output or Path(
        f"lightning_logs/benchmarks/benchmark-{datetime.now():%Y-%m-%d_%H-%M-%S}.json"
    )
    write_atomically(output, (json.dumps(result, indent=2) + "\n").encode())
    console = Console()
    console.print(eval_only_table(result) if args.eval_only else table(result))
    console.print(f"JSON: {output.resolve()}")
    return result
