"""Algorithm 1 (the reference): per anchor, the largest ratio ||g(z') - g(z)|| / ||z' - z|| over N uniform z' in B(z, r)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from irob_bench.lipschitz.geometry import ClassMap, uniform_in_ball


class Slopes(NamedTuple):
    """Per-anchor slope estimates (S,) and the generator evaluations spent on them."""

    values: torch.Tensor
    evaluations: int


@torch.no_grad()
def evaluate(g_y: ClassMap, points: torch.Tensor, batch_size: int) -> torch.Tensor:
    """g_y on many latent points, `batch_size` at a time."""
    return torch.cat([g_y(chunk) for chunk in points.split(batch_size)])


@torch.no_grad()
def sampling_slopes(
    g_y: ClassMap,
    anchors: torch.Tensor,
    neighbors: int,
    radius: float,
    batch_size: int,
    generator: torch.Generator,
    advance: Callable[[int], None] = lambda n: None,
) -> Slopes:
    """L_s = max over `neighbors` uniform points of the ratio, for every anchor; costs S * (N + 1) evaluations.

    Points are drawn anchor by anchor from `generator`, so the result does not depend on `batch_size`.
    """
    images = evaluate(g_y, anchors, batch_size)
    per_call = max(1, batch_size // neighbors)
    values = []
    for start in range(0, len(anchors), per_call):
        centers = anchors[start : start + per_call]
        points = torch.stack([uniform_in_ball(c, neighbors, radius, generator) for c in centers])
        moved = evaluate(g_y, points.flatten(0, 1), batch_size).view(len(centers), neighbors, -1)
        ratios = (moved - images[start : start + per_call, None]).norm(dim=-1) / (points - centers[:, None]).norm(dim=-1)
        values.append(ratios.amax(dim=1))
        advance(len(centers))
    return Slopes(torch.cat(values), len(anchors) * (neighbors + 1))
