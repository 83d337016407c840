"""A gradient-free Square-style L2 attack (after Andriushchenko et al. 2020), our own compact version.

It only queries the model's logits, so masked or obfuscated gradients do not stop it. The perturbation
lives on the eps-sphere; each query redraws the content of one random square window (all channels) as a
random +-1 pattern, spending there the window's share of the norm plus a fresh share, rescales the whole
perturbation back onto the sphere, clips to [0, 1], and keeps the proposal where it lowers the margin.
The window side shrinks over the queries (Square's p schedule: halved at 10, 50, 200, 500, 1000, 2000,
4000, 6000, 8000 queries of a 10,000-query budget, rescaled to the budget used). All randomness is keyed
per example (irob_bench.attacks.noise).
"""

from __future__ import annotations

import math

import torch

from irob_bench.attacks.common import Model, margin, normalise, per_example, random_start
from irob_bench.attacks.noise import keyed_normal, keyed_uniform, mix32

P_INIT = 0.8
HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def window_fraction(query: int, queries: int) -> float:
    """Square's p(query): the fraction of pixels a window covers, halved at the rescaled HALVINGS."""
    scaled = query * 10_000 / max(queries, 1)
    return P_INIT / 2 ** sum(scaled > h for h in HALVINGS)


def _window(keys: torch.Tensor, query: int, side: int, shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """One keyed random side x side window per example: its (B, 1, H, W) mask and (B, C, H, W) +-1 pattern in it.

    Only the window's values are drawn, so a query costs hashes in proportion to the window, not the image.
    """
    channels, height, width = shape
    n = len(keys)
    top = (keyed_uniform(mix32(keys + 0x1B873593 * (query + 1))) * (height - side + 1)).long().clamp(max=height - side)
    left = (keyed_uniform(mix32(keys + 0x68E31DA4 * (query + 1))) * (width - side + 1)).long().clamp(max=width - side)
    signs = torch.sign(keyed_normal(mix32(keys ^ (0x27D4EB2F * (query + 1))), (side, side, channels)))
    b = torch.arange(n)[:, None, None]
    rows = (top[:, None] + torch.arange(side))[:, :, None]
    cols = (left[:, None] + torch.arange(side))[:, None, :]
    pattern, mask = torch.zeros(n, height, width, channels), torch.zeros(n, height, width, 1)
    pattern[b, rows, cols] = signs
    mask[b, rows, cols] = 1.0
    return mask.permute(0, 3, 1, 2), pattern.permute(0, 3, 1, 2)


@torch.no_grad()
def square_run(
    model: Model, x: torch.Tensor, y: torch.Tensor, eps: float, keys: torch.Tensor, queries: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Square-style search on a batch of (B, C, H, W) images: (adversarial or best perturbation, broken mask)."""
    n, _, height, width = x.shape
    out_delta, broken = torch.zeros_like(x), torch.zeros(n, dtype=torch.bool, device=x.device)
    delta = random_start(x, keys, eps, on_sphere=True)
    best = margin(model(x + delta), y)
    rows, xa, ya, ka = torch.arange(n, device=x.device), x, y, keys
    for q in range(queries + 1):
        hit = best < 0
        if bool(hit.any()):
            out_delta[rows[hit]], broken[rows[hit]] = delta[hit], True
            keep = ~hit
            rows, xa, ya, ka, delta, best = rows[keep], xa[keep], ya[keep], ka[keep], delta[keep], best[keep]
        if q == queries or len(rows) == 0:
            break
        side = max(1, min(height, int(round(math.sqrt(window_fraction(q, queries) * height * width)))))
        mask, signs = (t.to(xa.device) for t in _window(ka, q, side, tuple(xa.shape[1:])))
        inside = (delta * mask).flatten(1).norm(dim=1)
        fresh = eps * math.sqrt(side * side / (height * width))
        size = torch.sqrt(inside**2 + fresh**2) / (side * math.sqrt(xa.shape[1]))
        proposal = delta * (1 - mask) + signs * mask * per_example(size, delta)
        proposal = (xa + normalise(proposal) * eps).clamp(0, 1) - xa
        value = margin(model(xa + proposal), ya)
        better = value < best
        delta = torch.where(per_example(better, delta), proposal, delta)
        best = torch.where(better, value, best)
    out_delta[rows] = delta
    return out_delta, broken
