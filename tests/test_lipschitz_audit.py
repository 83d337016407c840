"""The shipped constants (mnist, saturated-cifar-p2) against sigma_max of the generator's Jacobian on 3,000 fresh
anchors per class.

Each audit is precomputed (`irob-bench lipschitz audit NAME --samples 3000 --seed 1 --out docs/assets/...json`,
10-15 CPU minutes); this test recomputes the first fresh anchors of every class, checks Lanczos against an exact SVD,
and compares every class's 0.999 quantile with the card's constant, printing both.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.func import jacfwd

from irob_bench import datasets
from irob_bench.lipschitz.audit import Audit, ClassAudit, sigma_max
from irob_bench.lipschitz.geometry import class_map, draw_anchors

ASSETS = Path(__file__).resolve().parents[1] / "docs" / "assets"
AUDITS = {"mnist": "mnist_lipschitz_audit.json", "saturated-cifar-p2": "saturated_cifar_p2_lipschitz_audit.json"}


@pytest.fixture(scope="module", params=sorted(AUDITS))
def dataset(request):
    """The audited dataset (dataset, and saturated-cifar-p2: the only saturation level with constants)."""
    return datasets.load(request.param)


@pytest.fixture(scope="module")
def audit(dataset) -> Audit:
    return Audit.model_validate_json((ASSETS / AUDITS[dataset.card.name]).read_text())


def test_every_shipped_constant_exceeds_the_fresh_anchor_quantile(dataset, audit):
    card = dataset.card
    assert audit.settings.samples >= 3000 and audit.settings.delta == card.lipschitz.delta
    assert all(e.settings["seed"] != audit.settings.seed for e in card.lipschitz.estimates)  # fresh anchors
    for row, constant in zip(audit.classes, card.lipschitz.constants):
        print(f"class {row.label}: card L = {constant:.3f}, quantile of its claim = {row.judged_at:.3f}, 0.999 "
              f"quantile = {row.quantile:.3f}")
        assert row.constant == constant  # the audit is of the shipped card
        assert row.passed, row


def test_the_stored_audit_is_what_the_generator_gives(dataset, audit):
    """Recompute the first fresh anchors of every class: the JSON holds real measurements of this generator."""
    for row in audit.classes:
        again = sigma_max(dataset.generator, dataset.card.latent_dim, row.label, audit.settings, count=len(row.first))
        assert torch.allclose(again.values.double(), torch.tensor(row.first, dtype=torch.float64), rtol=1e-4)


def test_lanczos_matches_the_svd_of_the_exact_jacobian(dataset, audit):
    label = 3
    anchors = draw_anchors(audit.settings.seed, label, audit.settings.samples, dataset.card.latent_dim)[:2]
    g_y = class_map(dataset.generator, label)
    exact = [float(torch.linalg.svdvals(jacfwd(lambda z: g_y(z[None])[0])(z)).max()) for z in anchors]
    assert audit.classes[label].first[:2] == pytest.approx(exact, rel=1e-3)


def test_control_a_constant_below_the_quantile_fails(dataset, audit):
    row = audit.classes[0]
    assert not ClassAudit(**{**row.model_dump(), "constant": 0.95 * row.judged_at}).passed


def test_a_row_is_judged_at_the_delta_the_card_claims(dataset, audit):
    """The card holds at delta' (S = 3,000 is too few for 0.001 with ten classes at once), so the claimed quantile
    lies below the 0.999 one; without it a row is judged at the stricter 0.999 quantile (control)."""
    for row in audit.classes:
        if row.claimed_quantile is None:
            continue  # an audit written before the claim was recorded (mnist): judged at the stricter quantile
        assert dataset.card.lipschitz.holds_at > audit.settings.delta and row.claimed_quantile <= row.quantile
        between = ClassAudit(**{**row.model_dump(), "constant": (row.claimed_quantile + row.quantile) / 2})
        assert between.passed == (row.claimed_quantile < row.quantile)
        assert not ClassAudit(**{**between.model_dump(), "claimed_quantile": None}).passed
