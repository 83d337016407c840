"""Generator quality: a CNN trained on real MNIST recognises the generated test images' labels."""

from __future__ import annotations

import pytest

from irob_bench import datasets
from irob_bench.datasets.real_mnist import load_real_mnist
from irob_bench.quality import label_agreement, load_checker, real_accuracy

from .conftest import SHARED_DATA


@pytest.fixture(scope="module")
def mnist_checker():
    return load_checker(datasets.load("mnist"))


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="needs ../shared/data/mnist")
def test_checker_is_a_real_mnist_classifier(mnist_checker):
    images, labels = load_real_mnist(SHARED_DATA / "mnist", "test")
    assert real_accuracy(mnist_checker, images, labels) >= 0.98


def test_generated_test_set_agrees_with_its_labels(mnist_checker):
    result = label_agreement(datasets.load("mnist"), mnist_checker)
    assert result.n == 10_000
    assert result.agreement >= 0.95, result
    assert min(result.per_class) >= 0.85, result.per_class


def test_checker_is_not_fooled_by_a_random_generator(random_mnist, mnist_checker):
    """Control: the agreement check can fail; a random-weight generator's images are not recognised."""
    assert label_agreement(random_mnist, mnist_checker).agreement < 0.5
