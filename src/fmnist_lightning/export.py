"""Write a checkpoint as a standalone ONNX, torch.export (.pt2) or TorchScript model (uint8
pixels (N, 1, 28, 28) in, probabilities (N, classes) out), then check it against PyTorch.

The model needs neither this project nor Lightning: uint8 ``pixels`` (N, 1, 28, 28) in,
float32 softmax ``probabilities`` out. Normalisation and softmax are inside, so a caller
cannot get them wrong, and floats scaled the wrong way are rejected instead of silently
misclassified; class names, mean and std travel in the metadata. The file is made in memory
and compared with ``Classifier.predict`` before it replaces the output, so an existing file
is never lost to a file that failed its check or to a full disk.

Exit status: 0 written and matching, 1 outputs differ by more than --atol or the write failed,
2 bad arguments, checkpoint, --output or a missing extra.
"""

import importlib.util
import io
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.datasets import FashionMNIST

from fmnist_lightning import cli
from fmnist_lightning.data.normalise import normalise
from fmnist_lightning.errors import Failed, UsageError
from fmnist_lightning.inference import output_files
from fmnist_lightning.inference.classifier import Classifier, load_classifier
from fmnist_lightning.models.runtime import unwrapped

INPUT_NAME, OUTPUT_NAME = "pixels", "probabilities"
METADATA_FILE = "metadata.json"  # in the TorchScript and .pt2 archives
CHECK_IMAGES, ATOL = 256, 1e-4
# torch.export traces one example; with a batch of 1 it would fix the batch size to 1.
EXAMPLE = (torch.zeros(2, 1, 28, 28, dtype=torch.uint8),)
DYNAMIC_BATCH = {INPUT_NAME: {0: torch.export.Dim("batch")}}


class StandaloneClassifier(nn.Module):
    """uint8 pixels (N, 1, 28, 28) → probabilities; the network unwrapped from torch.compile."""

    def __init__(self, classifier: Classifier) -> None:
        super().__init__()
        self.network = unwrapped(classifier.module.net)
        self.mean, self.std = classifier.mean, classifier.std
        self.requires_grad_(False)  # so that a loaded .pt2 gives tensors, not autograd graphs

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.network(normalise(pixels[:, 0], self.mean, self.std)).softmax(dim=1)


def export_onnx(model: nn.Module, info: dict[str, str]) -> bytes:
    """An ONNX file with a dynamic batch size, from the torch.export-based exporter."""
    import onnx

    proto = torch.onnx.export(
        model, EXAMPLE, dynamo=True, verbose=False, input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME], dynamic_shapes=DYNAMIC_BATCH,
    ).model_proto  # fmt: skip
    onnx.helper.set_model_props(proto, info)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def export_pt2(model: nn.Module, info: dict[str, str]) -> bytes:
    """A torch.export program with a dynamic batch size, the metadata in the archive."""
    buffer = io.BytesIO()
    program = torch.export.export(model, EXAMPLE, dynamic_shapes=DYNAMIC_BATCH)
    with warnings.catch_warnings():  # said of channels_last weights; harmless on the CPU
        warnings.filterwarnings("ignore", message="No complete tensor found", category=UserWarning)
        torch.export.save(program, buffer, extra_files={METADATA_FILE: json.dumps(info)})
    return buffer.getvalue()


