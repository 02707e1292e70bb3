"""``python -m fmnist_lightning.benchmark``: how fast the project trains and evaluates, measured
on its own pieces (the config ``train`` composes, with ``debug=benchmark``, and
``training.builders``), so that the figures are a real run's; the measuring pieces are in
``benchmarking/``. The JSON: docs/performance.md."""

import argparse
import functools
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from rich.console import Console
from rich.table import Column, Table

from fmnist_lightning import cli
from fmnist_lightning.benchmarking.baselines import plain_training, textbook_baseline
from fmnist_lightning.benchmarking.environment import environment, memory
from fmnist_lightning.benchmarking.flops import flop_figures
from fmnist_lightning.benchmarking.timing import StepTimer, median_rate, timed, timed_windows
from fmnist_lightning.config.compose import compose
from fmnist_lightning.config.overrides import check_overrides
from fmnist_lightning.config.schema import validate_config
from fmnist_lightning.data.synthetic import write_fashion_mnist
from fmnist_lightning.inference.batches import predict_probabilities
from fmnist_lightning.inference.output_files import write_atomically
from fmnist_lightning.models.module import load_module
from fmnist_lightning.models.runtime import resolve_device
from fmnist_lightning.training import builders
from fmnist_lightning.training.machine import keep_freed_memory

COMMAND = "python -m fmnist_lightning.benchmark"
# --quick: a smoke test of every measurement in well under a minute.
QUICK = {"steps": 2, "warmup": 2, "repeats": 3, "baseline_steps": 3, "matmul_size": 256}
MINIMUMS = dict(steps=1, warmup=0, repeats=1, baseline_steps=1, matmul_size=1, threads=1)
# --no-epoch: only the timed steps, no validation: the callbacks that need val metrics go too.
NO_EPOCH = ["trainer.limit_val_batches=0", "trainer.num_sanity_val_steps=0"]
NO_EPOCH += [f"callbacks.{name}=null" for name in ("model_checkpoint", "early_stopping")]
# The targets the defaults were chosen against: figures to reach, and figures to stay below.
AT_LEAST = {"lightning_vs_plain": 0.90, "speedup_vs_textbook": 2.2, "fraction_of_matmul_peak": 0.6}
BELOW = {"data_wait_fraction": 0.03, "projected_run_minutes": 8.0}
# How the table shows each figure, by its JSON key (the others are counts: "{:,}").
FORMATS = [
    ("{:,.0f} images/s", ("lightning_images_per_s", "plain_images_per_s", "images_per_s")),
    ("{:.2%}", ("lightning_vs_plain", "data_wait_fraction", "fetch_fraction", "accuracy")),
    ("{:.2%}", ("agreement", "fraction_of_matmul_peak")),
    ("{:.3f} ms", ("step_ms", "fetch_ms_per_batch")),
    ("{:.2f} s", ("first_step_s", "seconds", "wall_seconds", "cpu_seconds")),
    ("{:,.0f} FLOP/s", ("achieved_train_flops", "matmul_peak_flops")),
    ("{:,} FLOP/image", ("forward_flops_per_image", "train_flops_per_image")),
    ("{:,.0f} MiB", ("peak_rss_mib", "peak_gpu_mib")),
    ("{:.1f} min", ("projected_run_minutes",)),
    ("{:.2f} x", ("speedup_vs_textbook",)),
]
# The sections of figures the table shows, in order (--eval-only: one per precision).
SECTIONS = ("train", "data_wait", "eval", "memory", "flops", "epoch", "baseline")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    about = "How fast the default training path trains and evaluates, or (--eval-only) a "
    about += "checkpoint's inference speed. See docs/performance.md."
    options = argparse.ArgumentParser(prog=COMMAND, description=about)
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
    args.command = " ".join([COMMAND, *(sys.argv[1:] if argv is None else argv)])
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    args.output = args.output or Path(f"lightning_logs/benchmarks/benchmark-{stamp}.json")
    if args.quick:
        vars(args).update(QUICK)
    # Batches one epoch must hold for every window (a window ends when the next step starts).
    args.batches = args.warmup + args.steps * args.repeats + 1
    for name, minimum in MINIMUMS.items():
        if (value := getattr(args, name)) is not None and value < minimum:
            options.error(f"--{name.replace('_', '-')} must be at least {minimum}, got {value}")
    return args


def synthetic_sizes(cfg, batches: int, quick: bool) -> tuple[int, int]:
    """Training and test images of the ``--synthetic`` files: the real split sizes, or with
    --quick 500 test images and just enough training images (at least 640) for every window."""
    if not quick:
        return 60_000, 10_000
    # Full batches only: a last, smaller batch would be a step of another size in the epoch.
    # The split keeps count - round(count * val_fraction) images: at least the batches'.
    return max(640, math.ceil(batches * cfg.data.batch_size / (1 - cfg.data.val_fraction))), 500


