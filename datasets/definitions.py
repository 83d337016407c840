"""The drafts of the shipped benchmark distributions: what is chosen by hand before `freeze` adds hashes."""

from __future__ import annotations

from irob_bench.datasets.card import DatasetCard, GeneratorSpec, SplitSpec
from irob_bench.generators.acgan import ARCHITECTURE_ID as ACGAN_ID

MNIST_CLASSES = [str(d) for d in range(10)]


def mnist_draft() -> DatasetCard:
    """Generated MNIST: the ACGAN of SCIENCE.md §1, trained by `irob-bench generators train mnist`."""
    return DatasetCard(
        name="mnist",
        version="1.0.0",
        description="Generated MNIST: ACGAN (paper architecture) trained on real MNIST; images (tanh+1)/2 in [0,1].",
        generator=GeneratorSpec(architecture=ACGAN_ID, kwargs={"latent_dim": 100, "num_classes": 10}, weights_file="generator.pt"),
        latent_dim=100,
        classes=MNIST_CLASSES,
        priors=[0.1] * 10,
        image_shape=(1, 28, 28),
        eps_grid=[1.0, 2.0, 3.0],
        reference_alpha=0.015,
        splits={"train": SplitSpec(size=60_000, seed=20261121), "test": SplitSpec(size=10_000, seed=20261122)},
    )


DRAFTS = {"mnist": mnist_draft}
