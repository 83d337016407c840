"""The few example points kept beside a run's outcomes (clean, PGD and on-manifold adversarials, predicted labels)."""

from __future__ import annotations

import numpy as np
import torch

from irob_bench.artifacts import read_npz
from irob_bench.attacks.config import AttackSuiteConfig, LatentAttackConfig, MinimalConfig
from irob_bench.attacks.examples import Examples
from irob_bench.attacks.outcomes import load_outcomes, save_outcomes
from irob_bench.attacks.suite import run_attacks
from tests.factories import apgd_stages
from tests.test_attacks_checks import ShiftGenerator, Threshold


def _run():
    gen = ShiftGenerator()
    # values 0.4, 0.7, 0.45, 0.9, 0.2: flipping needs an L2 distance of 4 |v - 0.5| = 0.4, 0.8, 0.2, 1.6, 1.2
    z = torch.tensor([[-0.1, 0.0], [0.2, 0.0], [-0.05, 0.0], [0.4, 0.0], [-0.3, 0.0]])
    x = gen(z, None)
    y = (z[:, 0] > 0).long()
    y[2] = 1  # point 2 is misclassified: never an example
    config = AttackSuiteConfig(
        unconstrained=apgd_stages(10), latent=LatentAttackConfig(inner_steps=60, lr=0.02), minimal=MinimalConfig(steps=20)
    )
    return run_attacks(Threshold(), x, y, [0.5, 1.0], config, generator=gen, z=z, seed=0, batch_size=2, progress=False)


def test_examples_show_verified_adversarials_with_their_predictions() -> None:
    out = _run()
    ex = out.examples
    assert ex is not None
    assert ex.indices.tolist() == [0, 1, 3, 4]  # the correctly classified points, in order
    assert ex.clean.dtype == np.uint8 and ex.clean.shape == (4, 1, 4, 4)
    assert (ex.predicted[:, 0] == ex.labels).all()  # clean: right by construction
    found = np.isfinite(ex.distance)
    # PGD searches within the largest eps (1.0): the points at 0.4 and 0.7 break (0.4, 0.8), 0.9 and 0.2 cannot
    # (1.6, 1.2); the on-manifold search is unbounded and finds each point's minimal on-manifold adversarial
    assert found[:, 0].tolist() == [True, True, False, False] and found[:, 1].all()
    np.testing.assert_allclose(ex.distance[:, 1], [0.4, 0.8, 1.6, 1.2], rtol=0.15)
    assert (ex.predicted[found[:, 0], 1] != ex.labels[found[:, 0]]).all()
    assert (ex.predicted[~found[:, 0], 1] == -1).all() and (ex.predicted[~found[:, 1], 2] == -1).all()
    moved = np.abs(ex.pgd.astype(int) - ex.clean.astype(int)).sum(axis=(1, 2, 3))
    assert (moved[found[:, 0]] > 0).all()  # the adversarial image is not the clean one


def test_examples_round_trip_through_the_outcomes_file(tmp_path) -> None:
    out = _run()
    path = tmp_path / "run.outcomes.npz"
    save_outcomes(out, path)
    back = load_outcomes(path).examples
    assert back is not None
    for name, value in out.examples.arrays().items():  # type: ignore[union-attr]
        np.testing.assert_array_equal(getattr(back, name.removeprefix("example_")), value)
    save_outcomes(out, tmp_path / "again.npz")
    assert path.read_bytes() == (tmp_path / "again.npz").read_bytes()  # deterministic bytes
    assert path.stat().st_size < 20_000


def test_control_a_file_without_examples_reads_as_none(tmp_path) -> None:
    out = _run()
    arrays = {k: v for k, v in read_npz_after_save(out, tmp_path).items() if not k.startswith("example_")}
    assert Examples.from_arrays(arrays) is None
    assert Examples.from_arrays({**arrays, **out.examples.arrays()}) is not None  # type: ignore[union-attr]


def read_npz_after_save(out, tmp_path):
    save_outcomes(out, tmp_path / "x.npz")
    return read_npz(tmp_path / "x.npz")
