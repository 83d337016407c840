"""Seeded latent draws and ball geometry shared by the estimators: anchors, uniform points in B(z, r), projection."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

# Streams derived from (seed, class): anchors are shared by both estimators, so they see the same z_s.
ANCHOR_STREAM, ESTIMATOR_STREAM = 0, 1

ClassMap = Callable[[torch.Tensor], torch.Tensor]


def stream(seed: int, label: int, purpose: int) -> torch.Generator:
    """A CPU generator for one (seed, class, purpose): independent of which other classes are run."""
    state = np.random.SeedSequence([seed, label, purpose]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def draw_anchors(seed: int, label: int, count: int, latent_dim: int) -> torch.Tensor:
    """The anchors z_s ~ N(0, I_d) of one class, (count, d) float32."""
    return torch.randn(count, latent_dim, generator=stream(seed, label, ANCHOR_STREAM))


def class_map(generator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], label: int) -> ClassMap:
    """z -> g(z, y) flattened to (batch, pixels): the map whose local slope is measured."""

    def g_y(z: torch.Tensor) -> torch.Tensor:
        return generator(z, torch.full((z.shape[0],), label, dtype=torch.long)).flatten(1)

    return g_y


def unit(vectors: torch.Tensor) -> torch.Tensor:
    """Each row scaled to unit L2 norm (a zero row stays zero)."""
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(vectors.dtype).tiny)


def uniform_in_ball(center: torch.Tensor, count: int, radius: float, generator: torch.Generator) -> torch.Tensor:
    """`count` points uniform in B(center, radius): direction = normalised Gaussian, distance = r * u^(1/d)."""
    dim = center.shape[-1]
    directions = unit(torch.randn(count, dim, generator=generator))
    distances = radius * torch.rand(count, 1, generator=generator).pow(1.0 / dim)
    return center + distances * directions


def project_to_shell(offsets: torch.Tensor, inner: float, outer: float) -> torch.Tensor:
    """Rescale each offset z' - z so that inner <= ||z' - z|| <= outer (the ball minus a small core)."""
    norms = offsets.norm(dim=-1, keepdim=True)
    return offsets * (norms.clamp(inner, outer) / norms)
