"""Export a checkpoint as a standalone model file (ONNX or TorchScript), then check it.

    python -m fmnist_lightning.export CHECKPOINT --format onnx|torchscript [-o FILE]

The exported model needs neither this project nor Lightning:

- input ``pixels``: uint8, shape (N, 1, 28, 28), any N; raw intensities in [0, 255] of
  dataset-like images (light garment on black; ``inference.images.load_image`` makes them
  from files);
- output ``probabilities``: float32, shape (N, classes), softmax probabilities.

The normalisation (the checkpoint's mean and std, through ``data.normalise.normalise``) and the
softmax are inside the model, so a caller cannot get them wrong; a uint8 input also means
that floats scaled the wrong way are rejected instead of silently misclassified. The class
names, mean and std travel in the file's metadata. The file is made in memory, loaded back
(onnxruntime or torch.jit) and its outputs are compared with ``Classifier.predict`` on test
images, at two batch sizes; only when the maximum absolute difference (printed) is within
``--atol`` is it written over the output (``inference.output_files.write_atomically``): an
existing file is never lost to a file that failed its check or to a full disk.
"""

import argparse
import importlib.util
import io
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.datasets import FashionMNIST

from fmnist_lightning.data.normalise import normalise
from fmnist_lightning.inference.classifier import Classifier, load_classifier
from fmnist_lightning.inference.output_files import (
    OutputFileError,
    check_not_an_input,
    check_writable,
    write_atomically,
)
from fmnist_lightning.models.checkpoint_file import CheckpointError
from fmnist_lightning.models.runtime import unwrapped

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
INPUT_NAME, OUTPUT_NAME = "pixels", "probabilities"
EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2
ONNX_PACKAGES = ("onnx", "onnxruntime", "onnxscript")
EXTRA_INSTALL = "uv sync --extra export  (or: pip install 'fmnist-lightning[export]')"
DEFAULT_CHECK_IMAGES, DEFAULT_ATOL = 256, 1e-4

RunModel = Callable[[np.ndarray], np.ndarray]


class ExportCheckError(RuntimeError):
    """The exported file's outputs differ from PyTorch's by more than the tolerance."""

    def __init__(self, difference: float, atol: float, described: str) -> None:
        super().__init__(f"the difference {difference:.3g} exceeds --atol={atol:g}")
        self.difference, self.atol, self.described = difference, atol, described


class StandaloneClassifier(nn.Module):
    """uint8 pixels (N, 1, 28, 28) → probabilities (N, classes), normalisation included."""

    def __init__(self, network: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.network, self.mean, self.std = network, mean, std

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.network(normalise(pixels[:, 0], self.mean, self.std)).softmax(dim=1)


def standalone_model(classifier: Classifier) -> StandaloneClassifier:
    """The trained network alone (unwrapped from torch.compile), on the CPU, in eval mode."""
    network = unwrapped(classifier.module.net)
    return StandaloneClassifier(network, classifier.mean, classifier.std).cpu().eval()


def metadata(classifier: Classifier, checkpoint: Path) -> dict[str, str]:
    return {
        "class_names": json.dumps(classifier.class_names),
        "mean": str(classifier.mean),
        "std": str(classifier.std),
        "input": f"{INPUT_NAME}: uint8 (N, 1, 28, 28) pixels in [0, 255], light garment on black",
        "output": f"{OUTPUT_NAME}: float32 (N, classes) softmax probabilities",
        "source_checkpoint": checkpoint.name,
    }


def export_onnx(model: nn.Module, example: torch.Tensor, info: dict[str, str]) -> tuple[str, bytes]:
    """An ONNX file with a dynamic batch size, and which exporter made it."""
    import onnx

    common = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
    try:
        batch = torch.export.Dim("batch")
        proto = torch.onnx.export(
            model, (example,), dynamo=True, verbose=False,
            dynamic_shapes={INPUT_NAME: {0: batch}}, **common,
        ).model_proto  # fmt: skip
        exporter = "torch.export-based (dynamo=True)"
    except Exception as error:  # fall back to the older TorchScript-based exporter
        print(f"dynamo ONNX export failed ({type(error).__name__}: {error}); trying dynamo=False")
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model, (example,), buffer, dynamo=False,
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, **common,
            )  # fmt: skip
        proto = onnx.load_from_string(buffer.getvalue())
        exporter = "TorchScript-based (dynamo=False)"
    onnx.helper.set_model_props(proto, info)
    onnx.checker.check_model(proto)
    return exporter, proto.SerializeToString()


