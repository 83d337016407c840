"""Generator quality: does a classifier trained on REAL data recognise the generated images' labels?"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from irob_bench.artifacts import atomic_torch_save
from irob_bench.errors import IrobError
from irob_bench.metrics import per_class_accuracy
from irob_bench.reference.models import ResNet9, SmallCNN
from irob_bench.reference.training import FitReport, accuracy, augmented, clean_cross_entropy, fit, to_float_nchw
from irob_bench.registry import Registry

if TYPE_CHECKING:  # annotations only: datasets imports generators, not the reverse
    from irob_bench.datasets.distribution import BenchmarkDataset

CHECKER_FILE = "checker.pt"


class Agreement(BaseModel):
    """Fraction of generated images the real-data checker assigns to their conditioning label."""

    dataset: str
    split: str
    n: int
    agreement: float
    per_class: list[float]


class Fidelity(BaseModel):
    """An FID-like statistic: Frechet distance between Gaussian fits of the checker's penultimate features.

    The real test set is split in two random halves A and B (seed 0; MNIST's halves come from different writers).
    `generated` compares n generated images with B; `real_floor` compares A with B (n each), what a perfect generator
    would get at this n. (Real train images are no floor: the checker has fit them, so their features differ.)"""

    n: int
    generated: float
    real_floor: float


CHECKER_ARCHITECTURES: Registry[Callable[..., nn.Module]] = Registry("checker architecture")
CHECKER_ARCHITECTURES.add("smallcnn", SmallCNN)
CHECKER_ARCHITECTURES.add("resnet9", ResNet9)


class CheckerRecipe(BaseModel):
    """How a checker is trained: its architecture (and width) and optimiser; the defaults are the first checkers'."""

    model_config = ConfigDict(frozen=True)

    architecture: str = "smallcnn"
    width: int | None = None
    epochs: int = 2
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    augment: bool = False


def _checker_model(architecture: str, width: int | None, channels: int, side: int, num_classes: int) -> nn.Module:
    build = CHECKER_ARCHITECTURES.get(architecture)
    extra = {} if width is None else {"width": width}
    return build(in_channels=channels, num_classes=num_classes, image_size=side, **extra)


def train_checker(
    images: np.ndarray,
    labels: np.ndarray,
    out: str | Path,
    recipe: CheckerRecipe = CheckerRecipe(),
    *,
    seed: int = 0,
    progress: bool = True,
    checkpoint: str | Path | None = None,
) -> FitReport:
    """Train a checker on real uint8 images (N, H, W[, C]) and save it atomically with its architecture.

    `recipe.augment` adds random flips and shifts (right for CIFAR, wrong for digits); `checkpoint` makes the
    training resumable epoch by epoch."""
    x = to_float_nchw(images)
    y = torch.from_numpy(labels.astype(np.int64))
    model = _checker_model(recipe.architecture, recipe.width, x.shape[1], x.shape[-1], int(y.max()) + 1)
    loss = augmented(clean_cross_entropy) if recipe.augment else clean_cross_entropy
    report = fit(model, x, y, epochs=recipe.epochs, seed=seed, lr=recipe.lr, optimizer=recipe.optimizer,
                 weight_decay=recipe.weight_decay, loss_fn=loss, progress=progress, checkpoint=checkpoint)
    atomic_torch_save({"architecture": recipe.architecture, "width": recipe.width, "state_dict": model.state_dict()}, out)
    return report


def load_checker_file(path: str | Path, channels: int, side: int, num_classes: int = 10) -> nn.Module:
    """A checker from its weights file (weights_only load): {architecture, width, state_dict}, or a bare SmallCNN
    state_dict (the checkers saved before architectures were recorded)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        architecture, width = "smallcnn", None
        if isinstance(saved, dict) and "state_dict" in saved:
            architecture, width, saved = saved["architecture"], saved["width"], saved["state_dict"]
        model = _checker_model(architecture, width, channels, side, num_classes)
        model.load_state_dict(saved)
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise IrobError(f"{path}: not a checker for {channels}x{side}x{side} images and {num_classes} classes "
                        f"({first[:200]})") from None
    return model.eval()


def default_checker_path(dataset: BenchmarkDataset) -> Path:
    """checker.pt beside the generator weights (so the saturated-cifar levels find their shared checker)."""
    return dataset.weights_path().parent / CHECKER_FILE


def load_checker(dataset: BenchmarkDataset, path: str | Path | None = None) -> nn.Module:
    """The dataset's real-data checker (weights_only load): `path`, else its default_checker_path."""
    channels, side, _ = dataset.card.image_shape
    path = path if path is not None else default_checker_path(dataset)
    return load_checker_file(path, channels, side, dataset.num_classes)


def real_accuracy(checker: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    """The checker's accuracy on real held-out data (uint8 images)."""
    return accuracy(checker, to_float_nchw(images), torch.from_numpy(labels.astype(np.int64)))


@torch.no_grad()
def label_agreement(
    dataset: BenchmarkDataset, checker: torch.nn.Module, split: str = "test", images: torch.Tensor | None = None
) -> Agreement:
    """Classify every generated image of a split with the checker and compare to its label.

    `images`: the split's generated images when the caller has them already (they are not made twice)."""
    y = dataset.labels(split)
    x = images if images is not None else dataset.generate(dataset.latents(split), y)
    pred = torch.cat([checker(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    hits = (pred == y).numpy()
    per_class, _ = per_class_accuracy(hits, y.numpy(), dataset.num_classes)
    return Agreement(dataset=dataset.card.name, split=split, n=len(y), agreement=float(hits.mean()), per_class=per_class)


@torch.no_grad()
def checker_features(checker: nn.Module, x: torch.Tensor, batch: int = 1000) -> np.ndarray:
    """The checker's penultimate activations (its last hidden layer) for float images in [0, 1], float64."""
    body = checker.net[:-1]
    return torch.cat([body(x[i : i + batch]) for i in range(0, len(x), batch)]).double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)) between Gaussian fits of two feature sets (rows)."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr (C_a C_b)^(1/2) = Tr (C_a^(1/2) C_b C_a^(1/2))^(1/2): a symmetric PSD form, so dead (constant) features,
    # which make C_a singular, need no regulariser.
    root_a = _psd_sqrt(cov_a)
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return max(0.0, float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root))


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative rounding-error eigenvalues clipped)."""
    values, vectors = np.linalg.eigh(c)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def fidelity(generated: torch.Tensor, real_test: np.ndarray, checker: nn.Module) -> Fidelity:
    """Frechet distances in checker-feature space: generated vs real test half B, and real test half A vs B."""
    n = min(len(generated), len(real_test) // 2)
    order = np.random.default_rng(0).permutation(len(real_test))
    half_a, half_b = real_test[order[:n]], checker_features(checker, to_float_nchw(real_test[order[n : 2 * n]]))
    return Fidelity(
        n=n,
        generated=frechet_distance(checker_features(checker, generated[:n]), half_b),
        real_floor=frechet_distance(checker_features(checker, to_float_nchw(half_a)), half_b),
    )
