"""irob_bench.certify: the Lipschitz bound is sound (>= every slope gradient ascent finds), unknown models get a
reason, a submission's certify() is used and checked, and an unsound certificate is flagged by the attacks."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from irob_bench.attacks.outcomes import load_outcomes, save_outcomes
from irob_bench.attacks.presets import preset
from irob_bench.certify import (
    Unbounded,
    certify,
    conv_bound,
    describe_layers,
    lipschitz_bound,
    looseness,
    radii,
    rebuild_layers,
    violations,
)
from irob_bench.errors import IrobError
from irob_bench.evaluate import EvaluateOptions, evaluate
from irob_bench.import_checks import check_certified, verify_import
from irob_bench.models import LipschitzMLP, SmallCNN
from irob_bench.reference.orthogonal import bake, orthonormalise

from .factories import make_result

SUBMISSIONS = Path(__file__).parent / "submissions"
REFERENCES = Path(__file__).parent.parent / "submissions" / "mnist"


def _nets() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    torch.manual_seed(0)
    return {
        "relu-mlp": (nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5)), (1, 3, 4)),
        "conv-pool": (
            nn.Sequential(
                nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2, groups=2), nn.ReLU(),
                nn.AvgPool2d(2, stride=1), nn.Flatten(), nn.LazyLinear(3),
            ),
            (2, 8, 8),
        ),
        "maxmin-mlp": (LipschitzMLP(in_features=10, num_classes=4, width=8, depth=2), (1, 2, 5)),
        "small-cnn": (SmallCNN(in_channels=1, num_classes=3, image_size=8, width=2), (1, 8, 8)),
    }


def largest_slope(net: nn.Module, shape: tuple[int, ...], starts: int = 8, steps: int = 150) -> float:
    """The largest ||f(a) - f(b)|| / ||a - b|| gradient ascent finds (pairs that start close, Adam on both)."""
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(starts, *shape, generator=gen)
    b = (a + 1e-2 * torch.randn(a.shape, generator=gen)).requires_grad_(True)
    a.requires_grad_(True)
    opt = torch.optim.Adam([a, b], lr=1e-2)
    best = 0.0
    for _ in range(steps):
        slope = (net(a) - net(b)).flatten(1).norm(dim=1) / (a - b).flatten(1).norm(dim=1).clamp_min(1e-9)
        best = max(best, float(slope.detach().max()))
        opt.zero_grad()
        (-slope.sum()).backward()
        opt.step()
    return best


@pytest.mark.parametrize("name", ["relu-mlp", "conv-pool", "maxmin-mlp", "small-cnn"])
def test_bound_is_at_least_the_largest_slope_gradient_ascent_finds(name):
    net, shape = _nets()[name]
    net(torch.zeros(1, *shape))  # materialise lazy layers
    bound = lipschitz_bound(net, shape).total
    slope = largest_slope(net, shape)
    assert 0 < slope <= bound, (slope, bound)


def test_control_an_understated_bound_is_caught_by_the_same_ascent():
    """On a net whose bound is exact (one Linear), the ascent reaches it: 0.98 x the bound, or the power-iteration
    estimate after one step (which converges from below), would fail the soundness test."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 6))
    bound = lipschitz_bound(net, (1, 3, 4)).total
    slope = largest_slope(net, (1, 3, 4))
    assert slope > 0.98 * bound
    w = net[1].weight.detach()
    v = torch.randn(12, generator=torch.Generator().manual_seed(3))
    power_one_step = float((w @ (v / v.norm())).norm())
    assert slope > power_one_step


def test_orthonormal_maxmin_net_is_certified_tightly():
    torch.manual_seed(0)
    net = bake(orthonormalise(LipschitzMLP(in_features=16, num_classes=4, width=8, depth=2)))
    bound = lipschitz_bound(net, (1, 4, 4))
    assert bound.body == pytest.approx(1.0, abs=1e-3)
    x = torch.randn(64, 1, 4, 4)
    y = net(x).argmax(1)
    assert looseness(net, x, y, bound) == pytest.approx(1.0, abs=1e-3)
    ordinary = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))
    loose = looseness(ordinary, x, ordinary(x).argmax(1), lipschitz_bound(ordinary, (1, 4, 4)))
    assert loose > 1.2  # the control: an unconstrained ReLU net's product of norms overstates its slopes


