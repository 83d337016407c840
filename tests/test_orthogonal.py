"""`irob-bench train lipschitz`: Björck-orthonormalised layers, baked into a plain Sequential the certifier bounds
tightly (bound = 1, looseness = 1) and that loads back as a submission."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from irob_bench.certify import certify, lipschitz_bound
from irob_bench.plugin import load_submission
from irob_bench.reference.baselines import train_reference
from irob_bench.reference.models import LipschitzMLP
from irob_bench.reference.orthogonal import bake, orthonormalise


def _singular_values(model: nn.Module) -> list[torch.Tensor]:
    return [torch.linalg.svdvals(m.weight.detach().double()) for m in model.modules() if isinstance(m, nn.Linear)]


def test_bjorck_moves_every_singular_value_towards_one_and_never_above():
    torch.manual_seed(0)
    model = LipschitzMLP(in_features=20, num_classes=4, width=8, depth=2)
    scaled = [s / s.max() for s in _singular_values(model)]  # where the iteration starts
    assert all(float(s.min()) < 0.9 for s in scaled)  # the control: a scaled random init is far from orthonormal
    orthonormalise(model)
    after = _singular_values(model)
    for start, end in zip(scaled, after, strict=True):
        assert float(end.max()) <= 1 + 1e-6
        assert bool((end >= start - 1e-9).all())
    assert float(after[0].min()) > 1 - 1e-3  # the well-conditioned 8 x 20 first layer is orthonormal


def test_bake_leaves_plain_linears_with_the_same_function():
    torch.manual_seed(0)
    model = orthonormalise(LipschitzMLP(in_features=20, num_classes=4, width=8, depth=2))
    x = torch.randn(5, 1, 4, 5)
    expected = model(x).detach()
    bake(model)
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    assert set(model.state_dict()) == set(LipschitzMLP(20, 4, 8, 2).state_dict())
    torch.testing.assert_close(model(x), expected)


def test_trained_lipschitz_reference_is_a_submission_the_certifier_bounds_tightly(random_mnist, tmp_path):
    record = train_reference("lipschitz", random_mnist, tmp_path, eps=2.0, epochs=1, width=16, progress=False)
    assert record.method == "lipschitz" and record.eps == 2.0 and record.attack_steps is None
    model = load_submission(tmp_path / "submission.py").build("random-mnist")
    assert type(model) is LipschitzMLP
    assert lipschitz_bound(model, (1, 28, 28)).body < 1 + 1e-3
    x = random_mnist.images("test")[:64]
    y = random_mnist.labels("test")[:64]
    result = certify(model, x, y, [0.1, 1.0])
    assert result.source == "benchmark" and result.tightness == "tight" and result.looseness < 1.01
