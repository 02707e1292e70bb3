"""Classify image files with a trained checkpoint: print a table, write one CSV or JSON row per file.

    python -m fmnist_lightning.predict CHECKPOINT INPUT [INPUT ...] [--format csv|json] [-o FILE]

INPUT is an image file, a folder (``--recursive`` for subfolders) or a glob pattern. A file
that cannot be read gets an error row and a message on stderr; the others are still
classified (exit status 1).

A plain argparse command rather than a Hydra app: its inputs are lists of file names, which
the shell expands (``photos/*.jpg``) and which may hold spaces, commas or brackets that
Hydra's override grammar would need quoted; and there is nothing to compose or sweep.
"""

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fmnist_lightning import cli
from fmnist_lightning.errors import UsageError
from fmnist_lightning.inference.classifier import DEFAULT_BATCH_SIZE, Classifier, load_classifier
from fmnist_lightning.inference.image_files import display_path, find_images
from fmnist_lightning.inference.images import ImageReadError, load_image
from fmnist_lightning.inference.output_files import OutputFileError, check_output, write_atomically
from fmnist_lightning.models.runtime import DEVICE_CHOICES

FORMATS = ("csv", "json")
INVERT_CHOICES = {"auto": None, "always": True, "never": False}


def error_row(path: str, reason: str | None) -> dict[str, Any]:
    keys = ("class_index", "class", "confidence", "probabilities")
    return {"path": display_path(path), **dict.fromkeys(keys), "error": reason}


def classify_files(
    classifier: Classifier, files: list[str], invert: bool | None, batch_size: int
) -> list[dict[str, Any]]:
    """One row per file: its prediction, or the reason it could not be read (also on stderr)."""
    rows: dict[str, dict[str, Any]] = {}
    readable: dict[str, np.ndarray] = {}
    for path in files:
        try:
            readable[path] = load_image(path, invert=invert)
        except ImageReadError as error:
            print(f"error: {error}", file=sys.stderr)
            rows[path] = error_row(path, error.reason)
    if readable:
        pixels = torch.from_numpy(np.stack(list(readable.values())))
        predictions = classifier.predict(pixels, batch_size=batch_size)
        names = classifier.class_names
        for path, index, row in zip(
            readable, predictions.indices.tolist(), predictions.probabilities.tolist(), strict=True
        ):
            rows[path] = error_row(path, None) | {
                "class_index": index,
                "class": names[index],
                "confidence": row[index],
                "probabilities": dict(zip(names, row, strict=True)),
            }
    return [rows[path] for path in files]


def write_rows(rows: list[dict[str, Any]], class_names: list[str], fmt: str, out: TextIO) -> None:
    """JSON as it is; CSV with the probabilities as columns prob_<class name>, blanks for None."""
    if fmt == "json":
        json.dump(rows, out, indent=2)
        out.write("\n")
        return
    writer = csv.writer(out, lineterminator="\n")  # None is written as a blank
    head = ["path", "class_index", "class", "confidence"]
    writer.writerow([*head, *(f"prob_{name}" for name in class_names), "error"])
    for row in rows:
        probabilities = row["probabilities"] or {}
        probabilities = [probabilities.get(name) for name in class_names]
        writer.writerow([*(row[key] for key in head), *probabilities, row["error"]])


def results_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Predictions")
    table.add_column("path", overflow="fold")
    for column in ("class", "confidence", "runner-up"):
        table.add_column(column, justify="right" if column == "confidence" else "left")
    for row in rows:
        if row["error"] is not None:
            error = f"[red]{escape(row['error'])}[/red]"
            table.add_row(escape(row["path"]), "[red]error[/red]", "", error)
            continue
        runner_up, p = sorted(row["probabilities"].items(), key=lambda item: -item[1])[1]
        confidence = f"{row['confidence']:.3f}"
        table.add_row(escape(row["path"]), row["class"], confidence, f"{runner_up} ({p:.3f})")
    return table


def main(argv: list[str] | None = None) -> int:
    """The command; returns 0 when every input was classified, 1 when any failed."""
    parser = argparse.ArgumentParser(
        prog="python -m fmnist_lightning.predict",
        description="Classify image files (any size, colour mode, PNG/JPEG/...) with a trained "
        "checkpoint. Prints a table and writes one CSV or JSON row per file.",
        epilog="Exit status: 0 all files classified, 1 some file failed or the output could not "
        "be written, 2 bad arguments, checkpoint or --output.",
    )
    parser.add_argument("checkpoint", type=Path, help="a .ckpt file written by training")
    parser.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    parser.add_argument(
        "-o",
        "--output",
        help="where to write the rows; '-' for stdout (the table then goes to stderr). "
        "Default: predictions.<format> in the current folder",
    )
    parser.add_argument(
        "-f", "--format", choices=FORMATS, help="default: from the --output suffix, else csv"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("-r", "--recursive", action="store_true", help="search subfolders too")
    parser.add_argument(
        "--invert",
        choices=INVERT_CHOICES,
        default="auto",
        help="invert images to light-on-dark: auto (when the border is light; default), always, never",
    )
    parser.add_argument("--device", default="cpu", help=f"{DEVICE_CHOICES}; default: cpu")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    args = parser.parse_args(argv)
    suffix = Path(args.output or "").suffix.lower().lstrip(".")
    fmt = args.format or (suffix if suffix in FORMATS else "csv")
    output = args.output or f"predictions.{fmt}"
    to_stdout = output == "-"
    files, missing = find_images(args.inputs, args.recursive)
    if not to_stdout:  # found out now, not after classifying
        check_output(output, [args.checkpoint, *files], args.overwrite)
    try:
        classifier = load_classifier(args.checkpoint, device=args.device)
    except ValueError as error:  # not a checkpoint, an unusable --device: the input refused
        raise UsageError(str(error)) from error

    for entry, reason in missing.items():
        print(f"error: '{display_path(entry)}': {reason}", file=sys.stderr)
    rows = classify_files(classifier, files, INVERT_CHOICES[args.invert], args.batch_size)
    rows += [error_row(entry, reason) for entry, reason in missing.items()]
    console = Console(file=sys.stderr if to_stdout else sys.stdout)
    console.print(results_table(rows))
    if to_stdout:
        write_rows(rows, classifier.class_names, fmt, sys.stdout)
    else:  # complete or not at all: a failed write keeps the earlier file
        text = io.StringIO()
        write_rows(rows, classifier.class_names, fmt, text)
        try:
            write_atomically(output, text.getvalue())
        except OutputFileError as error:
            raise OutputFileError(f"{error}. Free some space or choose another --output.") from None
    failed = sum(row["error"] is not None for row in rows)
    console.print(
        f"{len(rows) - failed} of {len(rows)} inputs classified"
        + (f", [red]{failed} failed[/red]" if failed else "")
        + ("" if to_stdout else f"; rows written to {output}")
    )
    return 1 if failed or not rows else 0


if __name__ == "__main__":
    cli.run(main)
