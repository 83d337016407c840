"""Reads real MNIST (the generator's training data) from gzipped IDX files, or via torchvision."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from irob_bench.common import user_dir
from irob_bench.errors import IrobError

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: Path) -> np.ndarray:
    """Parse one gzipped IDX file (big-endian header, uint8 payload) into an array."""
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    magic, count = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, np.uint8, offset=16).reshape(count, rows, cols)
    if magic == 2049:
        return np.frombuffer(data, np.uint8, offset=8).reshape(count)
    raise IrobError(f"{path}: not an IDX image or label file (magic {magic})")


def load_real_mnist(data_dir: str | Path | None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 (N, 28, 28), labels uint8 (N,)) for a split.

    With `data_dir` the gzipped IDX files are read directly; with None, torchvision downloads MNIST
    (for users with internet).
    """
    if data_dir is None:
        from torchvision.datasets import MNIST

        ds = MNIST(user_dir("cache", "mnist"), train=split == "train", download=True)
        return ds.data.numpy(), ds.targets.numpy().astype(np.uint8)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise IrobError(f"MNIST data directory not found: {data_dir}")
    image_file, label_file = (data_dir / name for name in _FILES[split])
    for path in (image_file, label_file):
        if not path.is_file():
            raise IrobError(f"MNIST file missing: {path}")
    images, labels = read_idx(image_file), read_idx(label_file)
    if len(images) != len(labels):
        raise IrobError(f"{data_dir}: {len(images)} images but {len(labels)} labels")
    return images, labels