def benchmark_config(args: argparse.Namespace, folder: Path, *extra: str):
    """The composed, checked config, run in ``folder``; with --synthetic it writes its data."""
    choices = {
        "data.root": str(folder / "data") if args.synthetic else args.data_root,
        "data.batch_size": args.batch_size,
        "trainer.precision": args.precision,
        "model.channels_last": args.memory_format and args.memory_format == "channels_last",
        "model.compile": args.compile,
        "trainer.limit_train_batches": None if args.epoch else args.batches,
    }
    overrides = ["debug=benchmark", f"paths.run_dir={folder / 'run'}"]
    overrides += [f"{key}={value}" for key, value in choices.items() if value is not None]
    overrides += [*([] if args.epoch else NO_EPOCH), *args.overrides, *extra]
    check_overrides(overrides)
    cfg = builders.finalise(compose("train", overrides))
    validate_config(cfg)
    if args.synthetic:
        write_fashion_mnist(folder / "data", *synthetic_sizes(cfg, args.batches, args.quick))
    return cfg


def training(args: argparse.Namespace, cfg, datamodule, phases: dict) -> tuple:
    """Every training and evaluation figure of the composed config."""
    keep_freed_memory()  # as train does, so that the figures are those of a real run
    timer, images = StepTimer(args.warmup, args.steps), args.steps * int(cfg.data.batch_size)
    L.seed_everything(cfg.seed, workers=True)
    module = builders.build_module(cfg, datamodule.classes)
    trainer = builders.build_trainer(cfg, [timer])
    timed(phases, "trainer_fit", trainer.fit, module, datamodule=datamodule)
    windows, device = timer.windows(), trainer.strategy.root_device
    rate, step_seconds = median_rate(images, windows), statistics.median(windows) / args.steps
    # The timer's test epochs, not these windows, which hold the Trainer's set-up too.
    test = functools.partial(trainer.test, module, datamodule=datamodule, verbose=False)
    runs = max(args.repeats, 2)
    timed(phases, "trainer_test", timed_windows, test, 1, 1, runs, device)
    tests = timer.seconds[-runs:]  # after the training epochs' and the warm-up test's
    test_images = len(datamodule.tensors["test"])
    eval_rate = median_rate(test_images, tests)
    plain_windows = timed(phases, "plain_loop", plain_training, cfg, trainer, args)
    plain_rate = median_rate(images, plain_windows)
    loader = datamodule.train_dataloader()  # the batch fetch alone
    batches, fetches = iter(loader), min(args.warmup + args.steps, len(loader))
    fetch = statistics.median(timed_windows(lambda: next(batches), 0, 1, fetches))
    figures = {
        "settings": {
            "precision": str(cfg.trainer.precision),  # resolved once, by finalise
            "channels_last": bool(cfg.model.channels_last),
            "compile": bool(cfg.model.compile),
            "batch_size": int(cfg.data.batch_size),
            "steps": args.steps,
            "warmup": args.warmup,
        },
        "train": {
            "lightning_images_per_s": rate,
            "plain_images_per_s": plain_rate,
            "lightning_vs_plain": rate / plain_rate,
            "step_ms": 1000 * step_seconds,
            # The first step compiles the training graph when model.compile=true.
            "first_step_s": timer.batch_ends[0] - timer.batch_starts[0],
            "lightning_window_seconds": windows,
            "plain_window_seconds": plain_windows,
        },
        "data_wait": {
            # Upper bound: the gap also holds Lightning's per-step logging and bookkeeping.
            "data_wait_fraction": timer.between_steps_fraction(),
            "fetch_ms_per_batch": 1000 * fetch,
            "fetch_fraction": fetch / step_seconds,
        },
        "eval": {"test_images": test_images, "images_per_s": eval_rate, "window_seconds": tests},
        "memory": memory(device),  # before the matmul and the baseline allocate their own
        "flops": timed(phases, "flops_and_matmul", flop_figures, cfg, args, rate, device),
        "epoch": None,
        "baseline": None,
        "targets": AT_LEAST | BELOW,
    }
    if args.epoch:
        # The benchmark fits one epoch; the projection uses the run length a user would get.
        max_epochs = int(compose("train", list(args.overrides)).trainer.max_epochs)
        # Start-up (fit minus the epoch) + max_epochs epochs + one test pass.
        fit, seconds = phases["trainer_fit"], timer.seconds[0]
        minutes = (fit + (max_epochs - 1) * seconds + test_images / eval_rate) / 60
        figures["epoch"] = {
            "seconds": seconds,
            "train_images": len(datamodule.tensors["train"]),
            "val_images": len(datamodule.tensors["val"]),
            "default_max_epochs": max_epochs,
            "projected_run_minutes": minutes,
        }
    if args.baseline:
        figures["baseline"] = timed(phases, "baseline", textbook_baseline, cfg, args, device, rate)
    return device, figures


