"""In-distribution attacks: our adaptive-penalty attack against Zhang et al.'s Lagrangian reference.

Run with `pytest tests/benchmarks --benchmark-only -k latent`. On each MNIST reference submission and the
default evaluation subset (the first 300 points of the seeded permutation of the frozen test set), the
adaptive attack must find at least as many in-distribution adversarial examples at every eps of the card,
with at most 1/3 of the Lagrangian's generator+classifier evaluations; and the `standard` preset's in-distribution
attack must find, at every eps, within 1 of 300 of what the same attack finds with 5x its budget (convergence).
Results: docs/performance.md.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from irob_bench import datasets
from irob_bench.attacks.config import LatentAttackConfig
from irob_bench.attacks.latent import LatentTask, evaluations_per_point, latent_attack, scaled_budget
from irob_bench.attacks.presets import preset
from irob_bench.evaluate import DEFAULT_N_EXAMPLES, SUBSET_SEED, subset_indices
from irob_bench.plugin import load_submission

REPO = Path(__file__).resolve().parents[2]
REFERENCES = sorted(p.parent.name for p in (REPO / "submissions" / "mnist").glob("*/submission.py"))
BATCH = 100


@pytest.fixture(scope="module")
def mnist_points() -> tuple[datasets.BenchmarkDataset, torch.Tensor, torch.Tensor, torch.Tensor]:
    data = datasets.load("mnist")
    idx = torch.as_tensor(subset_indices(data.card.splits["test"].size, DEFAULT_N_EXAMPLES, SUBSET_SEED))
    z, y = data.latents("test")[idx], data.labels("test")[idx]
    with torch.no_grad():
        x = data.generator(z, y)
    return data, x, y, z


def found_at(found, eps: list[float]) -> list[int]:
    """How many points have an on-manifold adversarial within each eps."""
    return [int((found.distance <= e + 1e-5).sum()) for e in eps]


@pytest.mark.parametrize("reference", REFERENCES)
def test_adaptive_finds_as_many_as_lagrangian_with_a_third_of_the_evaluations(benchmark, mnist_points, reference):
    data, x, y, z = mnist_points
    model = load_submission(REPO / "submissions" / "mnist" / reference / "submission.py").build("mnist")
    model = model.eval().requires_grad_(False)
    generator = data.generator.eval().requires_grad_(False)
    with torch.no_grad():
        correct = model(x).argmax(dim=1) == y
    task = LatentTask(model, generator, x, y, z, BATCH)
    eps = data.card.eps_grid
    ours_config, reference_config = LatentAttackConfig(), LatentAttackConfig(method="lagrangian")

    ours = benchmark.pedantic(latent_attack, args=(task, ours_config, eps), kwargs={"attack_mask": correct},
                              rounds=1, iterations=1)
    start = time.perf_counter()
    theirs = latent_attack(task, reference_config, eps, attack_mask=correct)
    counts = {"attacked": int(correct.sum()), "eps": eps, "adaptive_found": found_at(ours, eps),
              "lagrangian_found": found_at(theirs, eps),
              "adaptive_evaluations": evaluations_per_point(ours_config) * int(correct.sum()),
              "lagrangian_evaluations": evaluations_per_point(reference_config) * int(correct.sum()),
              "lagrangian_seconds": time.perf_counter() - start}
    benchmark.extra_info.update(counts)
    print(reference, counts)
    assert 3 * counts["adaptive_evaluations"] <= counts["lagrangian_evaluations"]
    assert all(a >= b for a, b in zip(counts["adaptive_found"], counts["lagrangian_found"])), counts


@pytest.mark.parametrize("reference", REFERENCES)
def test_standard_in_distribution_attack_is_within_one_point_of_five_times_its_budget(benchmark, mnist_points, reference):
    data, x, y, z = mnist_points
    model = load_submission(REPO / "submissions" / "mnist" / reference / "submission.py").build("mnist")
    model = model.eval().requires_grad_(False)
    with torch.no_grad():
        correct = model(x).argmax(dim=1) == y
    task = LatentTask(model, data.generator.eval().requires_grad_(False), x, y, z, BATCH)
    eps = data.card.eps_grid
    config = preset("standard").latent
    longer = scaled_budget(config, 5)
    ours = benchmark.pedantic(latent_attack, args=(task, config, eps), kwargs={"attack_mask": correct},
                              rounds=1, iterations=1)
    reference_found = found_at(latent_attack(task, longer, eps, attack_mask=correct), eps)
    counts = {"eps": eps, "standard_found": found_at(ours, eps), "five_times_found": reference_found}
    benchmark.extra_info.update(counts)
    print(reference, counts)
    assert all(a >= b - 1 for a, b in zip(counts["standard_found"], reference_found)), counts
