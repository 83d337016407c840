"""The settings of the two Lipschitz estimators (typed, validated, recorded with every estimate)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError

from irob_bench.common import FrozenModel, field_error
from irob_bench.errors import IrobError
from irob_bench.registry import Registry

# Fields the card's LipschitzEstimate stores in their own slots rather than in its `settings` dict.
CARD_FIELDS = {"method", "radius", "delta", "beta", "samples"}


class EstimatorSettings(FrozenModel):
    """What every estimator shares: ball radius r, failure mass delta, confidence beta, anchors per class, seed."""

    radius: float = Field(0.5, gt=0, description="radius r of the latent ball B(z, r)")
    delta: float = Field(0.001, gt=0, lt=1, description="latent mass on which the Lipschitz property may fail")
    beta: float = Field(0.95, gt=0, lt=1, description="confidence of the bound over the draw of the anchors")
    samples: int = Field(100, ge=1, description="anchors z_s ~ N(0, I) per class (S)")
    seed: int = Field(0, ge=0)
    batch_size: int = Field(1000, ge=1, description="latent points per generator call")

    def card_settings(self) -> dict[str, float | int]:
        """The settings a card records besides method, radius, delta, beta and samples."""
        return self.model_dump(exclude=CARD_FIELDS)


class SamplingSettings(EstimatorSettings):
    """Algorithm 1: the max ratio over N uniform points in B(z_s, r). Reference: S = 1000, N = 2000."""

    method: Literal["sampling"] = "sampling"
    neighbors: int = Field(250, ge=1, description="uniform points per ball (N)")


class GradientSettings(EstimatorSettings):
    """Lanczos on J^T J for the local slope sigma_max, then projected gradient ascent of the ratio in B(z, r)."""

    method: Literal["gradient"] = "gradient"
    lanczos_steps: int = Field(30, ge=1, description="at most this many Lanczos steps on J^T J per anchor (and <= d)")
    lanczos_tolerance: float = Field(
        1e-5, ge=0, description="stop once every anchor's Ritz residual is at most this fraction of its top eigenvalue"
    )
    starts: int = Field(2, ge=1, description="ascent start radii r*k/starts (k = 1..starts), each along +v and -v")
    ascent_steps: int = Field(8, ge=0, description="projected normalised-gradient steps per start")
    step_fraction: float = Field(0.25, gt=0, description="first step length as a fraction of r (decays linearly)")
    min_fraction: float = Field(0.01, gt=0, lt=1, description="iterates are kept at least r * min_fraction from z")


ESTIMATORS: Registry[type[SamplingSettings] | type[GradientSettings]] = Registry("Lipschitz estimator")
"""Estimator name -> its settings model (estimate.py runs the estimator the settings name)."""
ESTIMATORS.add("sampling", SamplingSettings)
ESTIMATORS.add("gradient", GradientSettings)


def make_settings(method: str, **values: Any) -> SamplingSettings | GradientSettings:
    """Validated settings of `method`, ignoring values given as None; bad values raise one-line IrobErrors."""
    cls = ESTIMATORS.get(method)
    given = {k: v for k, v in values.items() if v is not None}
    unknown = sorted(set(given) - set(cls.model_fields))
    if unknown:
        raise IrobError(f"the {method} estimator has no setting {', '.join(unknown)}")
    try:
        return cls(**given)
    except ValidationError as exc:
        raise IrobError(f"{method} estimator: {field_error(exc)}") from None
