"""In-distribution attacks: search the latent z' so that g(z', y) is misclassified and close to x.

Two methods (SCIENCE.md §5): Zhang et al.'s Lagrangian reference (Adam on
||g(z, y) - x|| + lambda * max(margin, 0) with a per-example binary search over lambda), and a faster
fixed-eps latent PGD that backs off along the segment from z_x whenever the image leaves the eps-ball.
Both return, per example, the closest on-manifold adversarial latent found and its image distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from irob_bench.attacks.common import (
    Found,
    Model,
    batches,
    flat_norm,
    keep_lower,
    margin,
    normalise,
    objective,
    progress_bar,
    step_lengths,
)
from irob_bench.attacks.config import LatentAttackConfig, Loss
from irob_bench.attacks.noise import example_keys, keyed_normal


@dataclass
class LatentTask:
    """What every in-distribution attack needs: the two networks and the points with their stored latents."""

    model: Model
    generator: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    z: torch.Tensor
    batch_size: int
    device: str | torch.device = "cpu"
    progress: bool = False

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x, y, z) of the examples `idx`, on the device."""
        return self.x[idx].to(self.device), self.y[idx].to(self.device), self.z[idx].to(self.device)


def _forward(
    task: LatentTask, z: torch.Tensor, x: torch.Tensor, y: torch.Tensor, loss: Loss, with_grad: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor | None, torch.Tensor | None]]:
    """(objective, margin, image distance, gradients w.r.t. z of the objective and of the distance, or Nones)."""
    with torch.set_grad_enabled(with_grad):
        z = z.detach().requires_grad_(with_grad)
        image = task.generator(z, y)
        logits = task.model(image)
        value = objective(logits, y, loss)
        sq = (image - x).flatten(1).pow(2).sum(dim=1)
        grads = (None, None)
        if with_grad:
            value_grad = torch.autograd.grad(value.sum(), z, retain_graph=True)[0]
            grads = (value_grad, torch.autograd.grad((sq + 1e-12).sqrt().sum(), z)[0])
    return value.detach(), margin(logits.detach(), y), sq.detach().sqrt(), grads


def tangent_step(grad: torch.Tensor, dist_grad: torch.Tensor, near: torch.Tensor) -> torch.Tensor:
    """Descent direction -grad, minus its outward component along the distance gradient where `near` the boundary."""
    step = -grad
    outward = (step * dist_grad).sum(dim=1) / dist_grad.pow(2).sum(dim=1).clamp_min(1e-12)
    remove = near & (outward > 0)
    return step - torch.where(remove, outward, torch.zeros_like(outward))[:, None] * dist_grad


@torch.no_grad()
def back_off(
    task: LatentTask, x: torch.Tensor, y: torch.Tensor, anchor: torch.Tensor, z: torch.Tensor, eps: float, steps: int
) -> torch.Tensor:
    """Move each z with ||g(z, y) - x|| > eps back along the segment to its anchor (bisection, feasible end)."""
    outside = flat_norm(task.generator(z, y) - x) > eps
    if not bool(outside.any()):
        return z
    rows = torch.nonzero(outside).squeeze(1)
    a, d = anchor[rows], z[rows] - anchor[rows]
    lo = torch.zeros(len(rows), device=z.device)
    hi = torch.ones(len(rows), device=z.device)
    for _ in range(steps):
        mid = (lo + hi) / 2
        inside = flat_norm(task.generator(a + mid[:, None] * d, y[rows]) - x[rows]) <= eps
        lo, hi = torch.where(inside, mid, lo), torch.where(inside, hi, mid)
    z = z.clone()
    z[rows] = a + lo[:, None] * d
    return z


