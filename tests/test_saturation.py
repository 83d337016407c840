"""The saturation map s_p of docs/science.md §1 (Ding et al.)."""

from __future__ import annotations

import math

import pytest
import torch

from irob_bench.generators.transforms import apply_output_transform, saturate

GRID = torch.linspace(0, 1, 1001, dtype=torch.float64)


def test_p2_is_the_identity():
    assert torch.allclose(saturate(GRID, 2.0), GRID, atol=1e-12)


@pytest.mark.parametrize("p", [1.0, 2.0, 4.0, 8.0, 16.0, 64.0, math.inf])
def test_monotone_and_range(p):
    out = saturate(GRID, p)
    assert out.min() >= 0 and out.max() <= 1
    assert (out[1:] - out[:-1] >= 0).all()
    assert saturate(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), p).tolist() == [0.0, 0.5, 1.0]


def test_matches_the_formula_at_a_point():
    v, p = 0.8, 8.0
    expected = math.copysign(abs(2 * v - 1) ** (2 / p), 2 * v - 1) / 2 + 0.5
    assert saturate(torch.tensor(v, dtype=torch.float64), p).item() == pytest.approx(expected, abs=1e-12)


def test_large_p_approaches_binarisation():
    away = GRID[(GRID - 0.5).abs() > 0.05]
    binary = (away > 0.5).double()
    errors = [(saturate(away, p) - binary).abs().max().item() for p in (4, 16, 64, 1024)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.01
    assert torch.equal(saturate(away, math.inf), binary)


def test_p_below_2_pulls_toward_half():
    assert ((saturate(GRID, 1.0) - 0.5).abs() <= (GRID - 0.5).abs() + 1e-12).all()


def test_card_transform_dispatch():
    x = torch.rand(2, 3, 4, 4)
    assert torch.equal(apply_output_transform(x, {}), x)
    assert torch.equal(apply_output_transform(x, {"saturation_p": 8}), saturate(x, 8.0))


def test_straight_through_binarisation_keeps_the_values_and_passes_the_gradient():
    x = torch.rand(4, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    exact = saturate(x, math.inf)
    through = saturate(x, math.inf, straight_through=True)
    assert torch.equal(through, exact)  # the same bytes: an attack sees exactly the dataset's images
    weights = torch.randn_like(x)
    (grad,) = torch.autograd.grad((through * weights).sum(), x)
    assert torch.equal(grad, weights)  # the identity's (s_2's) gradient
    # Control: binarisation's own gradient is zero everywhere, which leaves a gradient attack blind.
    (blind,) = torch.autograd.grad((exact * weights).sum(), x)
    assert torch.count_nonzero(blind) == 0


def test_straight_through_leaves_finite_p_alone():
    x = torch.rand(64, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    (plain,) = torch.autograd.grad(saturate(x, 8.0).sum(), x)
    (through,) = torch.autograd.grad(saturate(x, 8.0, straight_through=True).sum(), x)
    assert torch.equal(plain, through)


@pytest.mark.parametrize("p", [4.0, 8.0, 64.0])
def test_straight_through_gives_a_pixel_at_one_half_no_gradient_instead_of_nan(p):
    x = torch.tensor([0.1, 0.5, 0.7, 0.5, 0.9], dtype=torch.float32, requires_grad=True)
    through = saturate(x, p, straight_through=True)
    assert torch.equal(through, saturate(x, p))  # the same bytes
    (grad,) = torch.autograd.grad(through.sum(), x)
    (true,) = torch.autograd.grad(saturate(x, p).sum(), x)
    assert grad[1] == 0 and grad[3] == 0
    assert torch.equal(grad[[0, 2, 4]], true[[0, 2, 4]])  # elsewhere the true slope
    # Control: the true map's slope at 1/2 is infinite and autograd makes it NaN (which the Lipschitz audit needs).
    assert torch.isnan(true[1]) and torch.isnan(true[3])
