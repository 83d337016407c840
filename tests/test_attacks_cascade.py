"""APGD, the Square-style search, the descending cascade, presets and EOT on small models with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from irob_bench.attacks.apgd import apgd_run, checkpoint_windows
from irob_bench.attacks.cascade import cascade_attack
from irob_bench.attacks.common import flat_norm, input_gradient, objective, random_start
from irob_bench.attacks.config import AttackSuiteConfig, FlagsConfig, MinimalConfig, StageConfig
from irob_bench.attacks.presets import PRESETS, RANDOMIZED_EOT_SAMPLES, preset
from irob_bench.attacks.square import square_run
from irob_bench.attacks.suite import run_attacks
from irob_bench.attacks.verify import check_images
from irob_bench.commands.evaluate import ATTACK_PRESETS
from irob_bench.errors import IrobError
from tests.factories import apgd_stages


def linear_problem(n: int = 40, classes: int = 5, seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A random linear classifier on 1x8x8 images, labelled by itself: exact minimal distances are known."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, classes)).eval().requires_grad_(False)
    x = torch.rand(n, 1, 8, 8) * 0.5 + 0.25
    return model, x, model(x).argmax(dim=1)


def exact_linear_distance(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) the minimal L2 distance to the decision boundary of a linear classifier (ignoring the box)."""
    w = model[1].weight
    logits = model(x)
    gaps = (logits.gather(1, y[:, None]) - logits) / (w[y][:, None, :] - w[None]).norm(dim=2).clamp_min(1e-12)
    return gaps.scatter(1, y[:, None], float("inf")).amin(dim=1)


def test_checkpoints_follow_apgd_schedule() -> None:
    assert checkpoint_windows(100) == [22, 19, 16, 13, 10, 7, 6, 6]
    assert sum(checkpoint_windows(40)) <= 40 and checkpoint_windows(1) == [1]


def test_apgd_breaks_every_point_beyond_its_exact_distance_and_stays_in_the_ball() -> None:
    model, x, y = linear_problem()
    exact = exact_linear_distance(model, x, y)
    eps = float(exact.median())
    start = random_start(x, torch.arange(len(x)), eps, on_sphere=True)
    delta, broken = apgd_run(model, x, y, eps, start, 50, "dlr")
    assert torch.all(flat_norm(delta) <= eps + 1e-5) and torch.all((x + delta >= 0) & (x + delta <= 1))
    assert not broken[exact > eps + 1e-4].any(), "no attack breaks a point farther than its exact distance"
    assert broken[exact < 0.9 * eps].all(), "APGD finds the linear boundary of every point well inside the ball"
    assert torch.all(model(x + delta)[broken].argmax(dim=1) != y[broken])


def test_targeted_dlr_pushes_the_target_logit() -> None:
    model, x, y = linear_problem(classes=6)
    target = (y + 1) % 6
    value, _, grad = input_gradient(model, x, y, "dlr-targeted", target=target)
    moved = objective(model(x - 0.01 * grad), y, "dlr-targeted", target)
    assert torch.all(moved < value), "a step against the gradient lowers the targeted DLR objective"
    with pytest.raises(ValueError):
        objective(model(x), y, "dlr-targeted")


def test_square_search_needs_no_gradient_and_respects_the_ball() -> None:
    model, x, y = linear_problem()
    exact = exact_linear_distance(model, x, y)
    eps = float(exact.quantile(0.75))
    delta, broken = square_run(model, x, y, eps, torch.arange(len(x)), 300)
    assert torch.all(flat_norm(delta) <= eps + 1e-5) and torch.all((x + delta >= 0) & (x + delta <= 1))
    assert not broken[exact > eps + 1e-4].any()
    assert broken.float().mean() >= 0.4, "a random search finds a linear boundary for many of the nearer points"
    again, _ = square_run(model, x[::2], y[::2], eps, torch.arange(len(x))[::2], 300)
    torch.testing.assert_close(again, delta[::2])  # a point's search does not depend on its batch


