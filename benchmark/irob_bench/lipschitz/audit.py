"""An independent check of a card's constants: the exact local slope sigma_max(J_y(z)) (Lanczos run to convergence)
on fresh anchors (another seed), whose (1 - delta) quantile every valid constant L_y(r) must exceed.

sup over B(z, r) of the ratio is at least sigma_max(J(z)), so a constant below the true quantile of sigma_max cannot
be a (1 - delta)-local Lipschitz constant: the check can refute a card, never confirm the per-anchor sup. It
compares with the SAMPLE quantile of S fresh anchors, so it errs on the strict side: a constant exactly at the true
0.999 quantile still fails with probability P(Bin(S, 0.001) >= 3) = 0.58 at S = 3,000. A pass is meaningful; a
narrow failure asks for more anchors before it condemns a card.

A card claims its constants at `holds_at`: the requested delta when S supports it, else delta' (S = 3,000 per class
and ten classes at confidence 0.95 give delta' = 0.00176 > 0.001). A row passes when the constant is at least the
quantile of that claim; the quantile at the requested delta is kept beside it (stricter than the claim).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from tqdm import tqdm

from irob_bench.common import FrozenModel
from irob_bench.datasets.card import DatasetCard
from irob_bench.errors import IrobError
from irob_bench.lipschitz.estimate import Checkpoint, Generator
from irob_bench.lipschitz.geometry import ESTIMATOR_STREAM, class_map, draw_anchors, stream, unit
from irob_bench.lipschitz.gradient import top_singular
from irob_bench.lipschitz.sampling import Slopes


class AuditSettings(FrozenModel):
    """Fresh anchors (a seed other than the card's) and Lanczos run to a tight tolerance."""

    method: Literal["audit"] = "audit"
    samples: int = Field(3000, ge=1, description="fresh anchors per class")
    seed: int = Field(1, ge=0, description="must differ from the card estimate's seed")
    delta: float = Field(0.001, gt=0, lt=1)
    iterations: int = Field(100, ge=1, description="at most this many Lanczos steps")
    tolerance: float = Field(1e-6, ge=0, description="relative Ritz residual that stops them")
    batch_size: int = Field(250, ge=1, description="anchors per generator call")


class ClassAudit(FrozenModel):
    """One class: the card's constant against the (1 - delta) quantile and the max of sigma_max on fresh anchors."""

    label: int
    constant: float
    quantile: float = Field(description="the (1 - delta) quantile of the audit's settings (the requested delta)")
    claimed_quantile: float | None = Field(
        None, description="the (1 - holds_at) quantile, holds_at being the delta the card claims its constants at; "
        "audits written before 2026-12-07 lack it and are judged at `quantile`, which is stricter"
    )
    largest: float
    first: list[float] = Field(description="sigma_max of the first fresh anchors, so a test can recompute them")

    @property
    def judged_at(self) -> float:
        """The quantile the constant must dominate: that of the card's claim where recorded."""
        return self.quantile if self.claimed_quantile is None else self.claimed_quantile

    @property
    def passed(self) -> bool:
        """Whether the card's constant is at least the fresh anchors' quantile it must dominate."""
        return self.constant >= self.judged_at


class Audit(FrozenModel):
    """The audit of one card."""

    dataset: str
    version: str
    settings: AuditSettings
    classes: list[ClassAudit]


def sigma_max(
    generator: Generator, latent_dim: int, label: int, settings: AuditSettings, count: int | None = None,
    advance: Callable[[int], None] = lambda n: None,
) -> Slopes:
    """Converged sigma_max of the Jacobian of g_y at the first `count` (default all) fresh anchors of class `label`."""
    anchors = draw_anchors(settings.seed, label, settings.samples, latent_dim)[:count]
    starts = unit(torch.randn(anchors.shape, generator=stream(settings.seed, label, ESTIMATOR_STREAM)))
    g_y, values, evaluations = class_map(generator, label), [], 0
    for chunk, start in zip(anchors.split(settings.batch_size), starts.split(settings.batch_size)):
        power = top_singular(g_y, chunk, start, settings.iterations, settings.tolerance)
        values.append(power.sigma)
        evaluations += len(chunk) * (3 + 3 * power.iterations)
        advance(len(chunk))
    return Slopes(torch.cat(values), evaluations)


def audit(
    card: DatasetCard, generator: Generator, settings: AuditSettings, checkpoint: str | Path | None = None,
    progress: bool = False, keep: int = 8,
) -> Audit:
    """sigma_max on `settings.samples` fresh anchors per class against the card's constants."""
    if card.lipschitz is None:
        raise IrobError(f"{card.name} has no Lipschitz constants to audit")
    if any(e.settings.get("seed") == settings.seed for e in card.lipschitz.estimates):
        raise IrobError(f"seed {settings.seed} drew the card's own anchors; audit with another --seed")
    saved = Checkpoint(checkpoint, settings) if checkpoint is not None else None
    rows = []
    with tqdm(total=card.num_classes * settings.samples, disable=not progress, unit="anchor", desc="audit") as bar:
        for label, constant in enumerate(card.lipschitz.constants):
            loaded = saved.load(label) if saved is not None else None
            if loaded is None:
                started = time.perf_counter()
                slopes = sigma_max(generator, card.latent_dim, label, settings, advance=bar.update)
                if saved is not None:
                    saved.save(label, slopes, round(time.perf_counter() - started, 3))
            else:
                slopes, _ = loaded
                bar.update(settings.samples)
            values = slopes.values.double().numpy()
            rows.append(
                ClassAudit(
                    label=label,
                    constant=constant,
                    quantile=float(np.quantile(values, 1 - settings.delta)),
                    claimed_quantile=float(np.quantile(values, 1 - card.lipschitz.holds_at)),
                    largest=float(values.max()),
                    first=[float(v) for v in values[:keep]],
                )
            )
    return Audit(dataset=card.name, version=card.version, settings=settings, classes=rows)
