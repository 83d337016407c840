"""Shared fixtures: a small, randomly initialised mnist-like benchmark frozen into a temp folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from irob_bench import datasets
from irob_bench.datasets.build import freeze
from irob_bench.datasets.card import SplitSpec
from irob_bench.datasets.drafts import mnist_draft
from irob_bench.generators.acgan import ACGANGenerator
from irob_bench.generators.train import save_frozen_generator

# Submissions run in this process unless a test asks for a worker (tests/test_isolation.py): the fast path.
os.environ.setdefault("IROB_BENCH_ISOLATION", "none")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def freeze_random_mnist(root: Path, test_size: int = 256, seed: int = 0) -> datasets.BenchmarkDataset:
    """Freeze an untrained (random-weight) ACGAN as a tiny mnist-shaped benchmark under `root`."""
    torch.manual_seed(seed)
    weights = root / "random_generator.pt"
    save_frozen_generator(ACGANGenerator().eval(), weights)
    draft = mnist_draft()
    draft = draft.model_copy(
        update={
            "name": "random-mnist",
            "splits": {"train": SplitSpec(size=512, seed=1), "test": SplitSpec(size=test_size, seed=2)},
        }
    )
    freeze(draft, root / "random-mnist", weights)
    return datasets.load(root / "random-mnist")


@pytest.fixture(scope="session")
def random_mnist(tmp_path_factory: pytest.TempPathFactory) -> datasets.BenchmarkDataset:
    """A 256-point benchmark from a random generator: right shapes and hashes, meaningless images."""
    return freeze_random_mnist(tmp_path_factory.mktemp("random_mnist"))
