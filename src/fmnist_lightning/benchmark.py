"""Measure how fast the project trains and evaluates, and where the time goes.

    python -m fmnist_lightning.benchmark                  # the default config on the real data
    python -m fmnist_lightning.benchmark --quick --synthetic --output bench.json
    python -m fmnist_lightning.benchmark --precision 32-true --memory-format contiguous
    python -m fmnist_lightning.benchmark --compile --no-epoch --no-baseline
    python -m fmnist_lightning.benchmark model.net.dropout=0.3     # trailing Hydra overrides

Every figure runs the project's own pieces (the composed Hydra config with ``debug=benchmark``,
the data module, the LightningModule, ``training.builders.build_trainer``) and is a median
over repeated windows of
``--steps`` steps after ``--warmup`` steps. It prints a table and writes JSON holding:

1. training images/s through the Trainer, and through a plain PyTorch loop over the same
   network and the same in-memory tensors in this process (their ratio is the framework's
   overhead);
2. the share of step time spent outside the training step (fetching the next batch plus
   the loop's own bookkeeping: an upper bound on waiting for data);
3. evaluation images/s on the test set through ``Trainer.test``;
4. peak resident memory;
5. achieved training FLOP/s from torchinfo's multiply-adds, against the measured peak of
   a large matrix product in the same precision;
6. the time of one whole epoch (train + validation) of the default config, and the
   textbook baseline: torchvision dataset + ``ToTensor`` + ``DataLoader`` workers,
   batch size 32, fp32, Adam.
"""

import argparse
import contextlib
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader
from torchinfo import summary as torchinfo_summary

from fmnist_lightning.config.compose import compose, finalise
from fmnist_lightning.config.overrides import check_overrides
from fmnist_lightning.config.schema import ConfigValidationError, validate_config
from fmnist_lightning.data.datamodule import FashionMNISTDataModule
from fmnist_lightning.data.sampler import EpochBatchSampler
from fmnist_lightning.data.synthetic import write_fashion_mnist
from fmnist_lightning.models.module import build_network
from fmnist_lightning.training.builders import build_datamodule, build_module, build_trainer

# Training FLOPs per image = 2 FLOPs per multiply-add x (1 forward + 2 backward passes).
FLOPS_PER_MULT_ADD = 2
TRAIN_PASSES = 3
FLOP_CONVENTION = (
    "training FLOPs/image = 2 x torchinfo mult-adds (forward) x 3 (forward + backward, the "
    "backward costing two forwards); the first convolution's unneeded input gradient is counted too"
)
TEXTBOOK_BATCH_SIZE = 32
TEXTBOOK_LR = 1.0e-3
# Precisions whose plain-loop twin is "the same float32 weights under the same autocast".
PLAIN_LOOP_PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed")
TARGETS = {
    "lightning_vs_plain": 0.90,
    "data_wait_fraction": 0.03,
    "speedup_vs_textbook": 2.2,
    "projected_run_minutes": 8.0,
    "fraction_of_matmul_peak": 0.60,
}


# ----------------------------------------------------------------------------- options


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fmnist_lightning.benchmark",
        description="Training/eval throughput, data wait, memory, FLOP/s and epoch time of "
        "the project's default training path, versus a plain loop and a textbook baseline.",
    )
    parser.add_argument("--steps", type=int, default=25, help="training steps per timed window")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before timing")
    parser.add_argument("--repeats", type=int, default=5, help="timed windows (medians are taken)")
    parser.add_argument("--batch-size", type=int, help="training batch size (default: config's)")
    parser.add_argument(
        "--precision", help="trainer.precision: auto (default config), 32-true, bf16-mixed, ..."
    )
    parser.add_argument(
        "--memory-format",
        choices=("channels_last", "contiguous"),
        help="memory format of the convolutions (default: config's model.channels_last)",
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the network (default: config's model.compile)",
    )
    parser.add_argument(
        "--epoch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time one whole epoch (train + validation) and take the Trainer windows from it",
    )
    parser.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the textbook fp32 baseline (ToTensor, DataLoader workers, batch 32)",
    )
    parser.add_argument("--baseline-steps", type=int, default=40, help="steps per baseline window")
    parser.add_argument(
        "--baseline-workers", type=int, default=2, help="baseline DataLoader workers"
    )
    parser.add_argument(
        "--threads", type=int, help="torch intra-op threads (default: torch's, one per core)"
    )
    parser.add_argument(
        "--matmul-size", type=int, help="n of the n x n matmul peak (default: 2048, 8192 on GPU)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test: 2 warm-up steps, 3 windows of 2 steps, small matmul and baseline",
    )
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="random images written in the IDX format to a temporary folder instead of the "
        "real data (the real loading code still runs); small with --quick",
    )
    parser.add_argument("--data-root", help="folder holding FashionMNIST/raw/ (default: config's)")
    parser.add_argument(
        "--output",
        type=Path,
        help="JSON file to write (default: lightning_logs/benchmarks/benchmark-<time>.json)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="Hydra overrides of the training config, e.g. model.net.dropout=0.3",
    )
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.steps, args.warmup, args.repeats = 2, 2, 3
        args.baseline_steps, args.matmul_size = 3, 256
    for name in ("steps", "warmup", "repeats", "baseline_steps", "matmul_size", "threads"):
        if getattr(args, name) is None:
            continue
        minimum = 0 if name == "warmup" else 1
        if getattr(args, name) < minimum:
            option = "--" + name.replace("_", "-")
            parser.error(f"{option} must be at least {minimum}, got {getattr(args, name)}")
    return args


