"""The gradient Lipschitz estimator against Algorithm 1 on the same anchors of an mnist-shaped generator.

Target: per class, the gradient estimator's L_y(r) is at least the sampling estimator's (reference N = 2000 points
per ball) while spending at most 1/20 of its generator evaluations. Run: pytest tests/benchmarks/test_lipschitz_speed.py
--benchmark-enable; figures in docs/performance.md (Lipschitz).
"""

from __future__ import annotations

import time

import pytest

from irob_bench import datasets
from irob_bench.lipschitz import make_settings
from irob_bench.lipschitz.estimate import anchor_slopes
from irob_bench.lipschitz.stats import order_statistic, upper_bound

ANCHORS, CLASSES, RADIUS, DELTA = 16, (0, 4, 8), 0.5, 0.001
SAMPLING = make_settings("sampling", samples=ANCHORS, neighbors=2000, radius=RADIUS, delta=DELTA)
GRADIENT = make_settings("gradient", samples=ANCHORS, radius=RADIUS, delta=DELTA)
STATISTIC = order_statistic(ANCHORS, DELTA)  # 16 anchors: the maximum, at delta' = 0.17


@pytest.fixture(params=["random-mnist", "mnist"])
def mnist_shaped(request, random_mnist) -> datasets.BenchmarkDataset:
    if request.param == "random-mnist":
        return random_mnist
    if "mnist" not in datasets.available():
        pytest.skip("the trained mnist generator is not shipped yet")
    return datasets.load("mnist")


def test_gradient_finds_larger_constants_for_a_twentieth_of_the_evaluations(benchmark, mnist_shaped):
    gen, dim = mnist_shaped.generator, mnist_shaped.card.latent_dim
    started = time.perf_counter()
    sampled = {y: anchor_slopes(gen, dim, y, SAMPLING) for y in CLASSES}
    sampling_seconds = time.perf_counter() - started
    ascended = benchmark.pedantic(lambda: {y: anchor_slopes(gen, dim, y, GRADIENT) for y in CLASSES}, rounds=1)
    rows = {}
    for y in CLASSES:
        samp, grad = sampled[y], ascended[y]
        rows[y] = {
            "sampling_L": upper_bound(samp.values, STATISTIC),
            "gradient_L": upper_bound(grad.values, STATISTIC),
            "anchors_gradient_at_least_sampling": int((grad.values >= samp.values).sum()),
            "sampling_evaluations": samp.evaluations,
            "gradient_evaluations": grad.evaluations,
        }
    benchmark.extra_info.update(
        {"dataset": mnist_shaped.card.name, "anchors": ANCHORS, "sampling_seconds": round(sampling_seconds, 2), "classes": rows}
    )
    for row in rows.values():
        assert row["gradient_L"] >= row["sampling_L"]
        assert row["gradient_evaluations"] * 20 <= row["sampling_evaluations"]
