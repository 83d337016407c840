"""Reads real CIFAR-10 (the saturated-cifar generator's training data) from the .npz files in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from irob_bench.common import user_dir
from irob_bench.errors import IrobError


def load_real_cifar(data_dir: str | Path | None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 (N, 32, 32, 3) HWC, labels uint8 (N,)); with None, torchvision downloads CIFAR-10."""
    if data_dir is None:
        from torchvision.datasets import CIFAR10

        ds = CIFAR10(user_dir("cache", "cifar10"), train=split == "train", download=True)
        return ds.data, np.asarray(ds.targets, dtype=np.uint8)
    path = Path(data_dir) / f"cifar10-{split}.npz"
    if not Path(data_dir).is_dir():
        raise IrobError(f"CIFAR-10 data directory not found: {data_dir}")
    if not path.is_file():
        raise IrobError(f"CIFAR-10 file missing: {path}")
    with np.load(path) as data:
        return data["images"], data["labels"]
