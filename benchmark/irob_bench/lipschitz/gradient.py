"""The gradient estimator: per anchor, the top singular value of the Jacobian of g_y (Lanczos on J^T J, run until
it converges), then projected gradient ascent of ||g(z') - g(z)|| / ||z' - z|| inside B(z, r); the larger of
the two is kept.

Both are lower bounds of sup over B(z, r) of the ratio (the ratio tends to ||J v|| as z' -> z along v), so the
estimate can only under-state the true local constant, never over-state it.

Evaluation accounting (per latent point): a forward pass is 1; a backward pass, a reused vjp_fn call or the
tangent half of a jvp is 1 more. So torch.func.jvp = 2, torch.func.vjp = 1 + 1 per call of its vjp_fn, and an
ascent step (forward + autograd backward) = 2. Per anchor: 1 + 3k + 2 for the k Lanczos steps its batch ran and the
final push-forward, plus 2 * starts * (2 * steps + 1) for the ascent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch.func import vjp

from irob_bench.lipschitz.geometry import ClassMap, project_to_shell, unit
from irob_bench.lipschitz.sampling import Slopes
from irob_bench.lipschitz.settings import GradientSettings
from irob_bench.runtime import jvp


class TopSingular(NamedTuple):
    """sigma = ||J v|| (<= sigma_max), the unit v, g_y(anchors), and the Lanczos steps run."""

    sigma: torch.Tensor
    direction: torch.Tensor
    images: torch.Tensor
    iterations: int


def top_singular(
    g_y: ClassMap, anchors: torch.Tensor, start: torch.Tensor, iterations: int, tolerance: float = 0.0
) -> TopSingular:
    """sigma_max of the Jacobian J of g_y at each anchor: Lanczos on J^T J from unit `start` (full
    reorthogonalisation, batched over anchors), stopped when every Ritz residual |beta_m y_m| <= tolerance * lambda
    or after `iterations` steps (at most d). Its top Ritz vector v is pushed forward once more: sigma = ||J v||, a value
    attained at z, so sigma <= sigma_max whatever the convergence. Lanczos converges far faster than plain power
    iteration when the top singular values are close (which they often are for a generator's Jacobian).
    """
    images, pullback = vjp(g_y, anchors)
    count, dim = anchors.shape
    steps = min(iterations, dim)
    basis = torch.zeros(count, steps + 1, dim)
    basis[:, 0] = unit(start)
    alphas, betas = torch.zeros(count, steps), torch.zeros(count, steps)
    for done in range(1, steps + 1):
        q = basis[:, done - 1]
        _, pushed = jvp(g_y, (anchors,), (q,))
        w = pullback(pushed)[0].detach()
        alphas[:, done - 1] = (w * q).sum(1)
        for _ in range(2):  # full reorthogonalisation against every earlier vector, twice for stability
            w = w - torch.einsum("bk,bkd->bd", torch.einsum("bkd,bd->bk", basis[:, :done], w), basis[:, :done])
        betas[:, done - 1] = w.norm(dim=1)
        basis[:, done] = unit(w)
        broken = ~torch.isfinite(alphas).all(1) | ~torch.isfinite(betas).all(1)  # e.g. s_p at a pixel of 1/2
        tridiagonal = torch.where(broken[:, None, None], 0.0, _tridiagonal(alphas[:, :done], betas[:, : done - 1]))
        values, vectors = torch.linalg.eigh(tridiagonal)
        residual = torch.where(broken, 0.0, (betas[:, done - 1] * vectors[:, -1, -1]).abs())
        if torch.all(residual <= tolerance * values[:, -1].clamp_min(torch.finfo(values.dtype).tiny)):
            break
    direction = unit(torch.einsum("bk,bkd->bd", vectors[:, :, -1], basis[:, :done].nan_to_num()))
    direction = torch.where(direction.norm(dim=1, keepdim=True) > 0, direction, unit(start))  # J = 0: any direction
    _, pushed = jvp(g_y, (anchors,), (direction,))
    sigma = torch.where(broken, torch.nan, pushed.norm(dim=1).detach())  # non-finite stays visible to the caller
    return TopSingular(sigma, direction.detach(), images.detach(), done)


def _tridiagonal(alphas: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """The batched symmetric tridiagonal Lanczos matrix T with diagonal `alphas` and off-diagonal `betas`."""
    return torch.diag_embed(alphas) + torch.diag_embed(betas, 1) + torch.diag_embed(betas, -1)


def _ratio(g_y: ClassMap, centers: torch.Tensor, images: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    return (g_y(centers + offsets) - images).norm(dim=1) / offsets.norm(dim=1)


def ascend_ratio(
    g_y: ClassMap, anchors: torch.Tensor, images: torch.Tensor, direction: torch.Tensor, settings: GradientSettings
) -> torch.Tensor:
    """Largest ratio seen along projected normalised-gradient ascent from z +- r k/starts v, per anchor."""
    r, count = settings.radius, len(anchors)
    scales = torch.tensor([sign * r * k / settings.starts for k in range(1, settings.starts + 1) for sign in (1, -1)])
    offsets = (scales[:, None, None] * direction).flatten(0, 1)
    centers, targets = anchors.repeat(len(scales), 1), images.repeat(len(scales), 1)
    best = torch.zeros(count)
    for step in range(settings.ascent_steps):
        offsets.requires_grad_(True)
        with torch.enable_grad():
            ratios = _ratio(g_y, centers, targets, offsets)
            (grad,) = torch.autograd.grad(ratios.sum(), offsets)
        best = torch.maximum(best, ratios.detach().view(-1, count).amax(0))
        length = settings.step_fraction * r * (1 - step / settings.ascent_steps)
        offsets = project_to_shell(offsets.detach() + length * unit(grad), settings.min_fraction * r, r)
    with torch.no_grad():
        final = _ratio(g_y, centers, targets, offsets)
    return torch.maximum(best, final.view(-1, count).amax(0))


def ascent_evaluations(settings: GradientSettings) -> int:
    """Generator evaluations the ascent spends on one anchor (see the module docstring)."""
    return 2 * settings.starts * (2 * settings.ascent_steps + 1)


def gradient_slopes(
    g_y: ClassMap,
    anchors: torch.Tensor,
    settings: GradientSettings,
    generator: torch.Generator,
    advance: Callable[[int], None] = lambda n: None,
) -> Slopes:
    """max(local slope, best ascent ratio) per anchor, anchors batched so one call holds <= batch_size points."""
    per_call = max(1, settings.batch_size // (2 * settings.starts))
    initial = unit(torch.randn(anchors.shape, generator=generator)).split(per_call)
    values, evaluations = [], 0
    for chunk, start in zip(anchors.split(per_call), initial):
        power = top_singular(g_y, chunk, start, settings.lanczos_steps, settings.lanczos_tolerance)
        values.append(torch.maximum(power.sigma, ascend_ratio(g_y, chunk, power.images, power.direction, settings)))
        evaluations += len(chunk) * (3 + 3 * power.iterations + ascent_evaluations(settings))
        advance(len(chunk))
    return Slopes(torch.cat(values), evaluations)
