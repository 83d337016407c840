"""Choosing the radius r: the ceilings of docs/science.md §4 need r * L_y(r) >= the largest eps for every class."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import Field
from tqdm import tqdm

from irob_bench.common import FrozenModel
from irob_bench.errors import IrobError
from irob_bench.lipschitz.estimate import Generator, estimate
from irob_bench.lipschitz.settings import GradientSettings, SamplingSettings


class RadiusCheck(FrozenModel):
    """r * L_y(r) per class against eps: the ceilings are established only where it reaches eps."""

    radius: float
    eps: float
    products: list[float]

    @property
    def ok(self) -> list[bool]:
        """Per class: whether r * L_y(r) reaches eps."""
        return [p >= self.eps for p in self.products]

    @property
    def passed(self) -> bool:
        """Whether r * L_y(r) reaches eps for every class (the ceilings need it)."""
        return all(self.ok)


def check_radius(constants: Sequence[float], radius: float, eps: float = 3.0) -> RadiusCheck:
    """Whether r * L_y >= eps for each class (eps = the largest eps of the card's grid)."""
    return RadiusCheck(radius=radius, eps=eps, products=[radius * c for c in constants])


class RadiusSearch(FrozenModel):
    """The smallest tried radius at which every class passes, and every (r, L_y(r)) tried on the way."""

    eps: float
    radius: float
    trials: list[tuple[float, list[float]]]
    bracketed: bool = Field(True, description="False: every radius tried passed, so the smallest lies below `radius`")


def smallest_radius(
    generator: Generator,
    latent_dim: int,
    labels: Sequence[int],
    settings: GradientSettings | SamplingSettings,
    eps: float = 3.0,
    doublings: int = 6,
    refinements: int = 4,
    progress: bool = False,
) -> RadiusSearch:
    """Search r with the settings' estimator (gradient by default in the CLI; sampling where the generator is not
    differentiable everywhere): halve or double from settings.radius until the check flips,
    then bisect (geometrically) `refinements` times. Same seed, so every trial sees the same anchors.
    """
    trials: list[tuple[float, list[float]]] = []
    bar = tqdm(total=None, disable=not progress, unit="radius", desc="radius search")

    def passes(radius: float) -> bool:
        run = estimate(generator, latent_dim, settings.model_copy(update={"radius": radius}), labels)
        constants = [c.constant for c in run.classes]
        trials.append((radius, constants))
        bar.update(1)
        bar.set_postfix_str(f"r = {radius:.4g}, min r*L = {radius * min(constants):.3g}")
        return check_radius(constants, radius, eps).passed

    with bar:
        radius = settings.radius
        good = passes(radius)
        factor = 0.5 if good else 2.0
        bracket = None
        for _ in range(doublings):
            other = radius * factor
            if passes(other) != good:
                bracket = sorted((radius, other))
                break
            radius = other
        if bracket is None and not good:
            raise IrobError(f"r * L_y(r) < {eps} for some class at every radius up to {radius:.4g}")
        if bracket is None:  # every radius tried passes: the smallest lies below the last one, not at it
            return RadiusSearch(eps=eps, radius=radius, trials=trials, bracketed=False)
        low, high = bracket
        for _ in range(refinements):
            middle = math.sqrt(low * high)
            low, high = (low, middle) if passes(middle) else (middle, high)
    return RadiusSearch(eps=eps, radius=high, trials=trials)
