"""A few example points of a run, kept beside its outcomes for the leaderboard's image grid: each point's clean image,
its verified PGD adversarial and its verified on-manifold adversarial, with the model's predicted label on each.

Which points: the first EXAMPLES points of the evaluation (in the run's order) that the model classifies correctly, so
the choice is deterministic and never depends on the attacks. Images are stored as uint8 (display only; the predicted
labels were computed on the float images), a few tens of kB per run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from irob_bench.attacks.common import Model, predict

EXAMPLES = 10
PREFIX = "example_"


@dataclass(frozen=True)
class Examples:
    """K example points: images (K, C, H, W) uint8, predicted labels (K, 3) for clean / PGD / on-manifold (-1: no
    verified adversarial), the adversarials' L2 distances (K, 2) (inf: none), and `matches` (K,): whether the point's
    PGD outcomes are the run's own (always, unless the examples were re-made later with other attack settings)."""

    indices: np.ndarray
    labels: np.ndarray
    clean: np.ndarray
    pgd: np.ndarray
    in_distribution: np.ndarray
    predicted: np.ndarray
    distance: np.ndarray
    matches: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays under their keys in the outcomes file."""
        return {PREFIX + name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Examples | None:
        """The examples stored in an outcomes file's arrays, None if it has none."""
        if not all(PREFIX + name in arrays for name in cls.__dataclass_fields__):
            return None
        return cls(**{name: arrays[PREFIX + name] for name in cls.__dataclass_fields__})


def _uint8(images: torch.Tensor) -> np.ndarray:
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def example_rows(correct: np.ndarray, k: int = EXAMPLES) -> np.ndarray:
    """The rows shown: the first k points the model classifies correctly."""
    return np.flatnonzero(np.asarray(correct, dtype=bool))[:k]


def collect_examples(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    index: torch.Tensor,
    rows: np.ndarray,
    adversarial: tuple[torch.Tensor, np.ndarray],
    on_manifold: tuple[torch.Tensor, np.ndarray] | None,
    batch_size: int,
    device: str | torch.device = "cpu",
) -> Examples:
    """The examples at `rows`: `adversarial` and `on_manifold` are (their images at those rows, the verified distance of
    every row of the run); an image counts only where its distance is finite (a verified adversarial)."""
    clean = x[rows]
    distance = np.stack([adversarial[1][rows], on_manifold[1][rows] if on_manifold is not None
                         else np.full(len(rows), np.inf)], axis=1)  # fmt: skip
    images = [clean, adversarial[0]] + ([on_manifold[0]] if on_manifold is not None else [])
    predicted = np.full((len(rows), 3), -1, dtype=np.int64)
    for column, batch in enumerate(images):
        labels = predict(model, batch, batch_size, device).numpy().astype(np.int64)
        predicted[:, column] = labels if column == 0 else np.where(np.isfinite(distance[:, column - 1]), labels, -1)
    return Examples(
        indices=index.numpy()[rows].astype(np.int64),
        labels=y.numpy()[rows].astype(np.int64),
        clean=_uint8(clean),
        pgd=_uint8(adversarial[0]),
        in_distribution=_uint8(on_manifold[0] if on_manifold is not None else torch.zeros_like(clean)),
        predicted=predicted,
        distance=distance.astype(np.float64),
        matches=np.ones(len(rows), dtype=bool),
    )


def merge_examples(parts: list[Examples | None], k: int = EXAMPLES) -> Examples | None:
    """The examples of consecutive parts of one evaluation (chunks, shards) as one: the first k of them in order,
    which are the first k correctly classified points of the whole (each part kept its own first k)."""
    present = [part for part in parts if part is not None]
    kept = [part for part in present if len(part.indices)]  # a part without a correct point may have odd shapes
    if not kept:
        return present[0] if present else None
    fields = Examples.__dataclass_fields__
    return Examples(**{name: np.concatenate([getattr(part, name) for part in kept])[:k] for name in fields})
