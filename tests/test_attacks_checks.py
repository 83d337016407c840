"""Verification rejects forged adversarials; sanity flags fire on crafted models and outcomes; minimal curves."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from irob_bench.attacks.common import NO_CLASS, Found, margin, predict
from irob_bench.attacks.config import AttackSuiteConfig, FlagsConfig, LatentAttackConfig, MinimalConfig, StageConfig
from irob_bench.attacks.flags import in_distribution_flags
from irob_bench.attacks.minimal import robust_accuracy_curve
from irob_bench.attacks.suite import run_attacks
from irob_bench.attacks.verify import verify_images, verify_latents
from tests.factories import apgd_stages


class Threshold(nn.Module):
    """Class 1 iff the mean pixel exceeds 0.5 (logits +-(mean - 0.5)); its exact minimal distance is known."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1).mean(dim=1) - 0.5
        return torch.stack([-s, s], dim=1) * 10


class Quantised(nn.Module):
    """Threshold on a rounded input: zero gradients everywhere, yet easy to break with noise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return Threshold()(torch.round(x * 8) / 8)


class ShiftGenerator(nn.Module):
    """g(z, y) = clip(0.5 + z broadcast over 16 pixels): an exactly known 'manifold'."""

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (0.5 + z[:, :1, None, None].expand(-1, 1, 4, 4)).clamp(0, 1)


def points(values: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Constant 1x4x4 images with the given pixel value, labelled by the threshold model."""
    x = torch.tensor(values)[:, None, None, None].expand(-1, 1, 4, 4).clone()
    return x, (torch.tensor(values) > 0.5).long()


def test_verification_accepts_real_and_rejects_forged_adversarials() -> None:
    model = Threshold()
    x, y = points([0.45, 0.45, 0.45, 0.45, 0.45])
    forged = x.clone()
    forged[0] = 0.55  # real: flips, distance 0.4
    forged[1] = 0.9  # flips but distance 1.8 > eps
    forged[2] = 0.46  # within eps but not flipped
    forged[3] = 0.55
    forged[3, 0, 0, 0] = 1.5  # outside [0, 1]
    forged[4] = float("nan")
    found = Found(forged, torch.ones(5, dtype=torch.bool), torch.zeros(5))
    checked = verify_images(model, x, y, found, max_distance=1.0, batch_size=2)
    assert checked.valid.tolist() == [True, False, False, False, False]
    assert checked.rejected == 4
    assert math.isclose(checked.distance[0], 0.4, rel_tol=1e-5) and np.isinf(checked.distance[1:]).all()
    robust = checked.robust(np.ones(5, dtype=bool), [0.3, 0.5])
    assert robust[:, 0].all() and robust[:, 1].tolist() == [False, True, True, True, True]


def test_verification_rejects_off_manifold_latents() -> None:
    model, gen = Threshold(), ShiftGenerator()
    z = torch.full((3, 2), -0.05)
    x, y = gen(z, None), torch.zeros(3, dtype=torch.long)
    z_adv = torch.tensor([[0.05, 0.0], [0.4, 0.0], [0.0, 0.0]])  # on-manifold flip; too far; not flipped
    found = Found(z_adv, torch.ones(3, dtype=torch.bool), torch.zeros(3))
    checked = verify_latents(model, gen, x, y, found, max_distance=1.0, batch_size=2)
    assert checked.valid.tolist() == [True, False, False]
    assert math.isclose(checked.distance[0], 0.4, rel_tol=1e-5)


def test_gradient_masking_model_raises_vanishing_noise_and_later_stage_flags() -> None:
    model = Quantised()
    x, y = points([0.4, 0.6] * 12)
    square = StageConfig(name="square", attack="square", steps=200)
    config = AttackSuiteConfig(
        unconstrained=(*apgd_stages(5), square),
        minimal=MinimalConfig(enabled=False),
        flags=FlagsConfig(noise_draws=8, random_search_queries=8),
    )
    out = run_attacks(model, x, y, [0.2, 2.0], config, seed=0, batch_size=8, progress=False)
    names = {(f.name, f.eps) for f in out.flags}
    assert ("vanishing_gradients", None) in names
    (_, after_apgd), (_, after_square) = out.stage_accuracies()
    assert after_apgd[1] >= 0.5, "APGD is stuck at zero gradients (only its random start can break a point)"
    assert after_square[1] < after_apgd[1], "the gradient-free stage breaks what the gradient stage left"
    assert ("later_stage_breaks_more", 2.0) in names
    assert ("later_stage_breaks_more", 0.2) not in names, "nothing can break a point at eps 0.2"


