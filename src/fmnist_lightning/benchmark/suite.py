"""The benchmark's runs: compose the training config, run every measurement, gather the figures.

:func:`run` measures training and evaluation of the composed config; :func:`run_eval_only`
the inference path of a trained checkpoint. Both return one JSON-ready dict.
"""

import argparse
import statistics
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from fmnist_lightning.benchmark.baseline import (
    TEXTBOOK_BATCH_SIZE,
    TEXTBOOK_PRECISION,
    textbook_baseline,
)
from fmnist_lightning.benchmark.environment import environment, memory
from fmnist_lightning.benchmark.evaluation import (
    EVAL_ONLY_PRECISIONS,
    inference_speed,
    trainer_test,
)
from fmnist_lightning.benchmark.flops import flop_figures
from fmnist_lightning.benchmark.harness import (
    BenchmarkError,
    Windows,
    median_rate,
    timed_phase,
    window_seconds,
)
from fmnist_lightning.benchmark.report import TARGETS
from fmnist_lightning.benchmark.settings import benchmark_config, windows_of
from fmnist_lightning.benchmark.training import (
    TrainerRun,
    data_fetch_seconds,
    lightning_training,
    plain_training,
)
from fmnist_lightning.config.compose import compose
from fmnist_lightning.models.module import load_module
from fmnist_lightning.models.runtime import resolve_device
from fmnist_lightning.training.builders import build_datamodule
from fmnist_lightning.training.machine import keep_freed_memory

COMMAND = "python -m fmnist_lightning.benchmark"


