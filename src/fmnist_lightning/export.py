"""Write a checkpoint as a standalone ONNX or TorchScript model (uint8 pixels (N, 1, 28, 28) in,
probabilities (N, classes) out), then check it against PyTorch.

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

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
INPUT_NAME, OUTPUT_NAME = "pixels", "probabilities"
CHECK_IMAGES, ATOL = 256, 1e-4


class StandaloneClassifier(nn.Module):
    """uint8 pixels (N, 1, 28, 28) → probabilities; the network unwrapped from torch.compile."""

    def __init__(self, classifier: Classifier) -> None:
        super().__init__()
        self.network = unwrapped(classifier.module.net)
        self.mean, self.std = classifier.mean, classifier.std

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.network(normalise(pixels[:, 0], self.mean, self.std)).softmax(dim=1)


def export_onnx(model: nn.Module, info: dict[str, str]) -> bytes:
    """An ONNX file with a dynamic batch size, from the torch.export-based exporter."""
    import onnx

    example = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)  # 2: torch.export fixes a batch of 1
    proto = torch.onnx.export(
        model, (example,), dynamo=True, verbose=False, input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME], dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch")}},
    ).model_proto  # fmt: skip
    onnx.helper.set_model_props(proto, info)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def export_torchscript(model: nn.Module, info: dict[str, str]) -> bytes:
    """A scripted model, the metadata in the archive as metadata.json."""
    buffer = io.BytesIO()
    # torch.jit is deprecated upstream but still the format C++ (libtorch) services load.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated", category=FutureWarning)
        extra = {"metadata.json": json.dumps(info)}
        torch.jit.save(torch.jit.script(model), buffer, _extra_files=extra)
    return buffer.getvalue()


def load_exported(content: bytes | Path | str, fmt: str):
    """A function running the exported model (file or bytes) on uint8 pixels, as a user would."""
    content = content if isinstance(content, bytes) else Path(content).read_bytes()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])
        return lambda pixels: session.run([OUTPUT_NAME], {INPUT_NAME: pixels})[0]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated", category=FutureWarning)
        loaded = torch.jit.load(io.BytesIO(content))
    return lambda pixels: loaded(torch.from_numpy(pixels)).detach().numpy()


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
    writer = export_onnx if fmt == "onnx" else export_torchscript
    content = writer(StandaloneClassifier(classifier).eval(), info)
    # Max |exported - Classifier.predict| on all the images and on fewer: the batch is dynamic.
    run, fewer = load_exported(content, fmt), pixels[: max(1, len(pixels) // 2 - 1)]
    reference = classifier.predict(torch.from_numpy(pixels)).probabilities.numpy()
    difference = float(max(np.abs(run(p) - reference[: len(p)]).max() for p in (pixels, fewer)))
    print(f"Max abs difference from PyTorch on {described}: {difference:.3g}")
    if difference > atol:
        kept = " (the existing file is kept)" if output.exists() else ""
        why = f"the difference {difference:.3g} exceeds --atol={atol:g}"
        raise Failed(f"{why}; '{output}' was not written{kept}.")
    output_files.write_atomically(output, content, output_files.FULL_DISK)


def main(argv: list[str] | None = None) -> None:
    parser = cli.checkpoint_command("export", __doc__)
    add = parser.add_argument
    add("--format", choices=tuple(FORMATS), default="onnx")
    add("-o", "--output", type=Path, help="default: the checkpoint's with .onnx / .torchscript.pt")
    data_root = os.environ.get("FMNIST_DATA_DIR", "data")
    add("--data-root", default=data_root, help="holds FashionMNIST/raw/ ($FMNIST_DATA_DIR or data)")
    add("--check-images", type=int, default=CHECK_IMAGES, help="at least 1")
    add("--atol", type=float, default=ATOL, help="largest accepted difference")
    args = parser.parse_args(argv)
    if args.check_images < 1:
        parser.error(f"--check-images {args.check_images}: the check needs at least one image")
    output = args.output or args.checkpoint.with_suffix(FORMATS[args.format])
    output_files.check_output(output, [args.checkpoint], args.overwrite)
    export(args.checkpoint, args.format, output, args.data_root, args.check_images, args.atol)
    exporter = "torch.export" if args.format == "onnx" else "torch.jit.script"
    size = output.stat().st_size / 1e6
    print(f"Wrote {output} ({args.format}, {size:.1f} MB, exporter: {exporter})")


if __name__ == "__main__":
    cli.run(main)
