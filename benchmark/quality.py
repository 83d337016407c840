"""Generator quality: does a classifier trained on REAL data recognise the generated images' labels?"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel

from irob_bench.artifacts import atomic_torch_save
from irob_bench.datasets.benchmark import BenchmarkDataset
from irob_bench.metrics import per_class_accuracy
from irob_bench.models import SmallCNN
from irob_bench.training import FitReport, accuracy, augmented, clean_cross_entropy, fit, to_float_nchw

CHECKER_FILE = "checker.pt"


class Agreement(BaseModel):
    """Fraction of generated images the real-data checker assigns to their conditioning label."""

    dataset: str
    split: str
    n: int
    agreement: float
    per_class: list[float]


def train_checker(
    images: np.ndarray,
    labels: np.ndarray,
    out: str | Path,
    *,
    epochs: int = 2,
    seed: int = 0,
    augment: bool = False,
    progress: bool = True,
) -> FitReport:
    """Train a SmallCNN on real uint8 images (N, H, W[, C]) and save its state_dict atomically.

    `augment` adds random flips and shifts (right for CIFAR, wrong for digits)."""
    x = to_float_nchw(images)
    y = torch.from_numpy(labels.astype(np.int64))
    model = SmallCNN(in_channels=x.shape[1], image_size=x.shape[-1])
    loss = augmented(clean_cross_entropy) if augment else clean_cross_entropy
    report = fit(model, x, y, epochs=epochs, seed=seed, loss_fn=loss, progress=progress)
    atomic_torch_save(model.state_dict(), out)
    return report


def load_checker_file(path: str | Path, channels: int, side: int, num_classes: int = 10) -> SmallCNN:
    """A checker's SmallCNN from its weights file (weights_only load)."""
    model = SmallCNN(in_channels=channels, num_classes=num_classes, image_size=side)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def load_checker(dataset: BenchmarkDataset, relative: str = CHECKER_FILE) -> SmallCNN:
    """The dataset's real-data checker, stored at `relative` to its card folder (weights_only load)."""
    channels, side, _ = dataset.card.image_shape
    return load_checker_file(dataset.root / relative, channels, side, dataset.num_classes)


def real_accuracy(checker: SmallCNN, images: np.ndarray, labels: np.ndarray) -> float:
    """The checker's accuracy on real held-out data (uint8 images)."""
    return accuracy(checker, to_float_nchw(images), torch.from_numpy(labels.astype(np.int64)))


@torch.no_grad()
def label_agreement(dataset: BenchmarkDataset, checker: torch.nn.Module, split: str = "test") -> Agreement:
    """Classify every generated image of a split with the checker and compare to its label."""
    y = dataset.labels(split)
    x = dataset.generate(dataset.latents(split), y)
    pred = torch.cat([checker(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    hits = (pred == y).numpy()
    per_class, _ = per_class_accuracy(hits, y.numpy(), dataset.num_classes)
    return Agreement(dataset=dataset.card.name, split=split, n=len(y), agreement=float(hits.mean()), per_class=per_class)