def test_honest_model_raises_no_gradient_or_noise_flags() -> None:
    x, y = points([0.3, 0.35, 0.4, 0.6, 0.65, 0.7])
    config = AttackSuiteConfig(unconstrained=apgd_stages(20), minimal=MinimalConfig(steps=50), flags=FlagsConfig(noise_draws=4))
    out = run_attacks(Threshold(), x, y, [0.2, 2.0], config, seed=0, batch_size=4, progress=False)
    assert out.flags == []
    assert out.robust_accuracy_pgd() == [1.0, 0.0]


class NaNOffClean(nn.Module):
    """Threshold on its exact clean points, NaN logits anywhere else: robust only if NaN were read as an answer."""

    def __init__(self, clean: torch.Tensor) -> None:
        super().__init__()
        self.clean = clean.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        known = (x.flatten(1)[:, None, :] == self.clean[None]).all(dim=2).any(dim=1)
        return torch.where(known[:, None], Threshold()(x), float("nan"))


def test_nan_logits_off_the_clean_points_count_as_broken_not_robust() -> None:
    x, y = points([0.3, 0.35, 0.4, 0.6, 0.65, 0.7])
    config = AttackSuiteConfig(unconstrained=apgd_stages(5), minimal=MinimalConfig(steps=20), flags=FlagsConfig(noise_draws=2))
    honest = run_attacks(Threshold(), x, y, [0.2, 2.0], config, seed=0, batch_size=4, progress=False)
    assert honest.robust_accuracy_pgd() == [1.0, 0.0]  # control: nothing within 0.2 flips the threshold
    out = run_attacks(NaNOffClean(x), x, y, [0.2, 2.0], config, seed=0, batch_size=4, progress=False)
    assert out.robust_accuracy_pgd() == [0.0, 0.0], "NaN answers off the clean points were counted as correct"
    logits = torch.tensor([[1.0, 0.0], [float("nan"), 0.0], [float("inf"), 0.0]])
    assert predict(lambda v: v, logits, batch_size=2).tolist() == [0, NO_CLASS, NO_CLASS]
    assert margin(logits, torch.zeros(3, dtype=torch.long)).tolist() == [1.0, -math.inf, -math.inf]


def test_in_distribution_flags_on_crafted_outcomes() -> None:
    eps = [1.0, 2.0, 3.0]
    robust_pgd = np.array([[True, True, False], [True, False, False]])
    robust_in = np.array([[True, True, False], [True, False, False]])
    assert in_distribution_flags(eps, robust_pgd, robust_in) == []
    robust_in[0, 1] = False
    assert [(f.name, f.eps) for f in in_distribution_flags(eps, robust_pgd, robust_in)] == [
        ("in_distribution_below_unconstrained", 2.0)
    ]
    # Found by an audit: a point missed by the unconstrained attack hid behind one it broke that the latent attack
    # did not, the two accuracies being equal; point by point it is flagged (control: without the miss, no flag)
    robust_pgd = np.array([[True, True, True], [False, False, False]])
    robust_in = np.array([[False, False, False], [True, True, True]])
    assert robust_pgd.mean(axis=0).tolist() == robust_in.mean(axis=0).tolist()
    flags = in_distribution_flags(eps, robust_pgd, robust_in)
    assert [f.eps for f in flags] == eps and "1 points the unconstrained attack left robust" in flags[0].message
    assert in_distribution_flags(eps, robust_pgd, robust_pgd) == []


def test_minimal_distance_curve_matches_direct_attack_at_grid_points() -> None:
    """On the threshold model r_unc is exactly 4 |v - 0.5| (16 pixels); curve and PGD agree at the grid."""
    values = np.linspace(0.2, 0.8, 25)
    values = values[np.abs(values - 0.5) > 0.01]
    x, y = points(values.tolist())
    eps = [0.25, 0.45, 0.85]
    config = AttackSuiteConfig(unconstrained=apgd_stages(20), minimal=MinimalConfig(steps=100, init_norm=0.3))
    out = run_attacks(Threshold(), x, y, eps, config, seed=2, batch_size=8, progress=False)
    exact = 4 * np.abs(values - 0.5)
    assert np.all(out.r_unc >= exact - 1e-4), "no attack can beat the exact minimal distance"
    assert np.all(out.r_unc <= exact * 1.05 + 1e-3)
    curve = robust_accuracy_curve(out.r_unc, eps)
    np.testing.assert_allclose(curve, out.robust_accuracy_pgd(), atol=1 / len(values) + 1e-9)
    np.testing.assert_allclose(curve, robust_accuracy_curve(exact, eps), atol=1 / len(values) + 1e-9)