def config_overrides(args: argparse.Namespace, data_root: str | None, run_dir: Path) -> list[str]:
    """Hydra overrides for the benchmark: the command-line choices, and debug=benchmark (one
    quiet epoch, no end-of-run work) in a temporary run folder."""
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
        needed = args.warmup + args.steps * args.repeats + 1
        overrides += [
            f"trainer.limit_train_batches={needed}",
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


# ----------------------------------------------------------------------------- timing


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a clock read means the work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def timed_phase(phases: dict[str, float], name: str) -> Iterator[None]:
    """Record how long a block took under ``phases[name]`` (to see where a run's time goes)."""
    started = time.perf_counter()
    yield
    phases[name] = time.perf_counter() - started


def median_rate(items: float, seconds: list[float]) -> float:
    """Median of items/second over windows that each processed ``items``."""
    return statistics.median(items / s for s in seconds)


def window_seconds(starts: list[float], warmup: int, steps: int) -> list[float]:
    """Durations of consecutive ``steps``-step windows after ``warmup``, from per-step start times.

    A window ends when the step after it starts, so it holds everything a step costs:
    fetching the batch, the hooks, forward, backward, the optimiser and the logging.
    """
    edges = range(warmup, len(starts), steps)
    return [starts[b] - starts[a] for a, b in zip(edges, list(edges)[1:], strict=False)]


class StepTimer(L.Callback):
    """Clock reads around every training batch, the epoch, and each test run."""

    def __init__(self, warmup: int = 0, steps: int = 1) -> None:
        self.warmup, self.steps = warmup, steps
        self.batch_starts: list[float] = []
        self.batch_ends: list[float] = []
        self.epoch_seconds: list[float] = []
        self.test_seconds: list[float] = []
        self._epoch_started = self._test_started = 0.0

    def _now(self, trainer: L.Trainer, batch_idx: int | None = None) -> float:
        # On a GPU, syncing every step would drain the queue: sync at window edges only.
        at_edge = batch_idx is not None and batch_idx >= self.warmup
        if batch_idx is None or (at_edge and (batch_idx - self.warmup) % self.steps == 0):
            synchronize(trainer.strategy.root_device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_started = self._now(trainer)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self.batch_starts.append(self._now(trainer, batch_idx))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.batch_ends.append(self._now(trainer, batch_idx))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning runs the epoch-end validation before this hook, so it is included.
        self.epoch_seconds.append(self._now(trainer) - self._epoch_started)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._test_started = self._now(trainer)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.test_seconds.append(self._now(trainer) - self._test_started)

    def between_steps_fraction(self, warmup: int) -> float:
        """Median share of each step cycle spent between one step's end and the next one's start."""
        shares = [
            (start - end) / (start - prev_start)
            for prev_start, end, start in zip(
                self.batch_starts[warmup:-1],
                self.batch_ends[warmup:],
                self.batch_starts[warmup + 1 :],
                strict=False,
            )
        ]
        return statistics.median(shares)


# ----------------------------------------------------------------------------- measurements


def lightning_training(
    cfg: DictConfig, args: argparse.Namespace
) -> tuple[L.Trainer, Any, FashionMNISTDataModule, StepTimer, float]:
    """Fit through ``training.builders`` with a StepTimer attached; returns the pieces and fit time."""
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    classifier = build_module(cfg, datamodule.classes)
    trainer = build_trainer(cfg)
    timer = StepTimer(args.warmup, args.steps)
    trainer.callbacks.append(timer)
    started = time.perf_counter()
    trainer.fit(classifier, datamodule=datamodule)
    return trainer, classifier, datamodule, timer, time.perf_counter() - started


def endless_batches(dataset, batch_size: int, seed: int, device: torch.device) -> Iterator:
    """Index-sliced batches of an in-memory TensorDataset, epoch after epoch (the project's sampler)."""
    epoch = 0
    while True:
        sampler = EpochBatchSampler(len(dataset), batch_size, True, seed=seed, device=device)
        sampler.set_epoch(epoch)
        for indices in sampler:
            yield dataset[indices]
        epoch += 1


def timed_windows(
    step: Callable[[], None], warmup: int, steps: int, repeats: int, device: torch.device
) -> list[float]:
    """Run ``warmup`` steps, then time ``repeats`` windows of ``steps`` steps each."""
    for _ in range(warmup):
        step()
    windows = []
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        windows.append(time.perf_counter() - started)
    return windows


def plain_training(
    cfg: DictConfig,
    datamodule: FashionMNISTDataModule,
    precision: str | int,
    args: argparse.Namespace,
    device: torch.device,
    forward_context: Callable[[], Any],
) -> list[float]:
    """A hand-written loop: the same network, tensors, optimiser, loss and autocast; no framework."""
    if str(precision) not in PLAIN_LOOP_PRECISIONS:
        raise ValueError(
            f"The plain-loop comparison supports precision {', '.join(PLAIN_LOOP_PRECISIONS)}; "
            f"got {precision!r}. Pass --precision with one of those."
        )
    L.seed_everything(cfg.seed)
    model = build_module(cfg, datamodule.classes).to(device).train()
    optimizer = instantiate(cfg.optimizer, params=model.parameters())
    batches = endless_batches(
        datamodule.tensors["train"], cfg.data.batch_size, cfg.data.shuffle_seed, device
    )

    def step() -> None:
        images, labels = next(batches)
        with forward_context():
            loss = F.cross_entropy(model(images), labels, label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return timed_windows(step, args.warmup, args.steps, args.repeats, device)


def data_fetch_seconds(datamodule: FashionMNISTDataModule, batches: int) -> float:
    """Median time to draw one batch from the project's train DataLoader, alone."""
    loader = datamodule.train_dataloader()
    times, iterator = [], iter(loader)
    for _ in range(min(batches, len(loader))):
        started = time.perf_counter()
        next(iterator)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def evaluation(trainer: L.Trainer, classifier, datamodule, timer: StepTimer, repeats: int) -> int:
    """Trainer.test on the test set once to warm up, then ``repeats`` timed times."""
    for _ in range(repeats + 1):
        trainer.test(classifier, datamodule=datamodule, verbose=False)
    del timer.test_seconds[0]
    return len(datamodule.tensors["test"])


def mult_adds_per_image(cfg: DictConfig, num_classes: int) -> int:
    """torchinfo's multiply-add count of one forward pass of the (uncompiled) network."""
    net = build_network(OmegaConf.to_container(cfg.model.net, resolve=True), num_classes)
    size = int(cfg.model.net.get("image_size", 28))
    channels = int(cfg.model.net.get("in_channels", 1))
    info = torchinfo_summary(net, input_size=(1, channels, size, size), verbose=0, device="cpu")
    return int(info.total_mult_adds)


def matmul_dtype(precision: str | int) -> torch.dtype:
    text = str(precision)
    return (
        torch.bfloat16
        if text.startswith("bf16")
        else torch.float16
        if text.startswith("16")
        else torch.float32
    )


def matmul_products(a: torch.Tensor, b: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """The matrix-product kernels to try: torch.mm, and on CPU oneDNN's directly.

    On CPU, fp32 torch.mm goes to MKL, which on AMD processors runs a slower (AVX2) code
    path; the network's convolutions go to oneDNN. Its peak is the machine's real one.
    """
    products = {"torch.mm": lambda: torch.mm(a, b)}
    if a.device.type == "cpu" and torch.backends.mkldnn.is_available():
        a_onednn, b_onednn = a.to_mkldnn(), b.to_mkldnn()
        products["onednn"] = lambda: torch._C._nn.mkldnn_linear(a_onednn, b_onednn)
    return products


def matmul_peaks(
    n: int, dtype: torch.dtype, device: torch.device, repeats: int
) -> dict[str, float]:
    """Median FLOP/s of an n x n x n matrix product (2 n^3 FLOPs) in ``dtype``, per kernel."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(device, dtype)
    b = torch.randn(n, n, generator=generator).to(device, dtype)
    peaks = {}
    for name, product in matmul_products(a, b).items():
        with contextlib.suppress(RuntimeError):  # a kernel this build lacks
            windows = timed_windows(product, 2, 3, max(repeats, 3), device)
            peaks[name] = median_rate(3 * 2 * n**3, windows)
    return peaks


def textbook_baseline(
    cfg: DictConfig, root: str, args: argparse.Namespace, device: torch.device
) -> list[float]:
    """The tutorial-style implementation: per-sample ToTensor, DataLoader workers, batch 32, fp32."""
    from torchvision.datasets import FashionMNIST
    from torchvision.transforms import ToTensor

    L.seed_everything(cfg.seed)
    # The plain network: contiguous memory, whatever model.channels_last says for the project.
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    model = build_network(net, num_classes=10).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=TEXTBOOK_LR)
    dataset = FashionMNIST(root, train=True, transform=ToTensor())
    loader = DataLoader(
        dataset,
        batch_size=TEXTBOOK_BATCH_SIZE,
        shuffle=True,
        num_workers=args.baseline_workers,
    )

    def batches() -> Iterator:
        while True:
            yield from loader

    stream = batches()

    def step() -> None:
        images, labels = next(stream)
        images, labels = images.to(device), labels.to(device)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    try:
        return timed_windows(step, 5, args.baseline_steps, args.repeats, device)
    finally:
        stream.close()  # ends the epoch's iterator, and with it the worker processes


# ----------------------------------------------------------------------------- report


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict[str, Any]:
    packages = ("torch", "lightning", "torchvision", "torchmetrics", "hydra-core", "torchinfo")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        # torch's own string keeps the build tag (+cpu, +cu126), which matters here.
        "versions": {
            **{name: package_version(name) for name in packages},
            "torch": torch.__version__,
        },
        "cpu_model": cpu_model(),
        "cpu_count": __import__("os").cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu_bf16": bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()),
        "cpu_amx": bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()),
        "gpu_model": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "device": str(device),
    }


def peak_rss_mib() -> float:
    """The process's peak resident set size (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement, as one JSON-ready dict."""
    with tempfile.TemporaryDirectory(prefix="fmnist-benchmark-") as tmp:
        data_root = args.data_root
        if args.synthetic:
            sizes = (640, 500) if args.quick else (60_000, 10_000)
            data_root = str(write_fashion_mnist(Path(tmp) / "data", *sizes))
        cfg = compose_config(config_overrides(args, data_root, Path(tmp) / "run"))
        # The benchmark fits one epoch; the projection uses the run length a user would get.
        max_epochs = int(compose("train", list(args.overrides)).trainer.max_epochs)
        return measure(cfg, args, max_epochs)


def measure(cfg: DictConfig, args: argparse.Namespace, max_epochs: int) -> dict[str, Any]:
    phases: dict[str, float] = {}
    with timed_phase(phases, "trainer_fit"):
        trainer, classifier, datamodule, timer, fit_seconds = lightning_training(cfg, args)
    device = trainer.strategy.root_device
    precision = cfg.trainer.precision  # resolved once, by compose_config
    batch_size = int(cfg.data.batch_size)
    lightning_windows = window_seconds(timer.batch_starts, args.warmup, args.steps)
    if not lightning_windows:
        raise ValueError(
            f"One epoch has {len(timer.batch_starts)} training batches, too few for "
            f"{args.warmup} warm-up steps and a window of {args.steps} (+1); lower "
            "--warmup/--steps, or raise the data size."
        )
    lightning_rate = median_rate(args.steps * batch_size, lightning_windows)
    step_seconds = statistics.median(w / args.steps for w in lightning_windows)

    with timed_phase(phases, "trainer_test"):
        test_images = evaluation(trainer, classifier, datamodule, timer, max(args.repeats, 2))
    eval_rate = median_rate(test_images, timer.test_seconds)

    with timed_phase(phases, "plain_loop"):
        plain_windows = plain_training(
            cfg, datamodule, precision, args, device, trainer.precision_plugin.forward_context
        )
    plain_rate = median_rate(args.steps * batch_size, plain_windows)
    fetch = data_fetch_seconds(datamodule, args.warmup + args.steps)
    peak_rss = peak_rss_mib()

    mult_adds = mult_adds_per_image(cfg, datamodule.num_classes)
    train_flops_per_image = FLOPS_PER_MULT_ADD * TRAIN_PASSES * mult_adds
    dtype = matmul_dtype(precision)
    matmul_size = args.matmul_size or (8192 if device.type == "cuda" else 2048)
    with timed_phase(phases, "matmul"):
        peaks = matmul_peaks(matmul_size, dtype, device, args.repeats)
    peak_flops = max(peaks.values())
    achieved = lightning_rate * train_flops_per_image

    epoch = None
    if args.epoch:
        epoch_seconds = timer.epoch_seconds[0]
        test_seconds = test_images / eval_rate
        epoch = {
            "seconds": epoch_seconds,
            "train_images": len(datamodule.tensors["train"]),
            "val_images": len(datamodule.tensors["val"]),
            "fit_seconds_one_epoch": fit_seconds,
            "default_max_epochs": max_epochs,
            # Start-up (fit minus the epoch) + max_epochs epochs + one test pass.
            "projected_run_minutes": (
                fit_seconds - epoch_seconds + max_epochs * epoch_seconds + test_seconds
            )
            / 60,
        }

    baseline = None
    if args.baseline:
        with timed_phase(phases, "baseline"):
            baseline_windows = textbook_baseline(cfg, str(cfg.data.root), args, device)
        baseline_rate = median_rate(args.baseline_steps * TEXTBOOK_BATCH_SIZE, baseline_windows)
        baseline = {
            "images_per_s": baseline_rate,
            "batch_size": TEXTBOOK_BATCH_SIZE,
            "workers": args.baseline_workers,
            "precision": "32-true",
            "speedup_vs_textbook": lightning_rate / baseline_rate,
            "window_seconds": baseline_windows,
        }

    return {
        "created": datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python -m fmnist_lightning.benchmark", *args.argv]),
        "environment": environment(device),
        "settings": {
            "data": "synthetic" if args.synthetic else "real",
            "data_root": str(cfg.data.root),
            "precision": str(precision),
            "channels_last": bool(cfg.model.channels_last),
            "compile": bool(cfg.model.compile),
            "batch_size": batch_size,
            "eval_batch_size": int(cfg.data.eval_batch_size),
            "steps": args.steps,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "lightning_windows": len(lightning_windows),
            "statistic": "median over timed windows after warm-up",
            "overrides": list(args.overrides),
        },
        "train": {
            "lightning_images_per_s": lightning_rate,
            "plain_images_per_s": plain_rate,
            "lightning_vs_plain": lightning_rate / plain_rate,
            "step_ms": 1000 * step_seconds,
            # The first step compiles the training graph when model.compile=true.
            "first_step_s": timer.batch_ends[0] - timer.batch_starts[0],
            "fit_seconds": fit_seconds,
            "lightning_window_seconds": lightning_windows,
            "plain_window_seconds": plain_windows,
        },
        "data_wait": {
            # Upper bound: the gap also holds Lightning's per-step logging and bookkeeping.
            "data_wait_fraction": timer.between_steps_fraction(args.warmup),
            "fetch_ms_per_batch": 1000 * fetch,
            "fetch_fraction": fetch / step_seconds,
        },
        "eval": {
            "test_images": test_images,
            "images_per_s": eval_rate,
            "window_seconds": timer.test_seconds,
        },
        "memory": {
            "peak_rss_mib": peak_rss,
            "peak_gpu_mib": torch.cuda.max_memory_allocated(device) / 2**20
            if device.type == "cuda"
            else None,
        },
        "flops": {
            "convention": FLOP_CONVENTION,
            "mult_adds_per_image": mult_adds,
            "train_flops_per_image": train_flops_per_image,
            "achieved_train_flops": achieved,
            "matmul_size": matmul_size,
            "matmul_dtype": str(dtype).removeprefix("torch."),
            "matmul_peak_flops": peak_flops,
            "fraction_of_matmul_peak": achieved / peak_flops,
            "matmul_peak_flops_by_kernel": peaks,
        },
        "epoch": epoch,
        "baseline": baseline,
        "targets": TARGETS,
        "phase_seconds": phases,
    }


def table(result: dict[str, Any]) -> Table:
    s, env = result["settings"], result["environment"]
    title = (
        f"fmnist-lightning benchmark: {s['data']} data, {env['device']} ({env['cpu_model']}, "
        f"{env['torch_threads']} threads), {s['precision']}, "
        f"{'channels_last' if s['channels_last'] else 'contiguous'}, "
        f"compile={s['compile']}, batch {s['batch_size']}"
    )
    out = Table(title=title, title_justify="left")
    out.add_column("figure")
    out.add_column("value", justify="right")
    out.add_column("target / note")
    t, d, f, e, b = (result[k] for k in ("train", "data_wait", "flops", "epoch", "baseline"))
    targets = result["targets"]

    def mark(value: float, target: float, spec: str = ".0%", higher_is_better: bool = True) -> str:
        ok = value >= target if higher_is_better else value < target
        verdict = "[green]met[/]" if ok else "[red]missed[/]"
        return f"{verdict} (target {'≥' if higher_is_better else '<'} {target:{spec}})"

    out.add_row(
        "train, Trainer (images/s)",
        f"{t['lightning_images_per_s']:,.0f}",
        f"{s['lightning_windows']} windows of {s['steps']} steps",
    )
    out.add_row(
        "train, plain loop (images/s)", f"{t['plain_images_per_s']:,.0f}", f"{s['repeats']} windows"
    )
    out.add_row(
        "Trainer / plain loop",
        f"{t['lightning_vs_plain']:.1%}",
        mark(t["lightning_vs_plain"], targets["lightning_vs_plain"]),
    )
    out.add_row(
        "step time (ms)",
        f"{t['step_ms']:.1f}",
        f"first step {t['first_step_s']:.2f} s (compiles if model.compile)",
    )
    out.add_row(
        "data wait (share of step)",
        f"{d['data_wait_fraction']:.2%}",
        mark(d["data_wait_fraction"], targets["data_wait_fraction"], higher_is_better=False)
        + ", upper bound",
    )
    out.add_row(
        "batch fetch alone (ms)",
        f"{d['fetch_ms_per_batch']:.3f}",
        f"{d['fetch_fraction']:.2%} of a step",
    )
    out.add_row(
        "eval, Trainer.test (images/s)",
        f"{result['eval']['images_per_s']:,.0f}",
        f"{result['eval']['test_images']:,} test images",
    )
    out.add_row("peak RSS (MiB)", f"{result['memory']['peak_rss_mib']:,.0f}", "")
    out.add_row(
        "train FLOP/s achieved",
        f"{f['achieved_train_flops'] / 1e9:,.1f} G",
        f"{f['mult_adds_per_image'] / 1e6:.1f} M mult-adds/image x 2 x 3",
    )
    out.add_row(
        f"matmul peak ({f['matmul_dtype']}, n={f['matmul_size']})",
        f"{f['matmul_peak_flops'] / 1e9:,.1f} G",
        "",
    )
    out.add_row(
        "achieved / matmul peak",
        f"{f['fraction_of_matmul_peak']:.1%}",
        mark(f["fraction_of_matmul_peak"], targets["fraction_of_matmul_peak"]),
    )
    if e:
        out.add_row(
            "one epoch, train + val (s)",
            f"{e['seconds']:.1f}",
            f"{e['train_images']:,} + {e['val_images']:,} images",
        )
        out.add_row(
            f"projected {e['default_max_epochs']}-epoch run (min)",
            f"{e['projected_run_minutes']:.1f}",
            mark(e["projected_run_minutes"], targets["projected_run_minutes"], "g", False),
        )
    if b:
        out.add_row(
            "textbook fp32 baseline (images/s)",
            f"{b['images_per_s']:,.0f}",
            f"ToTensor, {b['workers']} workers, batch {b['batch_size']}",
        )
        out.add_row(
            "speed-up vs textbook",
            f"{b['speedup_vs_textbook']:.2f}x",
            mark(b["speedup_vs_textbook"], targets["speedup_vs_textbook"], "g"),
        )
    return out


def default_output() -> Path:
    return Path("lightning_logs/benchmarks") / f"benchmark-{datetime.now():%Y-%m-%d_%H-%M-%S}.json"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = run(args)
    except ConfigValidationError as error:
        raise SystemExit(f"Error: {error}") from None
    finally:
        torch.set_num_threads(threads)  # callers in the same process keep their setting
    output = args.output or default_output()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    console = Console()
    console.print(table(result))
    console.print(f"JSON: {output.resolve()}")
    return result


if __name__ == "__main__":
    main()