def export_torchscript(
    model: nn.Module, example: torch.Tensor, info: dict[str, str]
) -> tuple[str, bytes]:
    """A scripted model, the metadata in the archive as metadata.json; and how it was made."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # torch.jit is deprecated upstream but still the format C++ (libtorch) services load.
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated", category=FutureWarning)
        scripted = torch.jit.script(model)
        torch.jit.save(scripted, buffer, _extra_files={"metadata.json": json.dumps(info)})
    return "torch.jit.script", buffer.getvalue()


def load_exported(content: bytes | Path | str, fmt: str) -> RunModel:
    """A function running the exported model (its file's path, or its bytes before they are
    written) on uint8 (N, 1, 28, 28) pixels, as a user would."""
    if isinstance(content, (Path, str)):
        content = Path(content).read_bytes()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])
        return lambda pixels: session.run([OUTPUT_NAME], {INPUT_NAME: pixels})[0]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated", category=FutureWarning)
        loaded = torch.jit.load(io.BytesIO(content))

    def run(pixels: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return loaded(torch.from_numpy(pixels)).numpy()

    return run


def check_pixels(data_root: str, count: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """Test images as uint8 (count, 1, 28, 28); random pixels when the dataset is not there."""
    try:
        images = FashionMNIST(data_root, train=False, download=False).data[:count]
        return images.unsqueeze(1).numpy(), f"{len(images)} Fashion-MNIST test images"
    except RuntimeError:
        generator = np.random.default_rng(seed)
        pixels = generator.integers(0, 256, size=(count, 1, 28, 28), dtype=np.uint8)
        return pixels, f"{count} random images (no Fashion-MNIST test set under '{data_root}')"


def max_difference(classifier: Classifier, run: RunModel, pixels: np.ndarray) -> float:
    """Max |exported - Classifier.predict| over the whole batch and an odd-sized slice of it."""
    reference = classifier.predict(torch.from_numpy(pixels)).probabilities.numpy()
    differences = [np.abs(run(pixels) - reference).max()]
    odd = max(1, len(pixels) // 2 - 1)  # another batch size: proves the batch is dynamic
    differences.append(np.abs(run(pixels[:odd]) - reference[:odd]).max())
    return float(max(differences))


def require_onnx_extra() -> None:
    """Fail before any work when the optional ONNX packages are missing."""
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"ONNX export needs {', '.join(missing)}, from the optional extra 'export': "
            f"{EXTRA_INSTALL}"
        )


def export(
    checkpoint: Path,
    fmt: str,
    output: Path,
    data_root: str,
    check_count: int = DEFAULT_CHECK_IMAGES,
    atol: float = DEFAULT_ATOL,
) -> tuple[str, float, str]:
    """Make the standalone model, check it, then write it; returns (exporter, max abs difference,
    check images). A file that fails its check (ExportCheckError) does not replace ``output``."""
    if check_count < 1:
        raise ValueError(f"check_count={check_count}: the check needs at least one image")
    if fmt == "onnx":
        require_onnx_extra()
    classifier = load_classifier(checkpoint, device="cpu")
    model = standalone_model(classifier)
    pixels, described = check_pixels(data_root, check_count)
    example = torch.from_numpy(pixels[: min(len(pixels), 4)])
    writer = export_onnx if fmt == "onnx" else export_torchscript
    exporter, content = writer(model, example, metadata(classifier, checkpoint))
    difference = max_difference(classifier, load_exported(content, fmt), pixels)
    if difference > atol:
        raise ExportCheckError(difference, atol, described)
    write_atomically(output, content)
    return exporter, difference, described


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a count of images: pass 1 or more")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fmnist_lightning.export",
        description="Write a checkpoint as a standalone ONNX or TorchScript model (uint8 pixels "
        "(N, 1, 28, 28) in, probabilities (N, classes) out) and check it against PyTorch.",
        epilog="Exit status: 0 written and matching, 1 outputs differ by more than --atol, "
        "2 bad arguments, checkpoint, missing optional dependency or an output that cannot be written.",
    )
    parser.add_argument("checkpoint", type=Path, help="a .ckpt file written by training")
    parser.add_argument("--format", choices=tuple(FORMATS), default="onnx")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="default: the checkpoint's path with .onnx / .torchscript.pt",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument(
        "--data-root",
        default=os.environ.get("FMNIST_DATA_DIR", "data"),
        help="folder holding FashionMNIST/raw/, for the check (default: $FMNIST_DATA_DIR or ./data)",
    )
    parser.add_argument(
        "--check-images",
        type=positive_int,
        default=DEFAULT_CHECK_IMAGES,
        help="test images to compare on (at least 1)",
    )
    parser.add_argument(
        "--atol", type=float, default=DEFAULT_ATOL, help="largest accepted difference"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    output = args.output or args.checkpoint.with_suffix(FORMATS[args.format])
    try:  # before the work, not after it
        check_writable(output)
        check_not_an_input(output, [args.checkpoint])  # whatever --overwrite says
    except OutputFileError as error:
        print(f"error: {error}; choose another --output.", file=sys.stderr)
        return EXIT_USAGE
    if output.exists() and not args.overwrite:
        print(f"error: '{output}' already exists; pass --overwrite to replace it.", file=sys.stderr)
        return EXIT_USAGE
    try:
        exporter, difference, described = export(
            args.checkpoint, args.format, output, args.data_root, args.check_images, args.atol
        )
    except OutputFileError as error:  # the disk full, say
        print(f"error: {error}. Free some space or choose another --output.", file=sys.stderr)
        return EXIT_USAGE
    except (CheckpointError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ExportCheckError as error:
        print(f"Max abs difference from PyTorch on {error.described}: {error.difference:.3g}")
        kept = " (the existing file is kept)" if output.exists() else ""
        print(f"error: {error}; '{output}' was not written{kept}.", file=sys.stderr)
        return EXIT_MISMATCH
    size_mb = output.stat().st_size / 1e6
    print(f"Wrote {output} ({args.format}, {size_mb:.1f} MB, exporter: {exporter})")
    print(f"Max abs difference from PyTorch on {described}: {difference:.3g}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