def export_torchscript(model: nn.Module, info: dict[str, str]) -> bytes:
    """A scripted model, the metadata in the archive."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # torch.jit is deprecated upstream: --help says so
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated", category=FutureWarning)
        extra = {METADATA_FILE: json.dumps(info)}
        torch.jit.save(torch.jit.script(model), buffer, _extra_files=extra)
    return buffer.getvalue()


Runner = Callable[[np.ndarray], np.ndarray]  # uint8 pixels → probabilities


def load_onnx(content: bytes) -> Runner:
    import onnxruntime

    session = onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])
    return lambda pixels: session.run([OUTPUT_NAME], {INPUT_NAME: pixels})[0]


def load_pt2(content: bytes) -> Runner:
    loaded = torch.export.load(io.BytesIO(content)).module()
    return lambda pixels: loaded(torch.from_numpy(pixels)).numpy()


def load_torchscript(content: bytes) -> Runner:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated", category=FutureWarning)
        loaded = torch.jit.load(io.BytesIO(content))
    return lambda pixels: loaded(torch.from_numpy(pixels)).detach().numpy()


@dataclass(frozen=True)
class Format:
    """How one format is written, loaded back for the check, and named."""

    suffix: str  # of the default --output
    exporter: str
    write: Callable[[nn.Module, dict[str, str]], bytes]
    load: Callable[[bytes], Runner]


FORMATS = {
    "onnx": Format(".onnx", "torch.export", export_onnx, load_onnx),
    "pt2": Format(".pt2", "torch.export", export_pt2, load_pt2),
    "torchscript": Format(
        ".torchscript.pt", "torch.jit.script", export_torchscript, load_torchscript
    ),
}
FORMAT_HELP = (
    "onnx (default; onnxruntime and others); pt2 (torch.export, load with torch.export.load); "
    "torchscript: deprecated upstream in favour of torch.export, use pt2"
)


def load_exported(content: bytes | Path | str, fmt: str) -> Runner:
    """A function running the exported model (file or bytes) on uint8 pixels, as a user would."""
    return FORMATS[fmt].load(content if isinstance(content, bytes) else Path(content).read_bytes())


def export(
    checkpoint: Path, fmt: str, output: Path, data_root: str, check_count=CHECK_IMAGES, atol=ATOL
) -> None:
    """Make the file in memory, check it against ``Classifier.predict``, then write it."""
    missing = [n for n in ("onnx", "onnxruntime", "onnxscript") if not importlib.util.find_spec(n)]
    if fmt == "onnx" and missing:  # found out before any work
        raise UsageError(f"ONNX export needs {', '.join(missing)}: uv sync --extra export")
    classifier = load_classifier(checkpoint, device="cpu")
    try:  # the check's images: the test set, else random pixels
        images = FashionMNIST(data_root, train=False, download=False).data[:check_count]
        pixels, described = images.unsqueeze(1).numpy(), f"{len(images)} Fashion-MNIST test images"
    except RuntimeError:
        pixels = np.random.default_rng(0).integers(0, 256, (check_count, 1, 28, 28), np.uint8)
        described = f"{check_count} random images (no Fashion-MNIST test set under '{data_root}')"
    info = {
        "class_names": json.dumps(classifier.class_names),
        "mean": str(classifier.mean),
        "std": str(classifier.std),
        "input": f"{INPUT_NAME}: uint8 (N, 1, 28, 28) pixels in [0, 255], light garment on black",
        "output": f"{OUTPUT_NAME}: float32 (N, classes) softmax probabilities",
        "source_checkpoint": checkpoint.name,
    }
    content = FORMATS[fmt].write(StandaloneClassifier(classifier).eval(), info)
    # Max |exported - Classifier.predict| on all the images and on one: the batch is dynamic,
    # and 1 is the size torch.export would specialise.
    run = load_exported(content, fmt)
    reference = classifier.predict(torch.from_numpy(pixels)).probabilities.numpy()
    differences = [np.abs(run(p) - reference[: len(p)]).max() for p in (pixels, pixels[:1])]
    difference = float(max(differences))
    print(f"Max abs difference from PyTorch on {described}: {difference:.3g}")
    if difference > atol:
        kept = " (the existing file is kept)" if output.exists() else ""
        why = f"the difference {difference:.3g} exceeds --atol={atol:g}"
        raise Failed(f"{why}; '{output}' was not written{kept}.")
    output_files.write_atomically(output, content, output_files.FULL_DISK)


def main(argv: list[str] | None = None) -> None:
    parser = cli.checkpoint_command("export", __doc__)
    add = parser.add_argument
    add("--format", choices=tuple(FORMATS), default="onnx", help=FORMAT_HELP)
    suffixes = " / ".join(f.suffix for f in FORMATS.values())
    add("-o", "--output", type=Path, help=f"default: the checkpoint's with {suffixes}")
    data_root = os.environ.get("FMNIST_DATA_DIR", "data")
    add("--data-root", default=data_root, help="holds FashionMNIST/raw/ ($FMNIST_DATA_DIR or data)")
    add("--check-images", type=int, default=CHECK_IMAGES, help="at least 1")
    add("--atol", type=float, default=ATOL, help="largest accepted difference")
    args = parser.parse_args(argv)
    if args.check_images < 1:
        parser.error(f"--check-images {args.check_images}: the check needs at least one image")
    output = args.output or args.checkpoint.with_suffix(FORMATS[args.format].suffix)
    output_files.check_output(output, [args.checkpoint], args.overwrite)
    export(args.checkpoint, args.format, output, args.data_root, args.check_images, args.atol)
    size, exporter = output.stat().st_size / 1e6, FORMATS[args.format].exporter
    print(f"Wrote {output} ({args.format}, {size:.1f} MB, exporter: {exporter})")


if __name__ == "__main__":
    cli.run(main)
