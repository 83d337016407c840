"""The unconstrained cascade and the run_attacks entry point on tiny models: bounds, monotonicity, determinism, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from irob_bench.attacks.cascade import cascade_attack
from irob_bench.attacks.common import flat_norm
from irob_bench.attacks.config import AttackSuiteConfig, FlagsConfig, MinimalConfig
from irob_bench.attacks.outcomes import load_outcomes, save_outcomes
from irob_bench.attacks.suite import run_attacks
from irob_bench.errors import IrobError
from tests.factories import apgd_stages

FAST = AttackSuiteConfig(
    unconstrained=apgd_stages(10, 2),
    minimal=MinimalConfig(steps=30),
    flags=FlagsConfig(noise_draws=2, random_search_queries=4),
)


def small_problem(n: int = 48, seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A random linear classifier on 1x8x8 images, labelled by itself so every point starts correct."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4)).eval().requires_grad_(False)
    x = torch.rand(n, 1, 8, 8)
    return model, x, model(x).argmax(dim=1)


def test_cascade_breaks_undefended_model_within_eps_and_box() -> None:
    model, x, y = small_problem()
    eps = [0.05, 1.0, 4.0]
    found = cascade_attack(model, x, y, eps, apgd_stages(20), base_key=1, indices=torch.arange(len(x)),
                           attack_mask=torch.ones(len(x), dtype=torch.bool), batch_size=16)
    assert found.found.all(), "a linear 4-class model must fall at eps=4 on 8x8 inputs"
    assert (found.distance <= 0.05 + 1e-6).sum() < len(x), "a tiny eps cannot break every point"
    norms = flat_norm(found.points - x)
    assert torch.all(norms <= 4.0 + 1e-5)
    assert torch.all((found.points >= 0) & (found.points <= 1))
    assert torch.all(model(found.points).argmax(dim=1) != y)


def test_robust_accuracy_is_monotone_per_point_and_verified() -> None:
    model, x, y = small_problem()
    out = run_attacks(model, x, y, [2.0, 0.1, 0.5], FAST, seed=3, batch_size=16, progress=False)
    assert out.eps == [0.1, 0.5, 2.0]
    assert np.all(out.robust_pgd[:, 1:] <= out.robust_pgd[:, :-1])
    assert out.robust_accuracy_pgd()[0] > out.robust_accuracy_pgd()[-1]
    broken_at = np.where(out.robust_pgd, np.inf, np.asarray(out.eps)[None, :]).min(axis=1)
    assert np.all(out.r_unc <= broken_at + 1e-5), "a PGD adversarial bounds the minimal distance"


def test_same_seed_same_outcomes_bytes(tmp_path) -> None:
    model, x, y = small_problem(n=24)
    runs = [run_attacks(model, x, y, [0.3, 1.0], FAST, seed=7, batch_size=8, progress=False) for _ in range(2)]
    for k, run in enumerate(runs):
        save_outcomes(run, tmp_path / f"run{k}.npz")
    assert (tmp_path / "run0.npz").read_bytes() == (tmp_path / "run1.npz").read_bytes()
    loaded = load_outcomes(tmp_path / "run0.npz")
    np.testing.assert_array_equal(loaded.robust_pgd, runs[0].robust_pgd)
    np.testing.assert_array_equal(loaded.indices, np.arange(24))
    assert loaded.config == FAST and loaded.seed == 7 and loaded.flags == runs[0].flags


def test_point_outcome_does_not_depend_on_batch_or_subset() -> None:
    model, x, y = small_problem(n=40)
    eps = [0.2, 0.6]
    full = run_attacks(model, x, y, eps, FAST, seed=5, batch_size=40, progress=False)
    subset = np.arange(40)[::-1][::2].copy()
    part = run_attacks(model, x[subset], y[subset], eps, FAST, seed=5, batch_size=3, progress=False, indices=subset)
    np.testing.assert_array_equal(part.robust_pgd, full.robust_pgd[subset])
    np.testing.assert_allclose(part.r_unc, full.r_unc[subset], rtol=1e-4)


def test_misclassified_points_are_never_robust_and_have_zero_distance() -> None:
    model, x, y = small_problem(n=16)
    y = y.clone()
    y[:4] = (y[:4] + 1) % 4
    out = run_attacks(model, x, y, [0.5], FAST, seed=0, batch_size=8, progress=False)
    assert not out.clean_correct[:4].any() and out.clean_correct[4:].all()
    assert not out.robust_pgd[:4].any() and np.all(out.r_unc[:4] == 0)


@pytest.mark.parametrize("eps", [[], [0.0], [float("nan")]])
def test_bad_eps_is_a_user_error(eps) -> None:
    model, x, y = small_problem(n=4)
    with pytest.raises(IrobError):
        run_attacks(model, x, y, eps, FAST, seed=0, batch_size=4, progress=False)
