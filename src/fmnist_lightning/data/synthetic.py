"""Small learnable stand-ins for Fashion-MNIST in torchvision's IDX layout, for the tests and
the benchmark's ``--synthetic``: each class lights up its own block of pixels (plus noise)."""

import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(f">{1 + array.ndim}I", 0x0800 | array.ndim, *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_fashion_mnist(root: Path, train: int = 400, test: int = 100) -> Path:
    """``train`` and ``test`` images and their labels, the same for the same counts."""
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, count, seed in (("train", train, 0), ("t10k", test, 1)):
        rng = np.random.default_rng(seed)
        labels = rng.permutation(np.arange(count) % 10)
        images = rng.integers(0, 60, size=(count, 28, 28))
        for index, label in enumerate(labels):
            row, col = divmod(int(label), 5)
            images[index, 4 + row * 12 : 12 + row * 12, 1 + col * 5 : 6 + col * 5] += 180
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images.clip(0, 255))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return Path(root)