def _conv_matrix_norm(conv: nn.Conv2d, shape: tuple[int, ...]) -> float:
    jac = torch.autograd.functional.jacobian(lambda v: conv(v) - conv.bias.view(-1, 1, 1), torch.zeros(1, *shape))
    return float(torch.linalg.matrix_norm(jac.reshape(-1, math.prod(shape)).double(), 2))


@pytest.mark.parametrize("kw", [dict(padding=1), dict(padding=2, stride=2), dict(padding=1, dilation=2, groups=2)])
def test_conv_bound_is_at_least_the_exact_operator_norm(kw):
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 4, 3, **kw)
    assert conv_bound(conv, (2, 6, 6)) >= _conv_matrix_norm(conv, (2, 6, 6)) * (1 - 1e-9)


def test_control_the_circular_bound_on_the_unpadded_grid_can_understate():
    """Why the grid is enlarged by the padding: on the bare 3x3 input grid the circular bound (4.0) misses this
    padded conv's exact norm (6.37); on the 7x7 grid it bounds it (7.85)."""
    conv = nn.Conv2d(1, 1, 3, padding=2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, -1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, -1.0, 1.0]]).view(1, 1, 3, 3))
    bare = nn.Conv2d(1, 1, 3, padding=0)
    bare.weight = conv.weight
    exact = _conv_matrix_norm(conv, (1, 3, 3))
    assert conv_bound(conv, (1, 3, 3)) >= exact
    assert conv_bound(bare, (1, 3, 3)) < exact


class _Scaled(nn.Sequential):
    def forward(self, x):
        return 100 * super().forward(x)


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)), "Tanh"),
        (_Scaled(nn.Flatten(), nn.Linear(4, 2)), "_Scaled"),
        (nn.Sequential(nn.Flatten(), nn.Conv2d(1, 1, 1, padding_mode="circular"), nn.Linear(4, 2)), "padding_mode"),
    ],
)
def test_unknown_models_get_no_certificate_with_the_reason(model, reason):
    x, y = torch.rand(6, 1, 2, 2), torch.zeros(6, dtype=torch.long)
    result = certify(model, x, y, [0.5, 1.0])
    assert result.certified is None and reason in result.reason
    bounds = result.accuracy()
    assert [b.value for b in bounds] == [None, None]
    assert all(b.reason.startswith("no certificate: ") and reason in b.reason for b in bounds)


def test_hooked_or_patched_model_gets_no_certificate():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    lipschitz_bound(model, (1, 2, 2))  # the control: the plain model is bounded
    model[1].register_forward_hook(lambda mod, inp, out: out * 100)
    with pytest.raises(Unbounded, match="hooks"):
        lipschitz_bound(model, (1, 2, 2))
    patched = SmallCNN(in_channels=1, num_classes=3, image_size=8, width=2)
    patched.forward = lambda x: 100 * patched.net(x)
    with pytest.raises(Unbounded, match="replaced on an instance"):
        lipschitz_bound(patched, (1, 8, 8))


