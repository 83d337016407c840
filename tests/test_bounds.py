"""The §4 ceilings against independent computations (stdlib NormalDist, hand values), limits and conditions."""

from __future__ import annotations

from statistics import NormalDist

import pydantic
import pytest

from irob_bench.bounds import (
    Bound,
    all_ceilings,
    classifier_ceiling,
    dataset_ceiling_overall,
    dataset_ceiling_per_class,
    fawzi_curve,
)
from irob_bench.errors import IrobError

N = NormalDist()
PHI_1 = 0.8413447460685429  # Phi(1), from tables


def expanded(risk: float, shift: float) -> float:
    """Phi(Phi^-1(risk) + shift) by the standard library, with the 0 / 1 ends written out."""
    if risk in (0.0, 1.0):
        return risk
    return N.cdf(N.inv_cdf(risk) + shift)


# ---------------------------------------------------------------- formulas


def test_classifier_ceiling_hand_values():
    # alpha_y = 1/2: Phi^-1 = 0, eps / L = 1 -> Phi(1); alpha_y = Phi(-1): Phi(-1 + 1) = 1/2.
    assert classifier_ceiling(2.0, 2.0, [0.5, 0.5], [0.5, 0.5], 0.0).raw == pytest.approx(1 - PHI_1, abs=1e-12)
    bound = classifier_ceiling(1.0, 1.0, [1 - PHI_1] * 4, [0.25] * 4, 0.01)
    assert bound.raw == pytest.approx(1.01 - 0.5, abs=1e-12)
    assert bound.value == bound.raw and bound.reason is None and bound.form == "classifier"


def test_classifier_ceiling_matches_direct_sum_with_per_class_constants():
    priors, risks, constants, eps, delta = [0.1, 0.2, 0.3, 0.4], [0.02, 0.3, 0.0, 0.11], [1.5, 3.0, 0.7, 2.2], 1.7, 0.003
    direct = 1 + delta - sum(p * expanded(a, eps / L) for p, a, L in zip(priors, risks, constants))
    assert classifier_ceiling(eps, constants, risks, priors, delta).raw == pytest.approx(direct, abs=1e-12)


def test_dataset_overall_hand_value_and_direct_min():
    # priors (0.2, 0.8), alpha 0.1, eps / L = 1: class 0 gives 0.2 * Phi(0 + 1), class 1 gives 0.8 * Phi(Phi^-1(0.125) + 1).
    bound = dataset_ceiling_overall(1.0, 1.0, 0.1, [0.2, 0.8], 0.0)
    assert 0.2 * PHI_1 < 0.8 * expanded(0.125, 1.0)
    assert bound.raw == pytest.approx(1 - 0.2 * PHI_1, abs=1e-12)
    priors, constants = [0.5, 0.3, 0.2], [1.0, 2.5, 2.0]
    direct = 1.002 - min(p * expanded(0.15 / p, 2.0 / 2.5) for p in priors)
    assert dataset_ceiling_overall(2.0, constants, 0.15, priors, 0.002).raw == pytest.approx(direct, abs=1e-12)


def test_dataset_per_class_uses_largest_constant():
    direct = 1.001 - expanded(0.015, 3.0 / 4.0)
    bound = dataset_ceiling_per_class(3.0, [1.0, 4.0, 2.0], 0.015, [0.3, 0.3, 0.4], 0.001)
    assert bound.raw == pytest.approx(direct, abs=1e-12) and bound.form == "dataset_per_class"


def test_classifier_with_every_risk_alpha_is_per_class_form_when_constants_are_equal_and_below_it_otherwise():
    priors = [0.1] * 10
    same = classifier_ceiling(1.0, 2.0, [0.05] * 10, priors, 0.001)
    assert same.raw == pytest.approx(dataset_ceiling_per_class(1.0, 2.0, 0.05, priors, 0.001).raw, abs=1e-12)
    constants = [1.0 + 0.2 * y for y in range(10)]
    per_class = dataset_ceiling_per_class(1.0, constants, 0.05, priors, 0.001)
    assert classifier_ceiling(1.0, constants, [0.05] * 10, priors, 0.001).raw < per_class.raw


@pytest.mark.parametrize("priors", [[0.1] * 10, [0.5, 0.3, 0.2], [0.25, 0.75]])
def test_overall_form_is_at_least_per_class_form(priors):
    # "overall risk >= alpha" includes every classifier with "every class risk >= alpha", so its ceiling is higher.
    for eps in [0.0, 0.5, 1.0, 3.0]:
        overall = dataset_ceiling_overall(eps, 2.0, 0.1, priors, 0.001).raw
        assert overall >= dataset_ceiling_per_class(eps, 2.0, 0.1, priors, 0.001).raw - 1e-12


# ---------------------------------------------------------------- limits and monotonicity


