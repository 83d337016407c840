"""Run one Lipschitz estimator over the classes of a generator: per-anchor slopes -> order-statistic bound, cost.

With a checkpoint folder, each class's per-anchor slopes are saved as soon as they are computed and reused by a
later run with the same settings, so a long run (S = 3,000 per class) can be stopped and resumed.
"""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, Field
from tqdm import tqdm

from irob_bench.common import FrozenModel
from irob_bench.datasets.card import LipschitzEstimate
from irob_bench.errors import IrobError
from irob_bench.lipschitz.geometry import ESTIMATOR_STREAM, class_map, draw_anchors, stream
from irob_bench.lipschitz.gradient import gradient_slopes
from irob_bench.lipschitz.sampling import Slopes, sampling_slopes
from irob_bench.lipschitz.settings import GradientSettings, SamplingSettings
from irob_bench.lipschitz.stats import OrderStatistic, order_statistic, upper_bound

Generator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ClassEstimate(FrozenModel):
    """L_y(r) of one class: v_(k) of its per-anchor slopes (the run's statistic says which k), with its cost."""

    label: int
    name: str
    constant: float
    largest: float = Field(description="the largest per-anchor slope, for comparison")
    generator_evaluations: int
    seconds: float


class LipschitzRun(FrozenModel):
    """One estimator's result over some classes, with the settings and the order statistic that produced it."""

    settings: SamplingSettings | GradientSettings = Field(discriminator="method")
    statistic: OrderStatistic
    classes: list[ClassEstimate]

    def to_card_estimate(self, num_classes: int) -> LipschitzEstimate:
        """The card's record of this run; it must cover every class 0..K-1 exactly once."""
        labels = [c.label for c in self.classes]
        if sorted(labels) != list(range(num_classes)):
            raise IrobError(f"a card estimate needs all {num_classes} classes; this run has {len(labels)} ({labels})")
        rows = sorted(self.classes, key=lambda c: c.label)
        stat = self.statistic
        return LipschitzEstimate(
            method=self.settings.method,
            radius=self.settings.radius,
            delta=stat.delta,
            beta=stat.beta,
            samples=stat.samples,
            rank=stat.rank,
            delta_prime=stat.delta_prime,
            established=stat.established,
            settings=self.settings.card_settings(),
            per_class=[c.constant for c in rows],
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


class Checkpoint:
    """Per-class slopes of one estimator run in a folder (`<method>-class<y>.npz`), keyed by the run's settings."""

    def __init__(self, folder: str | Path, settings: BaseModel) -> None:
        """`settings`: any frozen settings model with a `method` (it names the files) and a `batch_size`."""
        self.folder, self.method = Path(folder), getattr(settings, "method")
        self.key = json.dumps(settings.model_dump(exclude={"batch_size"}), sort_keys=True)  # batching does not change slopes

    def _path(self, label: int) -> Path:
        return self.folder / f"{self.method}-class{label}.npz"

    def load(self, label: int) -> tuple[Slopes, float] | None:
        """The saved slopes and seconds of a class, or None; IrobError if they were made with other settings."""
        path = self._path(label)
        if not path.exists():
            return None
        try:
            with np.load(path) as saved:
                key = str(saved["settings"])
                loaded = Slopes(torch.from_numpy(saved["values"]), int(saved["evaluations"])), float(saved["seconds"])
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise IrobError(f"{path}: not a slopes checkpoint ({type(exc).__name__}); remove it or use another "
                            "--checkpoint") from None
        if key != self.key:
            raise IrobError(f"{path} holds slopes of other settings ({key}); use another --checkpoint")
        return loaded

    def save(self, label: int, slopes: Slopes, seconds: float) -> None:
        """Write atomically (a temporary file renamed into place), so a killed run never leaves half a class."""
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self._path(label).with_suffix(".partial.npz")
        np.savez(partial, values=slopes.values.numpy(), evaluations=slopes.evaluations, seconds=seconds, settings=self.key)
        partial.replace(self._path(label))


def estimate(
    generator: Generator,
    latent_dim: int,
    settings: SamplingSettings | GradientSettings,
    labels: Sequence[int],
    names: Sequence[str] | None = None,
    progress: bool = False,
    checkpoint: str | Path | None = None,
) -> LipschitzRun:
    """L_y(r) for each class in `labels`: v_(k) of S per-anchor slopes, k chosen so that all of them bound their
    quantiles at once at (delta, beta) (see stats.py)."""
    names = list(names) if names is not None else [str(y) for y in labels]
    statistic = order_statistic(settings.samples, settings.delta, settings.beta, classes=len(labels))
    saved = Checkpoint(checkpoint, settings) if checkpoint is not None else None
    done = {label: saved.load(label) for label in labels} if saved is not None else {}  # every file checked first
    rows = []
    with tqdm(total=len(labels) * settings.samples, disable=not progress, unit="anchor", desc=settings.method) as bar:
        for label, name in zip(labels, names):
            bar.set_postfix_str(f"class {name}")
            loaded = done.get(label)
            if loaded is None:
                started = time.perf_counter()
                slopes = anchor_slopes(generator, latent_dim, label, settings, bar.update)
                seconds = round(time.perf_counter() - started, 3)
                _check_finite(slopes, settings.method, name)
                if saved is not None:
                    saved.save(label, slopes, seconds)
            else:
                slopes, seconds = loaded
                bar.update(settings.samples)
            rows.append(
                ClassEstimate(
                    label=label,
                    name=name,
                    constant=upper_bound(slopes.values, statistic),
                    largest=float(slopes.values.max()),
                    generator_evaluations=slopes.evaluations,
                    seconds=seconds,
                )
            )
    return LipschitzRun(settings=settings, statistic=statistic, classes=rows)


def _check_finite(slopes: Slopes, method: str, name: str) -> None:
    if not torch.isfinite(slopes.values).all():
        raise IrobError(
            f"class {name}: the {method} estimator met non-finite slopes (the generator's output map is "
            "not differentiable everywhere, e.g. s_p for p > 2 at a pixel of 1/2): no finite local constant there"
        )
