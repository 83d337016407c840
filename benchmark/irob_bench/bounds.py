"""Upper bounds ("ceilings") on robust accuracy from local Lipschitz constants of the generator (docs/science.md §4).

Every ceiling is a `Bound`: a fraction in [0, 1], or None with the reason the theorem's conditions fail.
Class risks are fractions (alpha_y = 1 - per-class clean accuracy); distances are L2 in [0, 1] image space.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import model_validator
from scipy.special import ndtr, ndtri  # the normal cdf and its inverse, without scipy.stats' 0.5 s import

from irob_bench.common import FrozenModel
from irob_bench.errors import IrobError

PRIOR_SUM_TOLERANCE = 1e-6
Lipschitz = float | Sequence[float]  # one constant shared by every class, or one per class


class Bound(FrozenModel):
    """One ceiling: `value` (clipped to [0, 1]) when established, else None with a `reason`; `raw` is unclipped."""

    value: float | None
    raw: float | None
    reason: str | None
    form: str

    @model_validator(mode="after")
    def _value_xor_reason(self) -> Bound:
        if (self.value is None) == (self.reason is None):
            raise ValueError("a Bound has either a value or a reason, not both or neither")
        if self.value is not None and not 0.0 <= self.value <= 1.0:
            raise ValueError(f"a Bound value is a fraction in [0, 1], got {self.value}")
        return self

    @classmethod
    def established(cls, raw: float, form: str) -> Bound:
        """A bound whose conditions hold: keep the formula's value in `raw`, clip it to [0, 1] in `value`."""
        return cls(value=min(1.0, max(0.0, raw)), raw=raw, reason=None, form=form)

    @classmethod
    def not_established(cls, reason: str, form: str) -> Bound:
        """A bound whose conditions fail: no number, only the reason."""
        return cls(value=None, raw=None, reason=reason, form=form)


# ---------------------------------------------------------------- validation


def _fraction(name: str, value: float) -> float:
    if not (0.0 <= value <= 1.0):
        raise IrobError(f"{name} must be in [0, 1], got {value:g}")
    return float(value)


def _check_distribution(values: Sequence[float], name: str = "priors", allow_zero: bool = False) -> list[float]:
    """A probability vector over classes: entries in (0, 1] (or [0, 1] with `allow_zero`) summing to 1."""
    values = [float(v) for v in values]
    low_ok = (lambda v: v >= 0.0) if allow_zero else (lambda v: v > 0.0)
    if not values:
        raise IrobError(f"{name}: need at least one class")
    if any(not (low_ok(v) and v <= 1.0) for v in values):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise IrobError(f"{name} must be in {interval}, got {', '.join(f'{v:g}' for v in values)}")
    if abs(sum(values) - 1.0) > PRIOR_SUM_TOLERANCE:
        raise IrobError(f"{name} must sum to 1, they sum to {sum(values):g}")
    return values


def _per_class_lipschitz(lipschitz: Lipschitz, num_classes: int) -> list[float]:
    """One constant per class: a single float is shared by every class; a list must have one entry per class."""
    shared = isinstance(lipschitz, (int, float))
    constants = [float(lipschitz)] if shared else [float(v) for v in lipschitz]
    if any(not (v > 0.0 and math.isfinite(v)) for v in constants):
        raise IrobError(f"Lipschitz constants must be positive and finite, got {', '.join(f'{v:g}' for v in constants)}")
    if shared:
        return constants * num_classes
    if len(constants) != num_classes:
        raise IrobError(f"got {len(constants)} Lipschitz constants for {num_classes} classes (give one, or one per class)")
    return constants


def _check_common(eps: float, delta: float, radius: float | None) -> None:
    if not eps >= 0.0:
        raise IrobError(f"eps must be >= 0, got {eps:g}")
    _fraction("delta", delta)
    if radius is not None and not radius > 0.0:
        raise IrobError(f"radius must be positive, got {radius:g}")


