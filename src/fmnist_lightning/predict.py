"""Classify image files with a trained checkpoint: print a table, write one CSV or JSON row per file.

    python -m fmnist_lightning.predict CHECKPOINT INPUT [INPUT ...] [--format csv|json] [-o FILE]

INPUT is an image file (any format and mode Pillow reads), a folder (its image files,
``--recursive`` for subfolders) or a glob pattern. Each image is made dataset-like by
``inference.images.load_image`` (grayscale, 28x28, inverted when its background is light). A file
that cannot be read gets an error row and a message on stderr; the others are still
classified. Exit status: 0 when every file was classified, 1 when any failed, 2 for a bad
command line or checkpoint.

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

from fmnist_lightning.inference.classifier import DEFAULT_BATCH_SIZE, Classifier, load_classifier
from fmnist_lightning.inference.image_files import display_path, find_images
from fmnist_lightning.inference.images import ImageReadError, load_image
from fmnist_lightning.inference.output_files import (
    OutputFileError,
    check_not_an_input,
    check_writable,
    write_atomically,
)
from fmnist_lightning.models.checkpoint_file import CheckpointError
from fmnist_lightning.models.runtime import DEVICE_CHOICES

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
FORMATS = ("csv", "json")
INVERT_CHOICES = {"auto": None, "always": True, "never": False}


def classify_files(
    classifier: Classifier,
    files: list[str],
    invert: bool | None,
    batch_size: int,
    stderr: TextIO,
) -> list[dict[str, Any]]:
    """One row per file: its prediction, or the reason it could not be read."""
    rows: dict[str, dict[str, Any]] = {}
    readable: list[tuple[str, np.ndarray]] = []
    for path in files:
        try:
            readable.append((path, load_image(path, invert=invert)))
        except ImageReadError as error:
            print(f"error: {error}", file=stderr)
            rows[path] = error_row(path, error.reason)
    if readable:
        pixels = torch.from_numpy(np.stack([image for _, image in readable]))
        predictions = classifier.predict(pixels, batch_size=batch_size)
        for (path, _), index, probabilities in zip(
            readable, predictions.indices.tolist(), predictions.probabilities.tolist(), strict=True
        ):
            rows[path] = {
                "path": display_path(path),
                "class_index": index,
                "class": classifier.class_names[index],
                "confidence": probabilities[index],
                "probabilities": dict(zip(classifier.class_names, probabilities, strict=True)),
                "error": None,
            }
    return [rows[path] for path in files]


def error_row(path: str, reason: str) -> dict[str, Any]:
    return {
        "path": display_path(path),
        "class_index": None,
        "class": None,
        "confidence": None,
        "probabilities": None,
        "error": reason,
    }


def flat_row(row: dict[str, Any], class_names: list[str]) -> dict[str, Any]:
    """A row for CSV: the ten probabilities as columns prob_<class name>, blanks for None."""
    probabilities = row["probabilities"] or {}
    flat = {key: row[key] for key in ("path", "class_index", "class", "confidence")}
    flat |= {f"prob_{name}": probabilities.get(name) for name in class_names}
    flat["error"] = row["error"]
    return {key: "" if value is None else value for key, value in flat.items()}


def write_rows(rows: list[dict[str, Any]], class_names: list[str], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        json.dump(rows, out, indent=2)
        out.write("\n")
        return
    flat = [flat_row(row, class_names) for row in rows]
    columns = list(flat_row(error_row("", ""), class_names))
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)


def results_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Predictions")
    table.add_column("path", overflow="fold")
    table.add_column("class")
    table.add_column("confidence", justify="right")
    table.add_column("runner-up")
    for row in rows:
        if row["error"] is not None:
            table.add_row(
                escape(row["path"]), "[red]error[/red]", "", f"[red]{escape(row['error'])}[/red]"
            )
            continue
        ranked = sorted(row["probabilities"].items(), key=lambda item: -item[1])
        runner_up, runner_up_p = ranked[1] if len(ranked) > 1 else ("", 0.0)
        table.add_row(
            escape(row["path"]),
            row["class"],
            f"{row['confidence']:.3f}",
            f"{runner_up} ({runner_up_p:.3f})",
        )
    return table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fmnist_lightning.predict",
        description="Classify image files (any size, colour mode, PNG/JPEG/...) with a trained "
        "checkpoint. Prints a table and writes one CSV or JSON row per file.",
        epilog="Exit status: 0 all files classified, 1 some file failed, 2 bad arguments or checkpoint, "
        "or an output that cannot be written.",
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
        "-f",
        "--format",
        choices=FORMATS,
        help="csv or json; default: from the --output suffix, else csv",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument(
        "-r", "--recursive", action="store_true", help="also search subfolders of folder inputs"
    )
    parser.add_argument(
        "--invert",
        choices=tuple(INVERT_CHOICES),
        default="auto",
        help="invert images to light-on-dark: auto (when the border is light; default), always, never",
    )
    parser.add_argument("--device", default="cpu", help=f"{DEVICE_CHOICES}; default: cpu")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    return parser.parse_args(argv)


def output_format(output: str | None, fmt: str | None) -> str:
    if fmt:
        return fmt
    suffix = Path(output).suffix.lower().lstrip(".") if output and output != "-" else ""
    return suffix if suffix in FORMATS else "csv"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fmt = output_format(args.output, args.format)
    output = args.output or f"predictions.{fmt}"
    to_stdout = output == "-"
    console = Console(file=sys.stderr if to_stdout else sys.stdout)
    files, missing = find_images(args.inputs, args.recursive)
    if not to_stdout:  # found out now, not after classifying
        try:
            check_writable(output)
            check_not_an_input(output, [args.checkpoint, *files])  # whatever --overwrite says
        except OutputFileError as error:
            print(f"error: {error}; choose another --output.", file=sys.stderr)
            return EXIT_USAGE
        if Path(output).exists() and not args.overwrite:
            print(
                f"error: '{output}' already exists; pass --overwrite to replace it, or choose "
                "another --output.",
                file=sys.stderr,
            )
            return EXIT_USAGE
    try:
        classifier = load_classifier(args.checkpoint, device=args.device)
    except (CheckpointError, ValueError) as error:  # not a checkpoint; an unusable --device
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE

    for entry, reason in missing.items():
        print(f"error: '{display_path(entry)}': {reason}", file=sys.stderr)
    rows = classify_files(
        classifier, files, INVERT_CHOICES[args.invert], args.batch_size, sys.stderr
    )
    rows += [error_row(entry, reason) for entry, reason in missing.items()]

    console.print(results_table(rows))
    if to_stdout:
        write_rows(rows, classifier.class_names, fmt, sys.stdout)
    else:  # complete or not at all: a failed write keeps the earlier file
        text = io.StringIO()
        write_rows(rows, classifier.class_names, fmt, text)
        try:
            write_atomically(output, text.getvalue().encode())
        except OutputFileError as error:
            print(f"error: {error}. Free some space or choose another --output.", file=sys.stderr)
            return EXIT_USAGE
    failed = sum(row["error"] is not None for row in rows)
    console.print(
        f"{len(rows) - failed} of {len(rows)} inputs classified"
        + (f", [red]{failed} failed[/red]" if failed else "")
        + ("" if to_stdout else f"; rows written to {output}")
    )
    return EXIT_SOME_FAILED if failed or not rows else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
