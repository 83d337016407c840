"""A PNG grid of generated samples, one row per class, for looking at a benchmark distribution."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import save_image

from irob_bench.artifacts import atomic_path
from irob_bench.datasets.distribution import BenchmarkDataset
from irob_bench.errors import IrobError


def save_grid(dataset: BenchmarkDataset, out: str | Path, per_class: int = 10) -> Path:
    """Write the first `per_class` frozen test images of every class as a grid (row = class)."""
    labels = dataset.labels("test")
    smallest = int(torch.bincount(labels, minlength=dataset.num_classes).min())
    if per_class > smallest:  # a short row would shift every later class out of its row
        raise IrobError(f"--per-class {per_class}: the smallest class of {dataset.card.name} has {smallest} test images")
    rows = [torch.nonzero(labels == c).flatten()[:per_class] for c in range(dataset.num_classes)]
    images = dataset.images("test", indices=torch.cat(rows))
    out = Path(out)
    with atomic_path(out) as tmp:
        save_image(images, tmp, nrow=per_class, padding=2, pad_value=1.0, format="png")
    return out