# ---------------------------------------------------------------- the formulas


def _expanded_risk(risk: float, shift: float) -> float:
    """Phi(Phi^-1(risk) + shift): the least risk left after an expansion by `shift` latent standard deviations."""
    if risk <= 0.0 or risk >= 1.0:  # Phi^-1 is -inf / +inf: the term is 0 / 1 whatever the shift
        return float(risk >= 1.0)
    return float(ndtr(ndtri(risk) + shift))


def _radius_reason(eps: float, radius: float | None, terms: Sequence[tuple[str, float, float]]) -> str | None:
    """Why the Lipschitz condition r * L >= eps fails for a term (label, risk, L) whose value depends on L, else None.

    A term with risk 0 or 1 is 0 or p_y whatever L is, so its class needs no condition.
    """
    if radius is None:
        return None
    for label, risk, constant in terms:
        if 0.0 < risk < 1.0 and radius * constant < eps:
            return f"{label}: r * L = {radius:g} * {constant:g} = {radius * constant:g} < eps = {eps:g}"
    return None


def classifier_ceiling(
    eps: float,
    lipschitz: Lipschitz,
    class_risks: Sequence[float],
    priors: Sequence[float],
    delta: float,
    radius: float | None = None,
) -> Bound:
    """Thm 4.3: 1 + delta - sum_y p_y Phi(Phi^-1(alpha_y) + eps / L_y), a ceiling on this classifier's robust accuracy."""
    priors = _check_distribution(priors)
    constants = _per_class_lipschitz(lipschitz, len(priors))
    if len(class_risks) != len(priors):
        raise IrobError(f"got {len(class_risks)} class risks for {len(priors)} classes")
    risks = [_fraction(f"class {y} risk", a) for y, a in enumerate(class_risks)]
    _check_common(eps, delta, radius)
    reason = _radius_reason(eps, radius, [(f"class {y}", risks[y], constants[y]) for y in range(len(priors))])
    if reason:
        return Bound.not_established(reason, "classifier")
    expanded = sum(p * _expanded_risk(a, eps / L) for p, a, L in zip(priors, risks, constants))
    return Bound.established(1.0 + delta - expanded, "classifier")


def _dataset_setup(
    eps: float, lipschitz: Lipschitz, alpha: float, priors: Sequence[float], delta: float, radius: float | None
) -> tuple[list[float], int, float]:
    """Validate a dataset-ceiling call; return the priors, the class with the largest L, and L_max."""
    priors = _check_distribution(priors)
    constants = _per_class_lipschitz(lipschitz, len(priors))
    _fraction("alpha", alpha)
    _check_common(eps, delta, radius)
    worst = max(range(len(constants)), key=constants.__getitem__)
    return priors, worst, constants[worst]


def dataset_ceiling_overall(
    eps: float, lipschitz: Lipschitz, alpha: float, priors: Sequence[float], delta: float, radius: float | None = None
) -> Bound:
    """Thm 4.4, first form: 1 + delta - min_y p_y Phi(Phi^-1(alpha / p_y) + eps / L_max), for every classifier of risk >= alpha.

    Needs alpha / p_y <= 1 for every class y (all of the risk may sit in any one class).
    """
    priors, worst, l_max = _dataset_setup(eps, lipschitz, alpha, priors, delta, radius)
    for y, p in enumerate(priors):
        if alpha / p > 1.0:
            return Bound.not_established(
                f"class {y}: alpha / p_y = {alpha:g} / {p:g} = {alpha / p:g} > 1 (the first form needs alpha <= every prior p_y)",
                "dataset_overall",
            )
    reason = _radius_reason(eps, radius, [(f"L_max (class {worst})", alpha / p, l_max) for p in priors])
    if reason:
        return Bound.not_established(reason, "dataset_overall")
    least = min(p * _expanded_risk(alpha / p, eps / l_max) for p in priors)
    return Bound.established(1.0 + delta - least, "dataset_overall")


