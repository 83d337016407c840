"""The reference certified defense's certificate survives the strongest attacks (issue #19).

Run with `pytest tests/benchmarks -k certified` (about 2.5 CPU minutes). On the default evaluation subset (300
points) of submissions/mnist/lipschitz, at every eps of the card, the `thorough` preset's unconstrained cascade
breaks no point the benchmark certifies (in-distribution perturbations lie in the same eps-ball, so this is the
stronger check); the certificate is tight (looseness ~1) and certifies a real share of the points at eps 2.
The control: the same attacks break points that an inflated radius (x 1.5) would claim.
"""

from __future__ import annotations

import numpy as np
import torch

from irob_bench import datasets
from irob_bench.attacks.presets import preset
from irob_bench.attacks.suite import run_attacks
from irob_bench.certify import certify, lipschitz_bound, radii, violations
from irob_bench.runtime import deterministic, seed_everything
from tests.benchmarks.peers import reference_model, reference_points


def test_thorough_attacks_break_no_certified_point_of_the_lipschitz_reference():
    model, dataset = reference_model("mnist/lipschitz")
    x, y, indices = reference_points(dataset)
    eps = datasets.load(dataset).card.eps_grid
    seed_everything(0)
    with deterministic():
        outcomes = run_attacks(model, x, y, eps, preset("thorough"), seed=0, batch_size=250, progress=False,
                               indices=indices)
    certification = certify(model, x, y, eps)
    assert violations(certification.certified, outcomes.robust_pgd).tolist() == [0] * len(eps)
    assert certification.tightness == "tight"
    assert certification.certified.mean(axis=0)[list(eps).index(2.0)] > 0.3

    with torch.no_grad():
        inflated = 1.5 * radii(model(x), y, lipschitz_bound(model, tuple(x.shape[1:]))).numpy()
    overclaimed = inflated[:, None] > np.asarray(eps)[None, :]
    assert violations(overclaimed, outcomes.robust_pgd).sum() > 0  # the control: an unsound radius is caught