def fixed_eps_run(
    task: LatentTask, x: torch.Tensor, y: torch.Tensor, anchor: torch.Tensor, z: torch.Tensor, eps: float,
    config: LatentAttackConfig,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One latent PGD run inside the eps-ball: (best z, its objective, broken mask, image distance of best z)."""
    n = len(z)
    lengths = step_lengths(config.step_size, config.steps, config.schedule)
    best_z, best_dist = z.clone(), torch.full((n,), math.inf, device=z.device)
    best_value = torch.full((n,), math.inf, device=z.device)
    broken = torch.zeros(n, dtype=torch.bool, device=z.device)
    active = torch.arange(n, device=z.device)
    for step in range(len(lengths) + 1):
        last = step == len(lengths)
        value, marg, dist, (grad, dist_grad) = _forward(task, z, x[active], y[active], config.loss, not last)
        inside = dist <= eps
        hit = (marg < 0) & inside
        keep = ((value < best_value[active]) & inside) | hit
        rows = active[keep]
        best_z[rows], best_value[rows], best_dist[rows] = z[keep], value[keep], dist[keep]
        broken[active[hit]] = True
        if last or bool(hit.all()):
            break
        keep = ~hit
        active, z = active[keep], z[keep]
        direction = tangent_step(grad[keep], dist_grad[keep], dist[keep] >= config.boundary * eps)
        z = back_off(task, x[active], y[active], anchor[active], z + lengths[step] * normalise(direction), eps,
                     config.bisection_steps)
    return best_z, best_value, broken, best_dist


def fixed_eps_attack(
    task: LatentTask, eps: list[float], config: LatentAttackConfig, *, base_key: int, indices: torch.Tensor,
    attack_mask: torch.Tensor,
) -> Found:
    """Cascade latent PGD over ascending eps on the points of `attack_mask`; closest on-manifold adversarials."""
    eps = sorted(eps)
    found = Found.empty(task.z)
    warm = task.z.detach().cpu().clone()
    warm_value = torch.full((len(task.z),), math.inf)
    for e_index, radius in enumerate(eps):
        for restart in range(config.restarts):
            todo = torch.nonzero(attack_mask & ~found.found).squeeze(1)
            if restart == 0:
                warm_value[todo] = math.inf
            bar = progress_bar(len(todo), f"latent eps={radius:g} run {restart + 1}/{config.restarts}", task.progress)
            for part in batches(len(todo), task.batch_size):
                idx = todo[part]
                xb, yb, zb = task.batch(idx)
                start = warm[idx].to(zb.device)
                if restart > 0:
                    keys = example_keys(base_key, indices[idx], stream=1000 * e_index + restart)
                    noise = config.init_radius * keyed_normal(keys, tuple(zb.shape[1:])).to(zb.device)
                    start = back_off(task, xb, yb, zb, zb + noise, radius, config.bisection_steps)
                best, value, broken, dist = fixed_eps_run(task, xb, yb, zb, start, radius, config)
                found.record(idx, broken, best, dist)
                keep_lower(warm, warm_value, idx, best, value)
                bar.update(len(idx))
            bar.close()
    return found


def lagrangian_batch(
    task: LatentTask, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, config: LatentAttackConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zhang et al.'s attack on one batch: (closest adversarial z, its distance (inf if none), found mask)."""
    n = len(z)
    lam = torch.full((n,), config.lambda_init, device=z.device)
    lo, hi = torch.zeros_like(lam), torch.full_like(lam, math.inf)
    best_z, best_dist = z.clone(), torch.full((n,), math.inf, device=z.device)
    for _ in range(config.outer_steps):
        w = z.clone().requires_grad_(True)
        optimiser = torch.optim.Adam([w], lr=config.lr)
        success = torch.zeros(n, dtype=torch.bool, device=z.device)
        for it in range(config.inner_steps + 1):
            with torch.enable_grad():
                image = task.generator(w, y)
                sq = (image - x).flatten(1).pow(2).sum(dim=1)
                marg = margin(task.model(image), y)
            dist = sq.detach().sqrt()
            hit = (marg.detach() < 0) & (dist < best_dist)
            best_z[hit], best_dist[hit] = w.detach()[hit], dist[hit]
            success |= marg.detach() < 0
            if it == config.inner_steps:
                break
            total = (sq + 1e-12).sqrt() + lam * marg.clamp_min(0.0)
            (w.grad,) = torch.autograd.grad(total.sum(), w)
            optimiser.step()
        hi = torch.where(success, lam, hi)
        lo = torch.where(success, lo, lam)
        lam = torch.where(torch.isinf(hi), lam * 10.0, (lo + hi) / 2)
    return best_z, best_dist, torch.isfinite(best_dist)


def lagrangian_attack(task: LatentTask, config: LatentAttackConfig, *, attack_mask: torch.Tensor) -> Found:
    """Run the Lagrangian attack on every point of `attack_mask`; closest on-manifold adversarials (any distance)."""
    found = Found.empty(task.z)
    todo = torch.nonzero(attack_mask).squeeze(1)
    bar = progress_bar(len(todo), "latent lagrangian", task.progress)
    for part in batches(len(todo), task.batch_size):
        idx = todo[part]
        xb, yb, zb = task.batch(idx)
        best, dist, hit = lagrangian_batch(task, xb, yb, zb, config)
        found.record(idx, hit, best, dist)
        bar.update(len(idx))
    bar.close()
    return found