def dataset_ceiling_per_class(
    eps: float, lipschitz: Lipschitz, alpha: float, priors: Sequence[float], delta: float, radius: float | None = None
) -> Bound:
    """Thm 4.4, second form: 1 + delta - sum_y p_y Phi(Phi^-1(alpha) + eps / L_max), for classifiers with every class risk >= alpha."""
    priors, worst, l_max = _dataset_setup(eps, lipschitz, alpha, priors, delta, radius)
    reason = _radius_reason(eps, radius, [(f"L_max (class {worst})", alpha, l_max)])
    if reason:
        return Bound.not_established(reason, "dataset_per_class")
    expanded = sum(p * _expanded_risk(alpha, eps / l_max) for p in priors)
    return Bound.established(1.0 + delta - expanded, "dataset_per_class")


def all_ceilings(
    eps: float,
    lipschitz: Lipschitz,
    priors: Sequence[float],
    delta: float,
    class_risks: Sequence[float] | None = None,
    alpha: float | None = None,
    radius: float | None = None,
) -> dict[str, Bound]:
    """Every §4 ceiling at one eps, keyed `classifier`, `dataset_overall`, `dataset_per_class` (as evaluate reports them).

    A form whose input is missing (no class risks, no alpha) is not established, with that as its reason.
    """
    if alpha is None:
        overall = Bound.not_established("no alpha given", "dataset_overall")
        per_class = Bound.not_established("no alpha given", "dataset_per_class")
    else:
        overall = dataset_ceiling_overall(eps, lipschitz, alpha, priors, delta, radius)
        per_class = dataset_ceiling_per_class(eps, lipschitz, alpha, priors, delta, radius)
    if class_risks is None:
        classifier = Bound.not_established("no per-class risks given", "classifier")
    else:
        classifier = classifier_ceiling(eps, lipschitz, class_risks, priors, delta, radius)
    return {"classifier": classifier, "dataset_overall": overall, "dataset_per_class": per_class}


def fawzi_curve(
    etas: Sequence[float],
    lipschitz: Lipschitz,
    class_measures: int | Sequence[float] = 10,
    delta: float = 0.0,
    radius: float | None = None,
) -> list[Bound]:
    """Fawzi et al. Thm 1 as a ceiling curve: per eta, 1 + delta - sum_i [Phi(a_i + eta / L) - Phi(a_i)].

    The sum lower-bounds P(r_in(x) <= eta), so each value upper-bounds in-distribution robust accuracy at eta.
    a_i = Phi^-1(1 - mu_i), mu_i the latent measure of the region f labels i: `class_measures` is K (equal measures
    1/K) or the list of mu_i. L is the generator's constant (a per-class list uses its max). With a local estimate
    L(r) holding with probability 1 - delta, pass `delta` and `radius`: an eta with r * L < eta is not established.
    """
    measures = [1.0 / class_measures] * class_measures if isinstance(class_measures, int) else list(class_measures)
    measures = _check_distribution(measures, "class measures", allow_zero=True)
    constants = _per_class_lipschitz(lipschitz, 1 if isinstance(lipschitz, (int, float)) else len(lipschitz))
    l_max = max(constants)
    curve = []
    for eta in etas:
        _check_common(eta, delta, radius)
        if radius is not None and radius * l_max < eta:
            reason = f"r * L = {radius:g} * {l_max:g} = {radius * l_max:g} < eta = {eta:g}"
            curve.append(Bound.not_established(reason, "fawzi"))
            continue
        # Phi(a + s) - Phi(a) with a = Phi^-1(1 - mu) equals Phi(a + s) - (1 - mu): the risk gained by expansion.
        vulnerable = sum(_expanded_risk(1.0 - mu, eta / l_max) - (1.0 - mu) for mu in measures)
        curve.append(Bound.established(1.0 + delta - vulnerable, "fawzi"))
    return curve