def test_eps_zero_gives_clean_accuracy_plus_delta_before_clipping():
    priors, risks, delta = [0.1, 0.2, 0.3, 0.4], [0.05, 0.0, 1.0, 0.2], 0.004
    bound = classifier_ceiling(0.0, [1.0, 2.0, 3.0, 4.0], risks, priors, delta, radius=0.1)
    assert bound.raw == pytest.approx(1 - sum(p * a for p, a in zip(priors, risks)) + delta, abs=1e-12)
    assert dataset_ceiling_per_class(0.0, 3.0, 0.02, [0.5, 0.5], 0.001).raw == pytest.approx(0.981, abs=1e-12)


def test_clipping_keeps_raw():
    bound = classifier_ceiling(0.0, 1.0, [0.0, 0.0], [0.5, 0.5], 0.05)
    assert bound.raw == pytest.approx(1.05) and bound.value == 1.0


def test_zero_and_one_class_risks_do_not_depend_on_eps_or_lipschitz():
    # alpha_y = 0 contributes 0 and alpha_y = 1 contributes p_y, whatever eps / L (no nan from Phi^-1(0 or 1)).
    for eps, constant in [(0.0, 1.0), (1.0, 0.01), (100.0, 1.0)]:
        assert classifier_ceiling(eps, constant, [0.0, 1.0], [0.3, 0.7], 0.01).raw == pytest.approx(0.31, abs=1e-12)
    assert dataset_ceiling_per_class(5.0, 0.1, 1.0, [0.5, 0.5], 0.0).raw == 0.0
    assert dataset_ceiling_overall(5.0, 0.1, 0.0, [0.5, 0.5], 0.0).raw == 1.0


@pytest.mark.parametrize(
    "ceiling",
    [
        lambda eps, L: classifier_ceiling(eps, L, [0.01, 0.1, 0.3], [0.2, 0.3, 0.5], 0.001),
        lambda eps, L: dataset_ceiling_overall(eps, L, 0.1, [0.2, 0.3, 0.5], 0.001),
        lambda eps, L: dataset_ceiling_per_class(eps, L, 0.1, [0.2, 0.3, 0.5], 0.001),
    ],
)
def test_ceilings_fall_with_eps_and_rise_with_lipschitz(ceiling):
    by_eps = [ceiling(eps, 2.0).raw for eps in [0.0, 0.5, 1.0, 2.0, 3.0]]
    assert all(a > b for a, b in zip(by_eps, by_eps[1:]))
    by_l = [ceiling(1.0, L).raw for L in [0.5, 1.0, 2.0, 8.0]]
    assert all(a < b for a, b in zip(by_l, by_l[1:]))


# ---------------------------------------------------------------- conditions


@pytest.mark.parametrize("eps", [0.0, 0.5, 1.0, 1.5, 2.0])
@pytest.mark.parametrize("radius", [0.25, 0.5, 1.0])
def test_classifier_established_exactly_when_radius_times_every_used_constant_reaches_eps(eps, radius):
    constants = [1.0, 2.0, 4.0]
    bound = classifier_ceiling(eps, constants, [0.1, 0.1, 0.1], [0.3, 0.3, 0.4], 0.001, radius=radius)
    failing = [y for y, L in enumerate(constants) if radius * L < eps]
    if not failing:
        assert bound.value is not None and bound.reason is None
    else:
        y = failing[0]
        assert bound.value is None and bound.raw is None
        assert bound.reason == f"class {y}: r * L = {radius:g} * {constants[y]:g} = {radius * constants[y]:g} < eps = {eps:g}"


def test_classifier_condition_skips_classes_whose_term_does_not_use_their_constant():
    # class 0 (L = 0.1, r * L = 0.05 < eps) has risk 0 or 1: its term is 0 or p_0 whatever L, so it does not block.
    for risk in (0.0, 1.0):
        assert classifier_ceiling(1.0, [0.1, 4.0], [risk, 0.1], [0.5, 0.5], 0.0, radius=0.5).value is not None
    assert classifier_ceiling(1.0, [0.1, 4.0], [0.01, 0.1], [0.5, 0.5], 0.0, radius=0.5).reason.startswith("class 0:")


@pytest.mark.parametrize("form", [dataset_ceiling_overall, dataset_ceiling_per_class])
def test_dataset_forms_condition_uses_largest_constant(form):
    constants, priors = [1.0, 3.0], [0.5, 0.5]
    assert form(1.4, constants, 0.1, priors, 0.0, radius=0.5).value is not None  # 0.5 * 3 >= 1.4 although 0.5 * 1 < 1.4
    bound = form(1.6, constants, 0.1, priors, 0.0, radius=0.5)
    assert bound.value is None and bound.reason == "L_max (class 1): r * L = 0.5 * 3 = 1.5 < eps = 1.6"


def test_overall_form_needs_alpha_at_most_every_prior():
    assert dataset_ceiling_overall(1.0, 2.0, 0.2, [0.2, 0.8], 0.0).value is not None  # alpha / p_0 = 1 exactly is fine
    bound = dataset_ceiling_overall(1.0, 2.0, 0.21, [0.2, 0.8], 0.0)
    assert bound.value is None and bound.reason.startswith("class 0: alpha / p_y = 0.21 / 0.2 = 1.05 > 1")
    assert dataset_ceiling_per_class(1.0, 2.0, 0.21, [0.2, 0.8], 0.0).value is not None  # the second form has no such condition


