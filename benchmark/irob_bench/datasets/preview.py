"""A PNG grid of generated samples, one row per class, for looking at a benchmark distribution."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import save_image

from irob_bench.artifacts import atomic_path
from irob_bench.datasets.distribution import BenchmarkDataset


def save_grid(dataset: BenchmarkDataset, out: str | Path, per_class: int = 10) -> Path:
    """Write the first `per_class` frozen test images of every class as a grid (row = class)."""
    labels = dataset.labels("test")
    rows = [torch.nonzero(labels == c).flatten()[:per_class] for c in range(dataset.num_classes)]
    images = dataset.images("test", indices=torch.cat(rows))
    out = Path(out)
    with atomic_path(out) as tmp:
        save_image(images, tmp, nrow=per_class, padding=2, pad_value=1.0, format="png")
    return out