def test_radius_certifies_only_points_no_perturbation_can_flip():
    """Moving a point by just over its radius along the worst direction of a linear model flips it; by just under
    does not (the pairwise radius of a linear classifier is exact)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 3))
    x = torch.randn(32, 1, 2, 4)
    y = model(x).argmax(1)
    r = radii(model(x), y, lipschitz_bound(model, (1, 2, 4)))
    w = model[1].weight.detach()
    logits = model(x).detach()
    gaps = (logits.gather(1, y[:, None]) - logits) / (w[y][:, None, :] - w[None]).norm(dim=2)
    runner = gaps.masked_fill(torch.nn.functional.one_hot(y, 3).bool(), math.inf).argmin(1)  # the nearest boundary
    direction = (w[runner] - w[y]) / (w[runner] - w[y]).norm(dim=1, keepdim=True)
    for scale, flips in ((0.999, False), (1.001, True)):
        moved = x + (scale * r.float()[:, None] * direction).view_as(x)
        assert bool((model(moved).argmax(1) != y).all()) is flips


class _Certifying(nn.Module):
    def __init__(self, answer) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.answer = answer

    def forward(self, x):
        return self.linear(x.flatten(1))

    def certify(self, x, y, eps):
        return self.answer(x)


def test_a_submission_certify_is_used_and_its_output_checked():
    x, y = torch.rand(5, 1, 2, 2), torch.zeros(5, dtype=torch.long)
    result = certify(_Certifying(lambda v: v[:, 0, 0, 0] > 0.5), x, y, [1.0, 2.0])
    assert result.source == "submission"
    np.testing.assert_array_equal(result.certified[:, 0], (x[:, 0, 0, 0] > 0.5).numpy())
    with pytest.raises(IrobError, match="bool tensor of shape"):
        certify(_Certifying(lambda v: torch.ones(len(v))), x, y, [1.0])


def test_violations_count_certified_points_an_attack_broke():
    certified = np.array([[True, True], [True, False], [False, False]])
    robust = np.array([[True, False], [True, False], [False, False]])
    np.testing.assert_array_equal(violations(certified, robust), [0, 1])


def test_evaluate_records_certified_accuracy_and_no_violation_for_a_sound_certificate():
    result = evaluate(SUBMISSIONS / "toy.py", EvaluateOptions(n_examples=24, eps=[1.0, 2.0], progress=False)).result
    assert result.metrics.certificate.source == "benchmark"
    for m in result.metrics.per_eps:
        assert m.certified_accuracy is not None and m.certified_reason is None
        assert m.certified_accuracy <= m.robust_accuracy_pgd
    assert not [f for f in result.flags if f.name == "certificate_violated"]


def test_control_evaluate_flags_a_deliberately_unsound_certificate():
    result = evaluate(SUBMISSIONS / "unsound_certificate.py",
                      EvaluateOptions(n_examples=24, eps=[1.0, 2.0], progress=False)).result
    assert result.metrics.certificate.source == "submission"
    flagged = {f.eps for f in result.flags if f.name == "certificate_violated"}
    assert flagged == {1.0, 2.0}


def _with_certified(values):
    result = make_result()
    per_eps = [m.model_copy(update={"certified_accuracy": v}) for m, v in zip(result.metrics.per_eps, values)]
    return result.model_copy(update={"metrics": result.metrics.model_copy(update={"per_eps": per_eps})})


def test_an_import_accepts_consistent_certified_accuracy_and_refuses_one_above_the_attacks():
    check_certified(_with_certified([0.9, 0.6, 0.3]))  # below PGD (0.912, 0.655, 0.301) and monotone
    with pytest.raises(IrobError, match="cannot beat an attack"):
        check_certified(_with_certified([0.913, 0.6, 0.3]))
    with pytest.raises(IrobError, match="grows with eps"):
        check_certified(_with_certified([0.5, 0.6, 0.3]))


def test_an_import_recounts_certified_accuracy_from_the_outcomes_per_point_certificates(tmp_path):
    """A certified accuracy that passes the consistency checks (a whole count, below PGD, monotone) but is not what the
    outcomes' per-point certificates count is refused (the control: the true one is accepted), and so is any
    positive certified accuracy from a file without per-point certificates (they could have been stripped)."""
    evaluation = evaluate(REFERENCES / "lipschitz" / "submission.py",
                          EvaluateOptions(n_examples=24, eps=[0.5, 1.0], attacks=preset("quick"), progress=False))
    result, outcomes = evaluation.result, evaluation.outcomes
    assert outcomes.certified is not None and outcomes.certified.shape == (24, 2)
    save_outcomes(outcomes, tmp_path / "o.npz")
    outcomes = load_outcomes(tmp_path / "o.npz")
    np.testing.assert_array_equal(outcomes.certified, evaluation.outcomes.certified)
    counted = outcomes.certified.mean(axis=0)
    assert [m.certified_accuracy for m in result.metrics.per_eps] == pytest.approx(counted) and counted[0] > 0
    verify_import(result, outcomes)
    per_eps = list(result.metrics.per_eps)
    per_eps[1] = per_eps[1].model_copy(update={"certified_accuracy": per_eps[1].certified_accuracy - 1 / 24})
    forged = result.model_copy(update={"metrics": result.metrics.model_copy(update={"per_eps": per_eps})})
    check_certified(forged)  # consistent: only the per-point certificates give it away
    with pytest.raises(IrobError, match=r"certified_accuracy = .* but the outcomes file gives"):
        verify_import(forged, outcomes)
    with pytest.raises(IrobError, match="has no per-point certificates"):
        verify_import(forged, replace(outcomes, certified=None))
    with pytest.raises(IrobError, match="certified has shape"):
        verify_import(result, replace(outcomes, certified=outcomes.certified[:, :1]))


def test_a_malformed_certify_is_refused_before_any_attack(monkeypatch):
    def no_attacks(*args, **kwargs):
        raise AssertionError("the attacks ran")

    monkeypatch.setattr("irob_bench.evaluate.run_attacks", no_attacks)
    with pytest.raises(IrobError, match="bool tensor of shape"):
        evaluate(SUBMISSIONS / "bad_certificate.py", EvaluateOptions(n_examples=24, eps=[1.0], progress=False))
    with pytest.raises(AssertionError, match="the attacks ran"):  # the control: a well-formed certify() gets there
        evaluate(SUBMISSIONS / "unsound_certificate.py", EvaluateOptions(n_examples=24, eps=[1.0], progress=False))


@pytest.mark.parametrize("name", sorted(_nets()))
def test_layers_described_by_a_worker_and_rebuilt_here_certify_as_the_model_itself(name):
    """A worker describes its model's layers (describe_layers); the parent rebuilds them and bounds the rebuilt
    network: the certificate is the one of the model in process."""
    model, shape = _nets()[name]
    x, y = torch.rand(6, *shape), torch.arange(6) % 3
    model(x)  # materialise lazy layers
    direct = certify(model.eval(), x, y, [0.01, 0.1])
    layers, tensors = describe_layers(model)
    layers = json.loads(json.dumps(layers))  # as it crosses the wire
    rebuilt = certify(model, x, y, [0.01, 0.1], layers=lambda: rebuild_layers(layers, tensors))
    assert rebuilt.lipschitz == pytest.approx(direct.lipschitz, rel=1e-6)
    assert np.array_equal(rebuilt.certified, direct.certified)


def test_control_a_description_that_is_not_the_model_certifies_nothing():
    """A worker that describes a 10x flatter network than the one it runs (to claim large radii) is caught: the
    rebuilt layers do not give the model's logits, so nothing is certified, with the reason."""
    model, shape = _nets()["relu-mlp"]
    x, y = torch.rand(6, *shape), torch.arange(6) % 3
    layers, tensors = describe_layers(model)
    flatter = [t / 10 for t in tensors]
    result = certify(model, x, y, [0.01], layers=lambda: rebuild_layers(layers, flatter))
    assert result.certified is None and "do not compute its logits" in result.reason


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda layers, tensors: ([{**layers[0], "type": "Sequential"}, *layers[1:]], tensors), "cannot read"),
    (lambda layers, tensors: ([{**layers[1], "arguments": {**layers[1]["arguments"], "in_features": 10**9}},
                               *layers[2:]], tensors[0:]), "cannot be rebuilt"),
    (lambda layers, tensors: (layers, tensors + [np.zeros(3, np.float32)]), "more tensors"),
    (lambda layers, tensors: ([{**layers[1], "arguments": {**layers[1]["arguments"], "device": "cuda"}},
                               *layers[2:]], tensors), "other arguments"),
    (lambda layers, tensors: ("layers", tensors), "no readable list"),
])  # fmt: skip
def test_a_malformed_description_is_refused_with_the_reason_before_any_large_allocation(mutate, reason):
    model, _ = _nets()["relu-mlp"]
    with pytest.raises(Unbounded, match=reason):
        rebuild_layers(*mutate(*describe_layers(model)))