def test_no_radius_means_no_radius_condition():
    assert classifier_ceiling(100.0, 0.1, [0.1], [1.0], 0.0).value is not None


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: classifier_ceiling(1.0, -1.0, [0.1, 0.1], [0.5, 0.5], 0.0), "Lipschitz constants must be positive"),
        (lambda: classifier_ceiling(1.0, [1.0, 2.0, 3.0], [0.1, 0.1], [0.5, 0.5], 0.0), "3 Lipschitz constants for 2 classes"),
        (lambda: classifier_ceiling(1.0, 1.0, [0.1], [0.5, 0.5], 0.0), "1 class risks for 2 classes"),
        (lambda: classifier_ceiling(1.0, 1.0, [0.1, 1.2], [0.5, 0.5], 0.0), "class 1 risk must be in [0, 1]"),
        (lambda: dataset_ceiling_overall(1.0, 1.0, 0.1, [0.5, 0.6], 0.0), "priors must sum to 1"),
        (lambda: dataset_ceiling_per_class(1.0, 1.0, -0.1, [0.5, 0.5], 0.0), "alpha must be in [0, 1]"),
        (lambda: dataset_ceiling_per_class(-1.0, 1.0, 0.1, [0.5, 0.5], 0.0), "eps must be >= 0"),
        (lambda: dataset_ceiling_per_class(1.0, 1.0, 0.1, [0.5, 0.5], 1.5), "delta must be in [0, 1]"),
        (lambda: dataset_ceiling_per_class(1.0, 1.0, 0.1, [0.5, 0.5], 0.0, radius=0.0), "radius must be positive"),
    ],
)
def test_bad_input_raises_irob_error(call, message):
    with pytest.raises(IrobError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call()


# ---------------------------------------------------------------- Bound, all_ceilings, Fawzi


def test_bound_is_frozen_and_has_a_value_or_a_reason():
    bound = Bound.established(0.5, "classifier")
    with pytest.raises(pydantic.ValidationError):
        bound.value = 0.4
    with pytest.raises(pydantic.ValidationError):
        Bound(value=0.5, raw=0.5, reason="both", form="classifier")
    with pytest.raises(pydantic.ValidationError):
        Bound(value=None, raw=None, reason=None, form="classifier")


def test_all_ceilings_keys_and_missing_inputs():
    args = (1.0, [1.0, 2.0], [0.4, 0.6], 0.001)
    full = all_ceilings(*args, class_risks=[0.1, 0.2], alpha=0.1, radius=1.0)
    assert full == {
        "classifier": classifier_ceiling(*args[:2], [0.1, 0.2], *args[2:], radius=1.0),
        "dataset_overall": dataset_ceiling_overall(*args[:2], 0.1, *args[2:], radius=1.0),
        "dataset_per_class": dataset_ceiling_per_class(*args[:2], 0.1, *args[2:], radius=1.0),
    }
    empty = all_ceilings(*args)
    assert set(empty) == set(full) and all(b.value is None and b.reason.startswith("no ") for b in empty.values())


def test_fawzi_curve_two_equal_classes_by_hand():
    # K = 2 equal measures: a_i = 0, sum = 2 (Phi(eta / L) - 1/2), ceiling = 2 Phi(-eta / L) = 2 (1 - Phi(1)) at eta = L.
    curve = fawzi_curve([0.0, 3.0], 3.0, 2)
    assert curve[0].raw == pytest.approx(1.0, abs=1e-12)
    assert curve[1].raw == pytest.approx(2 * (1 - PHI_1), abs=1e-12) and curve[1].form == "fawzi"
    assert [b.raw for b in fawzi_curve([3.0], 3.0, [0.5, 0.5])] == pytest.approx([curve[1].raw])


def test_fawzi_curve_matches_direct_sum_and_falls_with_eta():
    measures, etas = [0.1, 0.0, 0.5, 0.4], [0.0, 0.2, 0.5, 1.0, 2.0]
    curve = fawzi_curve(etas, [1.0, 1.5], measures, delta=0.01)
    for eta, bound in zip(etas, curve):
        a = [N.inv_cdf(1 - mu) for mu in measures if mu > 0]
        direct = 1.01 - sum(N.cdf(ai + eta / 1.5) - N.cdf(ai) for ai in a)
        assert bound.raw == pytest.approx(direct, abs=1e-9)
    assert all(a.raw > b.raw for a, b in zip(curve, curve[1:]))
    equal = fawzi_curve([1.0], 2.0, 10)[0].raw
    a = N.inv_cdf(0.9)
    assert equal == pytest.approx(1 - 10 * (N.cdf(a + 0.5) - 0.9), abs=1e-9)


def test_fawzi_curve_radius_condition():
    curve = fawzi_curve([0.5, 1.0, 1.5], 2.0, 10, radius=0.5)
    assert [b.value is not None for b in curve] == [True, True, False]
    assert curve[2].reason == "r * L = 0.5 * 2 = 1 < eta = 1.5"