def header(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    return {
        "created": datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([COMMAND, *args.argv]),
        "environment": environment(device),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every training and evaluation measurement of the composed config."""
    keep_freed_memory()  # as train does, so that the figures are those of a real run
    with tempfile.TemporaryDirectory(prefix="fmnist-benchmark-") as tmp:
        cfg = benchmark_config(args, Path(tmp))
        # The benchmark fits one epoch; the projection uses the run length a user would get.
        max_epochs = int(compose("train", list(args.overrides)).trainer.max_epochs)
        return measure(cfg, args, max_epochs)


def lightning_windows(run: TrainerRun, windows: Windows) -> list[float]:
    """The Trainer's window durations, cut from the step start times of the whole epoch."""
    seconds = window_seconds(run.timer.batch_starts, windows.warmup, windows.steps)
    if not seconds:
        raise BenchmarkError(
            f"One epoch has {len(run.timer.batch_starts)} training batches, too few for "
            f"{windows.warmup} warm-up steps and a window of {windows.steps} (+1); lower "
            "--warmup/--steps, or raise the data size."
        )
    return seconds


def measure(cfg: DictConfig, args: argparse.Namespace, max_epochs: int) -> dict[str, Any]:
    windows = windows_of(args)
    phases: dict[str, float] = {}
    with timed_phase(phases, "trainer_fit"):
        fit = lightning_training(cfg, windows)
    device = fit.trainer.strategy.root_device
    batch_size = int(cfg.data.batch_size)
    trainer_windows = lightning_windows(fit, windows)
    lightning_rate = median_rate(windows.steps * batch_size, trainer_windows)
    step_seconds = statistics.median(w / windows.steps for w in trainer_windows)

    with timed_phase(phases, "trainer_test"):
        test_images = trainer_test(fit, max(windows.repeats, 2))
    eval_rate = median_rate(test_images, fit.timer.test_seconds)

    with timed_phase(phases, "plain_loop"):
        forward_context = fit.trainer.precision_plugin.forward_context
        plain_windows = plain_training(cfg, fit.datamodule, windows, device, forward_context)
    plain_rate = median_rate(windows.steps * batch_size, plain_windows)
    fetch = data_fetch_seconds(fit.datamodule, windows.warmup + windows.steps)
    memory_used = memory(device)  # before the matmul and the baseline allocate their own

    matmul_size = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    with timed_phase(phases, "flops_and_matmul"):
        flops = flop_figures(
            cfg, fit.datamodule.num_classes, lightning_rate, matmul_size, device, windows.repeats
        )

    baseline = None
    if args.baseline:
        with timed_phase(phases, "baseline"):
            baseline = baseline_figures(cfg, args, device, lightning_rate)

    return {
        **header(args, device),
        "settings": {
            "data": "synthetic" if args.synthetic else "real",
            "data_root": str(cfg.data.root),
            "precision": str(cfg.trainer.precision),  # resolved once, by compose_config
            "channels_last": bool(cfg.model.channels_last),
            "compile": bool(cfg.model.compile),
            "batch_size": batch_size,
            "eval_batch_size": int(cfg.data.eval_batch_size),
            "steps": windows.steps,
            "warmup": windows.warmup,
            "repeats": windows.repeats,
            "lightning_windows": len(trainer_windows),
            "statistic": "median over timed windows after warm-up",
            "overrides": list(args.overrides),
        },
        "train": {
            "lightning_images_per_s": lightning_rate,
            "plain_images_per_s": plain_rate,
            "lightning_vs_plain": lightning_rate / plain_rate,
            "step_ms": 1000 * step_seconds,
            # The first step compiles the training graph when model.compile=true.
            "first_step_s": fit.timer.batch_ends[0] - fit.timer.batch_starts[0],
            "fit_seconds": fit.fit_seconds,
            "lightning_window_seconds": trainer_windows,
            "plain_window_seconds": plain_windows,
        },
        "data_wait": {
            # Upper bound: the gap also holds Lightning's per-step logging and bookkeeping.
            "data_wait_fraction": fit.timer.between_steps_fraction(windows.warmup),
            "fetch_ms_per_batch": 1000 * fetch,
            "fetch_fraction": fetch / step_seconds,
        },
        "eval": {
            "test_images": test_images,
            "images_per_s": eval_rate,
            "window_seconds": fit.timer.test_seconds,
        },
        "memory": memory_used,
        "flops": flops,
        "epoch": epoch_figures(fit, test_images / eval_rate, max_epochs) if args.epoch else None,
        "baseline": baseline,
        "targets": TARGETS,
        "phase_seconds": phases,
    }


def epoch_figures(fit: TrainerRun, test_seconds: float, max_epochs: int) -> dict[str, Any]:
    """The first epoch's time (train + validation) and the run length it projects."""
    epoch_seconds = fit.timer.epoch_seconds[0]
    return {
        "seconds": epoch_seconds,
        "train_images": len(fit.datamodule.tensors["train"]),
        "val_images": len(fit.datamodule.tensors["val"]),
        "fit_seconds_one_epoch": fit.fit_seconds,
        "default_max_epochs": max_epochs,
        # Start-up (fit minus the epoch) + max_epochs epochs + one test pass.
        "projected_run_minutes": (
            fit.fit_seconds - epoch_seconds + max_epochs * epoch_seconds + test_seconds
        )
        / 60,
    }


def baseline_figures(
    cfg: DictConfig, args: argparse.Namespace, device: torch.device, lightning_rate: float
) -> dict[str, Any]:
    """The textbook baseline's speed, and the project's speed-up over it."""
    windows = Windows(warmup=5, steps=args.baseline_steps, repeats=args.repeats)
    seconds = textbook_baseline(cfg, windows, args.baseline_workers, device)
    rate = median_rate(windows.steps * TEXTBOOK_BATCH_SIZE, seconds)
    return {
        "images_per_s": rate,
        "batch_size": TEXTBOOK_BATCH_SIZE,
        "workers": args.baseline_workers,
        "precision": TEXTBOOK_PRECISION,
        "speedup_vs_textbook": lightning_rate / rate,
        "window_seconds": seconds,
    }


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
        images, labels = datamodule.tensors["test"].tensors
        precisions = [str(cfg.trainer.precision)] if args.precision else EVAL_ONLY_PRECISIONS
        batch_size = int(cfg.data.eval_batch_size)
        with timed_phase(phases, "inference"):
            figures = inference_speed(
                module, images, labels, batch_size, precisions, windows_of(args).repeats
            )
    return {
        **header(args, device),
        "settings": {
            "mode": "eval-only",
            "checkpoint": str(Path(args.eval_only).resolve()),
            "data": "synthetic" if args.synthetic else "real",
            "data_root": str(cfg.data.root),
            "eval_batch_size": batch_size,
            "repeats": args.repeats,
            "test_images": len(images),
            "statistic": "median over repeated passes after a warm-up batch",
            "overrides": list(args.overrides),
        },
        "eval_only": figures,
        "memory": memory(device),
        "phase_seconds": phases,
    }
