"""Independent re-check of every adversarial example; reported robust accuracies come only from here.

A candidate counts only if it is finite, inside [0, 1], within the distance bound (+ NORM_TOLERANCE)
and a fresh forward pass (new batches, holding only candidates) confirms the label flipped. On-manifold
candidates are regenerated from their latent first, so the distance is ||g(z', y) - x||.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from irob_bench.attacks.common import Found, Model, batches, flat_norm, misclassified
from irob_bench.runtime import place

NORM_TOLERANCE = 1e-5


@dataclass
class Verified:
    """Per example: whether a verified adversarial exists and its recomputed distance (inf if none)."""

    valid: np.ndarray
    distance: np.ndarray
    rejected: int

    def robust(self, clean_correct: np.ndarray, eps: list[float]) -> np.ndarray:
        """(N, E) robust mask: correct and no verified adversarial within eps."""
        broken = self.distance[:, None] <= np.asarray(eps, dtype=np.float64)[None, :] + NORM_TOLERANCE
        return clean_correct[:, None] & ~broken

    def minimal_distance(self, clean_correct: np.ndarray) -> np.ndarray:
        """(N,) minimal adversarial distance found: 0 if misclassified, inf if nothing verified."""
        return np.where(clean_correct, self.distance, 0.0)


def check_images(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    candidates: torch.Tensor,
    claimed: torch.Tensor,
    max_distance: float,
    batch_size: int,
    device: str | torch.device = "cpu",
    draws: int = 1,
) -> Verified:
    """Verify candidate images x' for the examples where `claimed` is set (x' ignored elsewhere).

    With `draws` > 1 (randomized models) the label must flip in a strict majority of that many forward passes.
    """
    n = len(x)
    valid = np.zeros(n, dtype=bool)
    distance = np.full(n, math.inf)
    rows = torch.nonzero(claimed.cpu()).squeeze(1)
    if len(rows):
        xa, xc, yc = candidates[rows].cpu(), x[rows].cpu(), y[rows].cpu()
        dist = flat_norm((xa.double() - xc.double()))
        finite = torch.isfinite(xa.flatten(1)).all(dim=1)
        in_range = ((xa >= 0) & (xa <= 1)).flatten(1).all(dim=1)
        flipped = misclassified(model, torch.nan_to_num(xa), yc, batch_size, device, draws)
        ok = finite & in_range & flipped & (dist <= max_distance + NORM_TOLERANCE)
        valid[rows.numpy()] = ok.numpy()
        distance[rows[ok].numpy()] = dist[ok].numpy()
    return Verified(valid=valid, distance=distance, rejected=int(len(rows) - valid.sum()))


def verify_images(
    model: Model, x: torch.Tensor, y: torch.Tensor, found: Found, max_distance: float, batch_size: int,
    device: str | torch.device = "cpu", draws: int = 1,
) -> Verified:
    """Verify the adversarial images an unconstrained attack found."""
    return check_images(model, x, y, found.points, found.found, max_distance, batch_size, device, draws)


@torch.no_grad()
def regenerate(
    generator: nn.Module, z: torch.Tensor, y: torch.Tensor, batch_size: int, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """g(z, y) in fresh batches on the device, returned on the CPU."""
    parts = [generator(place(z[s], device), place(y[s], device)).float().cpu() for s in batches(len(z), batch_size)]
    return torch.cat(parts) if parts else torch.empty(0)


def verify_latents(
    model: Model, generator: nn.Module, x: torch.Tensor, y: torch.Tensor, found: Found, max_distance: float,
    batch_size: int, device: str | torch.device = "cpu", draws: int = 1,
) -> Verified:
    """Verify on-manifold adversarials: regenerate g(z', y), then check it like an image."""
    images = x.clone()
    rows = torch.nonzero(found.found).squeeze(1)
    if len(rows):
        images[rows] = regenerate(generator, found.points[rows], y[rows], batch_size, device)
    return check_images(model, x, y, images, found.found, max_distance, batch_size, device, draws)
