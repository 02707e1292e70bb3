"""Serve a trained checkpoint, or the model shipped with the package, over HTTP (LitServe):
``POST /predict`` classifies images, batched on the server; ``GET /`` is a page to try it in
a browser; ``/health`` and ``/info`` are LitServe's (docs/inference-and-export.md).

    python -m fmnist_lightning.serve [CHECKPOINT or RUN FOLDER] [--port 8000]
    curl -F file=@shirt.png http://127.0.0.1:8000/predict

Exit status: 0 stopped with Ctrl+C, 2 bad arguments or a checkpoint that cannot be loaded
(before listening).
"""

import argparse
import os
import signal
from contextlib import suppress
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import litserve as ls
import torch

from fmnist_lightning import cli
from fmnist_lightning.analysis import run_files
from fmnist_lightning.config.paths import group_options
from fmnist_lightning.errors import UsageError
from fmnist_lightning.inference import http_api
from fmnist_lightning.inference.classifier import (
    SHIPPED_MODEL,
    Classifier,
    load_classifier,
    shipped_accuracy,
)
from fmnist_lightning.models.runtime import DEVICE_CHOICES, resolve_device
from fmnist_lightning.models.tta import TTA

HOSTS = ("127.0.0.1", "0.0.0.0", "::")  # the ones LitServe binds: local only, or every address


def tested_accuracy(checkpoint: Path) -> dict[str, float | None]:
    """Validation and test accuracy from the run folder's test_metrics.json, when that run
    tested this very checkpoint; None for a bare checkpoint or another one of the run."""
    run_dir = run_files.run_dir_of(checkpoint)
    summary_file = run_dir / run_files.TEST_METRICS_JSON
    summary = run_files.read_json(summary_file) if summary_file.is_file() else {}
    tested = summary.get("best_checkpoint")
    same = bool(tested) and (run_dir / tested).resolve() == checkpoint.resolve()
    return {
        "val_acc": summary.get("best_val_acc") if same else None,
        "test_acc": summary.get("test_acc") if same else None,
    }


def model_metadata(
    classifier: Classifier, checkpoint: Path | None, device: torch.device, tta: str
) -> dict[str, Any]:
    """What ``GET /info`` says of the model."""
    package_version = None
    with suppress(PackageNotFoundError):  # a source tree that was never installed
        package_version = version("fmnist-lightning")
    card = shipped_accuracy()
    shipped = {"val_acc": card["Validation accuracy"], "test_acc": card["Test accuracy"]}
    accuracy = tested_accuracy(checkpoint) if checkpoint else shipped
    return {
        "checkpoint": str(checkpoint) if checkpoint else f"shipped: {SHIPPED_MODEL.name}",
        "network": classifier.module.hparams.net["_target_"].rpartition(".")[2],
        "parameters": sum(p.numel() for p in classifier.module.parameters()),
        "classes": classifier.class_names,
        "device": str(device),
        "precision": "32-true",  # Classifier.probabilities' default
        "tta": tta,
        "version": package_version,
        **accuracy,
    }


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.command_parser("serve", __doc__)
    add = parser.add_argument
    add("model", nargs="?", type=Path, help="a .ckpt file or run folder; default: shipped model")
    add("--host", choices=HOSTS, default="127.0.0.1", help="0.0.0.0: reachable from elsewhere")
    add("--port", type=int, default=8000, help="default: %(default)s")
    add("--device", default="cpu", help=f"{DEVICE_CHOICES}; default: cpu")
    add("--workers", type=int, default=1, help="inference processes per device (%(default)s)")
    add("--tta", choices=group_options("tta"), default="none", help="test-time views (conf/tta/)")
    batch_size, timeout = http_api.MAX_BATCH_SIZE, http_api.BATCH_TIMEOUT
    add("--max-batch-size", type=int, default=batch_size, help="requests (%(default)s); 1: off")
    add("--batch-timeout", type=float, default=timeout, help="seconds to fill (%(default)s)")
    bytes_limit, pixels_limit = http_api.MAX_REQUEST_BYTES, http_api.MAX_IMAGE_PIXELS
    add("--max-request-bytes", type=int, default=bytes_limit, help="body (%(default)s)")
    add("--max-image-pixels", type=int, default=pixels_limit, help="decoded (%(default)s)")
    args = parser.parse_args(argv)
    if not 1024 <= args.port <= 65535:  # LitServe's range (no privileged ports)
        parser.error(f"--port {args.port}: choose a port from 1024 to 65535")
    return args


def build_server(args: argparse.Namespace) -> ls.LitServer:
    """The LitServer of the parsed options, its model loaded (before anything listens)."""
    device = resolve_device(args.device)
    model = args.model  # a folder: its best checkpoint; a file: the loader's own message
    checkpoint = run_files.run_checkpoint(model) if model and model.is_dir() else model
    classifier = load_classifier(checkpoint)  # on the CPU: each worker moves it to the device
    tta = TTA.of(group_options("tta")[args.tta])
    metadata = model_metadata(classifier, checkpoint, device, args.tta)
    try:  # LitServe refuses bad numbers with its own message
        api = http_api.ClassifierAPI(
            classifier, tta, args.max_image_pixels, args.max_batch_size, args.batch_timeout
        )
        server = ls.LitServer(
            api,
            accelerator=device.type,
            devices=[device.index or 0] if device.type == "cuda" else "auto",
            workers_per_device=args.workers,
            model_metadata=metadata,
            max_payload_size=args.max_request_bytes,
        )
    except ValueError as error:  # "max_batch_size must be greater than 0"...
        raise UsageError(f"{error}.") from None
    http_api.add_page_and_refusals(server.app, args.max_request_bytes)
    return server


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    server = build_server(args)
    # kill and docker stop as Ctrl+C: LitServe's graceful shutdown stops its processes too.
    # Its forked HTTP processes keep the default, which uvicorn handles quietly.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    os.register_at_fork(after_in_child=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    print(f"Serving {server.model_metadata['checkpoint']} on http://{args.host}:{args.port}/")
    server.run(host=args.host, port=args.port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    cli.run(main)