def test_robust_accuracy_curve_counts_zero_and_infinite_distances() -> None:
    d = np.array([0.0, 0.5, 1.0, np.inf])
    np.testing.assert_allclose(robust_accuracy_curve(d, [0.0, 0.49, 0.5, 2.0]), [0.75, 0.75, 0.5, 0.25])


def test_latent_attack_on_exact_manifold_matches_geometry() -> None:
    """With g = 0.5 + z, the on-manifold distance to flip a point at value v is 4 |v - 0.5| as well."""
    gen = ShiftGenerator()
    z = torch.tensor([[-0.1, 0.0], [-0.3, 0.0], [0.2, 0.0]])
    x = gen(z, None)
    y = (z[:, 0] > 0).long()
    config = AttackSuiteConfig(
        unconstrained=apgd_stages(10), latent=LatentAttackConfig(inner_steps=60, lr=0.02), minimal=MinimalConfig(steps=60)
    )
    out = run_attacks(Threshold(), x, y, [0.5, 1.0], config, generator=gen, z=z, seed=0, batch_size=2, progress=False)
    assert out.r_in is not None and out.robust_in is not None
    np.testing.assert_allclose(out.r_in, [0.4, 1.2, 0.8], rtol=0.1)
    assert out.robust_in.tolist() == [[False, False], [True, True], [True, False]]


def test_on_manifold_adversarials_the_cascade_missed_count_against_unconstrained_robustness(monkeypatch) -> None:
    """A verified on-manifold adversarial within eps is an unconstrained adversarial too: the points the cascade left
    robust and the in-distribution attack broke count as broken in robust_pgd (the report's last stage), r_unc takes
    their distance, and the flag says the cascade missed them. Control: with the cascade that finds them, nothing
    is folded, the report has no in-distribution stage and no flag fires."""
    import irob_bench.attacks.suite as suite
    from irob_bench.import_checks import check_outcome_logic

    gen = ShiftGenerator()
    z = torch.tensor([[-0.1, 0.0], [-0.3, 0.0], [0.2, 0.0]])
    x, y = gen(z, None), (z[:, 0] > 0).long()
    config = AttackSuiteConfig(unconstrained=apgd_stages(10), latent=LatentAttackConfig(inner_steps=60, lr=0.02),
                               minimal=MinimalConfig(enabled=False), flags=FlagsConfig(noise_draws=0, random_search_queries=0))

    def run():  # noqa: ANN202
        return run_attacks(Threshold(), x, y, [0.5, 1.0], config, generator=gen, z=z, seed=0, batch_size=2, progress=False)

    honest = run()
    assert honest.robust_pgd.tolist() == [[False, False], [True, True], [True, False]]
    assert [name for name, _ in honest.stage_accuracies()] == ["apgd-ce"]
    assert not [f for f in honest.flags if f.name == "in_distribution_below_unconstrained"]

    real = suite.cascade_attack

    def blind(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        found = real(*args, **kwargs)
        found.found[:], found.distance[:] = False, math.inf
        return found

    monkeypatch.setattr(suite, "cascade_attack", blind)
    out = run()
    assert out.robust_pgd.tolist() == out.robust_in.tolist() == [[False, False], [True, True], [True, False]]
    np.testing.assert_allclose(out.r_unc, out.r_in)
    assert [name for name, _ in out.stage_accuracies()] == ["apgd-ce", "in-distribution"]
    assert out.stage_accuracies()[0][1] == [1.0, 1.0]  # after the (blind) cascade every point stood
    flags = [f for f in out.flags if f.name == "in_distribution_below_unconstrained"]
    assert [f.eps for f in flags] == [0.5, 1.0] and "count as broken" in flags[0].message
    check_outcome_logic(out)  # an import accepts the report's in-distribution stage
