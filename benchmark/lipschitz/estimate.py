"""Run one Lipschitz estimator over the classes of a generator: per-anchor slopes -> percentile, CI, cost."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from irob_bench.datasets.card import LipschitzEstimate
from irob_bench.errors import IrobError
from irob_bench.lipschitz.geometry import ESTIMATOR_STREAM, class_map, draw_anchors, stream
from irob_bench.lipschitz.gradient import gradient_slopes
from irob_bench.lipschitz.sampling import Slopes, sampling_slopes
from irob_bench.lipschitz.settings import GradientSettings, SamplingSettings
from irob_bench.lipschitz.stats import bootstrap_ci, upper_percentile

Generator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ClassEstimate(BaseModel):
    """L_y(r) of one class: the (1 - delta) percentile of its per-anchor slopes, with CI and cost."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: int
    name: str
    constant: float
    ci_low: float
    ci_high: float
    generator_evaluations: int
    seconds: float


class LipschitzRun(BaseModel):
    """One estimator's result over some classes, with the settings that produced it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    settings: SamplingSettings | GradientSettings = Field(discriminator="method")
    classes: list[ClassEstimate]

    def to_card_estimate(self, num_classes: int) -> LipschitzEstimate:
        """The card's record of this run; it must cover every class 0..K-1 exactly once."""
        labels = [c.label for c in self.classes]
        if sorted(labels) != list(range(num_classes)):
            raise IrobError(f"a card estimate needs all {num_classes} classes; this run has {len(labels)} ({labels})")
        rows = sorted(self.classes, key=lambda c: c.label)
        return LipschitzEstimate(
            method=self.settings.method,
            radius=self.settings.radius,
            delta=self.settings.delta,
            samples=self.settings.samples,
            settings=self.settings.card_settings(),
            per_class=[c.constant for c in rows],
            ci_low=[c.ci_low for c in rows],
            ci_high=[c.ci_high for c in rows],
            generator_evaluations=sum(c.generator_evaluations for c in rows),
            seconds=round(sum(c.seconds for c in rows), 3),
        )


def anchor_slopes(
    generator: Generator,
    latent_dim: int,
    label: int,
    settings: SamplingSettings | GradientSettings,
    advance: Callable[[int], None] = lambda n: None,
) -> Slopes:
    """Per-anchor slopes of class `label`; both estimators see the same anchors for the same seed."""
    anchors = draw_anchors(settings.seed, label, settings.samples, latent_dim)
    g_y, rng = class_map(generator, label), stream(settings.seed, label, ESTIMATOR_STREAM)
    if isinstance(settings, SamplingSettings):
        return sampling_slopes(g_y, anchors, settings.neighbors, settings.radius, settings.batch_size, rng, advance)
    return gradient_slopes(g_y, anchors, settings, rng, advance)


def estimate(
    generator: Generator,
    latent_dim: int,
    settings: SamplingSettings | GradientSettings,
    labels: Sequence[int],
    names: Sequence[str] | None = None,
    progress: bool = False,
) -> LipschitzRun:
    """L_y(r) for each class in `labels`: the (1 - delta) percentile of S per-anchor slopes and its bootstrap CI."""
    names = list(names) if names is not None else [str(y) for y in labels]
    rows = []
    with tqdm(total=len(labels) * settings.samples, disable=not progress, unit="anchor", desc=settings.method) as bar:
        for label, name in zip(labels, names):
            bar.set_postfix_str(f"class {name}")
            started = time.perf_counter()
            slopes = anchor_slopes(generator, latent_dim, label, settings, bar.update)
            if not torch.isfinite(torch.as_tensor(slopes.values)).all():
                raise IrobError(
                    f"class {name}: the {settings.method} estimator met non-finite slopes (the generator's output map is "
                    "not differentiable everywhere, e.g. s_p for p > 2 at a pixel of 1/2); use --method sampling"
                )
            low, high = bootstrap_ci(slopes.values, settings.delta, settings.confidence, settings.bootstrap, settings.seed)
            rows.append(
                ClassEstimate(
                    label=label,
                    name=name,
                    constant=float(upper_percentile(slopes.values, settings.delta)),
                    ci_low=low,
                    ci_high=high,
                    generator_evaluations=slopes.evaluations,
                    seconds=round(time.perf_counter() - started, 3),
                )
            )
    return LipschitzRun(settings=settings, classes=rows)