def test_descending_cascade_is_monotone_and_skips_points_robust_at_a_larger_eps() -> None:
    model, x, y = linear_problem()
    eps = [0.02, 0.1, 0.3]
    calls: list[int] = []

    class Spy(nn.Module):
        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            calls.append(len(inputs))
            return model(inputs)

    found = cascade_attack(Spy(), x, y, eps, apgd_stages(10), base_key=0, indices=torch.arange(len(x)),
                           attack_mask=torch.ones(len(x), dtype=torch.bool), batch_size=64)
    stage = found.stage.numpy()
    broken = stage >= 0
    assert np.all(broken[:, 1:] >= broken[:, :-1]), "broken at eps_i means broken at every larger eps"
    robust_at_largest = int((~broken[:, -1]).sum())
    assert robust_at_largest > 0 and len(calls) > 0
    # Each point robust at the largest eps is attacked once (11 passes), never again at the smaller ones.
    assert sum(calls) <= 11 * len(x) + 11 * int(broken[:, -1].sum()) * (len(eps) - 1)


def test_stage_report_is_cumulative_and_recorded() -> None:
    model, x, y = linear_problem()
    config = AttackSuiteConfig(
        preset="custom",
        unconstrained=(*apgd_stages(3), StageConfig(name="apgd-t", attack="apgd", loss="dlr-targeted", steps=30,
                                                    targets=4)),
        minimal=MinimalConfig(enabled=False),
        flags=FlagsConfig(noise_draws=0, random_search_queries=0),
    )
    out = run_attacks(model, x, y, [0.05, 0.2], config, seed=0, batch_size=16, progress=False)
    (first, after_first), (second, after_second) = out.stage_accuracies()
    assert (first, second) == ("apgd-ce", "apgd-t")
    assert after_second == out.robust_accuracy_pgd()
    assert all(b <= a for a, b in zip(after_first, after_second))


def test_presets_are_registered_recorded_and_refused_by_name() -> None:
    assert tuple(PRESETS) == ATTACK_PRESETS, "the CLI lists the presets without importing torch"
    assert preset("standard").preset == "standard"
    with pytest.raises(IrobError, match=r"unknown attack preset 'fast' \(available: quick, standard, thorough\)"):
        preset("fast")
    randomized = preset("standard", randomized=True)
    assert randomized.eot_samples == RANDOMIZED_EOT_SAMPLES and randomized.verify_draws > 1
    assert preset("standard").eot_samples == 1, "the registry's preset is not changed by a randomized copy"


def test_dlr_targeted_needs_targets() -> None:
    with pytest.raises(ValueError, match="go together"):
        StageConfig(name="t", attack="apgd", loss="dlr-targeted", steps=5)


class NoisyLinear(nn.Module):
    """A linear model behind Gaussian input noise: every forward pass draws new noise (a randomized defense)."""

    def __init__(self, base: nn.Module, sigma: float) -> None:
        super().__init__()
        self.base, self.sigma = base, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(torch.relu(x + self.sigma * torch.randn_like(x)))


def test_eot_averages_gradients_of_a_randomized_model() -> None:
    model, x, y = linear_problem(n=16)
    noisy = NoisyLinear(model, 0.3)
    torch.manual_seed(0)
    reference = input_gradient(noisy, x, y, "ce", samples=400)[2]
    single = input_gradient(noisy, x, y, "ce", samples=1)[2]
    eot = input_gradient(noisy, x, y, "ce", samples=20)[2]
    assert flat_norm(eot - reference).mean() < 0.5 * flat_norm(single - reference).mean()


def test_majority_verification_refuses_a_lucky_flip() -> None:
    class Flaky(nn.Module):
        """Predicts class 0, except for one forward pass in four, when it predicts class 1."""

        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            logits = torch.zeros(len(inputs), 2)
            logits[:, 1 if self.calls % 4 == 1 else 0] = 1.0
            return logits

    x = torch.zeros(3, 1, 2, 2)
    y = torch.zeros(3, dtype=torch.long)
    claimed = torch.ones(3, dtype=torch.bool)
    assert check_images(Flaky(), x, y, x, claimed, 1.0, 8, draws=1).valid.all(), "control: one lucky pass flips"
    assert not check_images(Flaky(), x, y, x, claimed, 1.0, 8, draws=5).valid.any()