def eval_only(args: argparse.Namespace, cfg, datamodule, phases: dict, module) -> tuple:
    """Per precision, ``--repeats`` passes of the inference path ``evaluate`` runs over the test
    set (its outputs come back to the CPU: no sync needed). CPU seconds / threads is what an
    idle machine would take."""
    device, batch_size = resolve_device(cfg.trainer.accelerator), int(cfg.data.eval_batch_size)
    datamodule.setup("test")
    images, labels = datamodule.tensors["test"].tensors
    # Without --precision: fp32, and bf16 autocast (native on recent CPUs and GPUs).
    precisions = [str(cfg.trainer.precision)] if args.precision else ["32-true", "bf16-mixed"]
    by_precision, predictions, started = {}, {}, time.perf_counter()
    module.to(device)
    for precision in precisions:
        predict_probabilities(module, images[:batch_size], batch_size, precision)  # warm-up
        walls, cpus = [], []
        for _ in range(args.repeats):
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            predicted = predict_probabilities(module, images, batch_size, precision).argmax(1)
            walls.append(time.perf_counter() - wall_start)
            cpus.append(time.process_time() - cpu_start)
        predictions[precision] = predicted
        by_precision[precision] = {
            "wall_seconds": statistics.median(walls),
            "cpu_seconds": statistics.median(cpus),
            "images_per_s": len(images) / statistics.median(walls),
            "accuracy": (predicted == labels.cpu()).float().mean().item(),
            "agreement": (predicted == predictions[precisions[0]]).float().mean().item(),
            "window_seconds": walls,
        }
    phases["inference"] = time.perf_counter() - started
    return device, {
        "settings": {"checkpoint": str(Path(args.eval_only).resolve()), "test_images": len(images)},
        "eval_only": {"reference_precision": precisions[0], "by_precision": by_precision},
        "memory": memory(device),
    }


def table(result: dict) -> Table:
    """Every figure of ``result`` with its unit, beside the target it is measured against."""
    env, settings = result["environment"], result["settings"]
    settings = ", ".join(f"{key} {value}" for key, value in settings.items())
    machine = f"{env['device']} ({env['cpu_model']}, {env['torch_threads']} threads)"
    title = f"fmnist-lightning benchmark on {machine}: {settings}"
    values = Column("value", justify="right")
    out = Table("figure", values, "target", title=title, title_justify="left")
    sections = {name: result[name] for name in SECTIONS if result.get(name)}
    sections |= result.get("eval_only", {}).get("by_precision", {})  # a section per precision
    for section, figures in sections.items():
        for key, value in figures.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue  # a list of windows, a dict by kernel or by operator
            shown = next((form for form, keys in FORMATS if key in keys), "{:,}")
            note, target, higher = "", (AT_LEAST | BELOW).get(key), key in AT_LEAST
            if target is not None:
                verdict = "[green]met[/]" if (value >= target) == higher else "[red]missed[/]"
                note = f"{verdict} (target {'≥' if higher else '<'} {shown.format(target)})"
            out.add_row(f"{section}: {key}", shown.format(value), note)
    return out


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print its table, write its JSON; returns the figures."""
    args, phases = parse_args(argv), {}
    module = load_module(args.eval_only) if args.eval_only else None
    # The checkpoint's own normalisation: prediction preprocesses as its training did.
    extra = [f"data.{key}={module.hparams[key]}" for key in ("mean", "std")] if module else []
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads or threads)
    try:
        with tempfile.TemporaryDirectory(prefix="fmnist-benchmark-") as tmp:
            cfg = benchmark_config(args, Path(tmp), *extra)
            datamodule = builders.build_datamodule(cfg)
            datamodule.prepare_data()
            measure = functools.partial(eval_only, module=module) if module else training
            device, figures = measure(args, cfg, datamodule, phases)
        figures["settings"] |= {
            "data": "synthetic" if args.synthetic else "real",
            "data_root": str(cfg.data.root),
            "eval_batch_size": int(cfg.data.eval_batch_size),
            "repeats": args.repeats,
        }
        result = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "command": args.command,
            "environment": environment(device),  # with the run's --threads
            **figures,
            "phase_seconds": phases,
        }
    finally:
        torch.set_num_threads(threads)  # callers in the same process keep their setting
    write_atomically(args.output, (json.dumps(result, indent=2) + "\n").encode())
    Console().print(table(result), f"JSON: {args.output.resolve()}", sep="\n")
    return result


if __name__ == "__main__":
    cli.run(lambda: main() and None)  # main returns the figures, not an exit status
