"""Classify image files (any size, colour mode, PNG/JPEG/...) with a trained checkpoint, or the
model shipped with the package: print a table, write one CSV or JSON row per file.

A plain argparse command, not a Hydra app: its inputs are file names that the shell expands
and that may hold spaces, commas or brackets Hydra's override grammar would need quoted.

Exit status: 0 all files classified, 1 some file failed or the output could not be written,
2 bad arguments, checkpoint or --output.
"""

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from fmnist_lightning import cli
from fmnist_lightning.analysis import run_files
from fmnist_lightning.config.paths import group_options
from fmnist_lightning.inference import output_files
from fmnist_lightning.inference.classifier import (
    DEFAULT_BATCH_SIZE,
    Classifier,
    load_classifier,
    prediction_rows,
)
from fmnist_lightning.inference.images import ImageReadError, display_path, find_images, load_image
from fmnist_lightning.models.runtime import DEVICE_CHOICES
from fmnist_lightning.models.tta import TTA

FORMATS = ("csv", "json")
INVERT_CHOICES = {"auto": None, "always": True, "never": False}
# The first input names the model when it is one of these files, or a run folder.
MODEL_SUFFIXES = (".ckpt", ".pt")


def error_row(path: str, reason: str | None) -> dict[str, Any]:
    keys = ("class_index", "class", "confidence", "probabilities")
    return {"path": display_path(path), **dict.fromkeys(keys), "error": reason}


def classify_files(
    classifier: Classifier,
    files: list[str],
    invert: bool | None,
    batch_size: int,
    tta: TTA | None = None,
) -> list[dict[str, Any]]:
    """One row per file: its prediction, or why it could not be read (also on stderr)."""
    rows: dict[str, dict[str, Any]] = {}
    readable: dict[str, np.ndarray] = {}
    for path in files:
        try:
            readable[path] = load_image(path, invert=invert)
        except ImageReadError as error:
            print(f"error: {error}", file=sys.stderr)
            rows[path] = error_row(path, error.reason)
    predicted = classifier.predict(list(readable.values()), batch_size=batch_size, tta=tta)
    found = prediction_rows(predicted.probabilities, classifier.class_names)
    for path, row in zip(readable, found, strict=True):
        rows[path] = error_row(path, None) | row
    return [rows[path] for path in files]


def split_model(inputs: list[str]) -> tuple[Path | None, list[str]]:
    """The model the first input names (a .ckpt/.pt file or a run folder), if it names one,
    and the image inputs."""
    first = Path(inputs[0])
    if first.suffix in MODEL_SUFFIXES or (first / run_files.CHECKPOINT_DIR).is_dir():
        return first, inputs[1:]
    return None, inputs


def rows_text(rows: list[dict[str, Any]], class_names: list[str], fmt: str) -> str:
    """JSON as it is; CSV with the probabilities as columns prob_<class name>, blanks for None."""
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    out, columns = io.StringIO(), {name: f"prob_{name}" for name in class_names}
    head = ["path", "class_index", "class", "confidence", *columns.values(), "error"]
    writer = csv.DictWriter(out, head, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()  # None is written as a blank
    for row in rows:
        writer.writerow(row | {columns[n]: p for n, p in (row["probabilities"] or {}).items()})
    return out.getvalue()


def results_table(rows: list[dict[str, Any]]) -> Table:
    fold, right = Column("path", overflow="fold"), Column("confidence", justify="right")
    table = Table(fold, "class", right, "runner-up", title="Predictions")
    for row in rows:
        if row["error"] is None:
            runner_up, p = sorted(row["probabilities"].items(), key=lambda item: -item[1])[1]
            cells = [row["class"], f"{row['confidence']:.3f}", f"{runner_up} ({p:.3f})"]
        else:
            cells = ["[red]error[/red]", "", f"[red]{escape(row['error'])}[/red]"]
        table.add_row(escape(row["path"]), *cells)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = cli.command_parser("predict", __doc__)
    add = parser.add_argument
    add(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image files, folders or glob patterns; the first is the model when it is a .ckpt "
        "or .pt file or a run folder (its best checkpoint); without one, the shipped model",
    )
    cli.add_overwrite(parser)
    add("-o", "--output", help="default: predictions.<format>; '-': stdout, the table on stderr")
    add("-f", "--format", choices=FORMATS, help="default: from the --output suffix, else csv")
    add("-r", "--recursive", action="store_true", help="search subfolders too")
    add("--invert", choices=INVERT_CHOICES, default="auto", help="auto: when the border is light")
    add("--device", default="cpu", help=f"{DEVICE_CHOICES}; default: cpu")
    add("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    tta_options = group_options("tta")
    add("--tta", choices=tta_options, default="none", help="test-time augmentation (conf/tta/)")
    args = parser.parse_args(argv)
    model, inputs = split_model(args.inputs)
    if not inputs:
        parser.error(f"no images to classify after the model '{model}'")
    suffix = Path(args.output or "").suffix.lower().lstrip(".")
    fmt = args.format or (suffix if suffix in FORMATS else "csv")
    output = args.output or f"predictions.{fmt}"
    to_stdout = output == "-"
    files, missing = find_images(inputs, args.recursive)
    # A folder: its best checkpoint; a file, even a missing one: the loader's own message.
    checkpoint = run_files.run_checkpoint(model) if model and model.is_dir() else model
    if not to_stdout:  # found out now, not after classifying
        read = [checkpoint, *files] if checkpoint else files
        output_files.check_output(output, read, args.overwrite)
    classifier = load_classifier(checkpoint, device=args.device)
    for entry, reason in missing.items():
        print(f"error: '{display_path(entry)}': {reason}", file=sys.stderr)
    tta = TTA.of(tta_options[args.tta])
    rows = classify_files(classifier, files, INVERT_CHOICES[args.invert], args.batch_size, tta)
    rows += [error_row(entry, reason) for entry, reason in missing.items()]
    console = Console(file=sys.stderr if to_stdout else sys.stdout)
    console.print(results_table(rows))
    text = rows_text(rows, classifier.class_names, fmt)
    if to_stdout:
        sys.stdout.write(text)
    else:  # complete or not at all: a failed write keeps the earlier file
        output_files.write_atomically(output, text, output_files.FULL_DISK)
    failed = sum(row["error"] is not None for row in rows)
    summary = f"{len(rows) - failed} of {len(rows)} inputs classified"
    summary += f", [red]{failed} failed[/red]" if failed else ""
    console.print(summary + ("" if to_stdout else f"; rows written to {output}"))
    return 1 if failed or not rows else 0


if __name__ == "__main__":
    cli.run(main)
