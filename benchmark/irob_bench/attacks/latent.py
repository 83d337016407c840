"""In-distribution attacks: search the latent z' so that g(z', y) is misclassified and close to x.

Two methods (docs/science.md §5): Zhang et al.'s Lagrangian reference (Adam on
||g(z, y) - x|| + lambda * max(margin, 0) with a per-example binary search over lambda, restarted from
z_x for every lambda), and our adaptive-penalty attack (one Adam run whose lambda adapts every step),
which finds at least as many with under a third of the evaluations (docs/performance.md).
Both return, per example, the closest on-manifold adversarial latent found and its image distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import vmap

from irob_bench.attacks.common import Found, Model, batches, margin, progress_bar
from irob_bench.attacks.config import LatentAttackConfig
from irob_bench.attacks.verify import NORM_TOLERANCE
from irob_bench.runtime import jvp, place


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
        return place(self.x[idx], self.device), place(self.y[idx], self.device), place(self.z[idx], self.device)


def _latent_forward(
    task: LatentTask, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(squared image distance ||g(w, y) - x||^2, margin of the classifier on g(w, y)), differentiable in w."""
    with torch.enable_grad():
        image = task.generator(w, y)
        return (image - x).flatten(1).pow(2).sum(dim=1), margin(task.model(image), y)


JACOBIAN_MEMORY = 1 << 30  # bytes of activations (primal + tangent) one batched forward-mode call may hold


def generator_jacobian(generator: nn.Module, w: torch.Tensor, y: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """(n, D, d): each example's Jacobian of its flattened image g(w, y) in w, from d forward-mode products (one per
    latent axis; `chunk` axes per batched call)."""
    n, d = w.shape
    axes = torch.eye(d, dtype=w.dtype, device=w.device)

    def along(tangent: torch.Tensor) -> torch.Tensor:
        return jvp(lambda v: generator(v, y), (w,), (tangent,))[1].flatten(1)

    columns = [vmap(along)(axes[i : i + chunk, None, :].expand(-1, n, d)) for i in range(0, d, chunk)]
    return torch.cat(columns).permute(1, 2, 0)


def activation_bytes(generator: nn.Module, w: torch.Tensor, y: torch.Tensor) -> int:
    """Bytes of every leaf module's output for one generator evaluation: what one forward-mode product holds, about
    (x 2 with its tangent), measured rather than assumed (0.24 MB for the mnist ACGAN, 1.7 MB for the CIFAR SNGAN)."""
    total = 0

    def count(module: nn.Module, inputs: object, output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * output.element_size()

    hooks = [m.register_forward_hook(count) for m in generator.modules() if next(m.children(), None) is None]
    try:
        with torch.no_grad():
            generator(w[:1], y[:1])
    finally:
        for hook in hooks:
            hook.remove()
    return max(total, w[:1].numel() * w.element_size())


def generator_gram(
    generator: nn.Module, w: torch.Tensor, y: torch.Tensor, memory: int = JACOBIAN_MEMORY
) -> torch.Tensor:
    """(n, d, d) float64: each example's J^T J (J: its Jacobian of g(w, y) in w), computed over chunks of examples
    and latent axes whose activations fit in `memory` bytes, so that neither the batched products nor the (n, D, d)
    Jacobians exceed it (a 250-point batch took 8 GB on the CIFAR SNGAN in one call; its Jacobians alone are 0.4 GB,
    BigGAN's at 128 x 128 6 GB). Chunks change values by float rounding only (batch sizes pick kernels)."""
    n, d = w.shape
    evaluations = max(1, memory // (2 * activation_bytes(generator, w, y)))  # generator evaluations per call
    axes = min(d, 32, evaluations)
    points = max(1, min(n, evaluations // axes))
    grams = []
    for i in range(0, n, points):
        jac = generator_jacobian(generator, w[i : i + points], y[i : i + points], chunk=axes).double()
        # Only a preconditioner (any full-rank B leaves the search valid): an infinite slope, e.g. of s_p with
        # p > 2 at a pixel of exactly 1/2, is dropped rather than let turn B into NaN.
        jac = torch.nan_to_num(jac, nan=0.0, posinf=0.0, neginf=0.0)
        grams.append(jac.transpose(1, 2) @ jac)  # double: J^T J squares a ~2,000x condition number
    return torch.cat(grams)


def image_coordinates(generator: nn.Module, origin: torch.Tensor, y: torch.Tensor, floor: float) -> torch.Tensor:
    """(n, d, d) basis B such that w = origin + B u moves the image by about |u| along each of g's local directions:
    B = V (S^2 + mu^2)^-1/2 from J^T J = V S^2 V^T at the origin, mu = `floor` x the largest singular value.

    Why: g's latent map is badly conditioned (singular values span ~2,000x on the mnist ACGAN), so Adam on z
    crawls along the directions in which the image changes slowly, where the closest adversarials lie.
    """
    with torch.no_grad():
        squared, vectors = torch.linalg.eigh(generator_gram(generator, origin, y))
    squared = squared.clamp_min(0.0)
    floor_squared = (floor**2 * squared.amax(dim=1, keepdim=True)).clamp_min(1e-12)
    return (vectors * (squared + floor_squared).rsqrt().unsqueeze(1)).to(origin.dtype)


def adaptive_batch(
    task: LatentTask, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, config: LatentAttackConfig, scale: float,
    start: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Our fast attack on one batch: (closest adversarial z, its distance (inf if none), found mask).

    One Adam run from the stored latent (or from `start`, e.g. the closest adversarial found so far) on
    ||g(w) - x|| + lambda * scale * max(margin, 0) / margin_0, where margin_0 is the clean margin (so lambda = 1
    trades the whole margin for a move of `scale`), and each example's lambda adapts every step: x(1 + growth)
    while not adversarial, /(1 + growth) once it is. This replaces the Lagrangian's restarted binary search over
    lambda by an online one. With `config.precondition`, Adam moves u in w = origin + B u (`image_coordinates`),
    re-anchored at the current iterate every `config.basis_every` steps.
    """
    n = len(z)
    lam = torch.full((n,), config.lambda_init, device=z.device)
    best_z, best_dist = z.clone(), torch.full((n,), math.inf, device=z.device)
    origin, basis = (z if start is None else start).clone(), None
    u = origin  # re-bound at it == 0 before any use; bound here so every path defines it
    weight = torch.ones(n, device=z.device)
    if start is not None:
        with torch.no_grad():
            weight = scale / margin(task.model(task.generator(z, y)), y).clamp_min(1e-3)
    for it in range(config.steps + 1):
        if it % config.basis_every == 0 and (it == 0 or (config.precondition and it < config.steps)):
            if it:
                origin = origin + (basis @ u.detach().unsqueeze(2)).squeeze(2)
            if config.precondition:
                basis = image_coordinates(task.generator, origin, y, config.precondition)
            u = (origin if basis is None else torch.zeros_like(origin)).clone().requires_grad_(True)
            optimiser = torch.optim.Adam([u], lr=config.lr)
        with torch.enable_grad():
            w = u if basis is None else origin + (basis @ u.unsqueeze(2)).squeeze(2)
        sq, marg = _latent_forward(task, w, x, y)
        dist, adversarial = sq.detach().sqrt(), marg.detach() < 0
        closer = adversarial & (dist < best_dist)
        best_z[closer], best_dist[closer] = w.detach()[closer], dist[closer]
        if it == config.steps:
            break
        if it == 0 and start is None:
            weight = scale / marg.detach().clamp_min(1e-3)
        lam = torch.where(adversarial, lam / (1 + config.lambda_growth), lam * (1 + config.lambda_growth))
        total = (sq + 1e-12).sqrt() + lam * weight * marg.clamp_min(0.0)
        (u.grad,) = torch.autograd.grad(total.sum(), u)
        optimiser.step()
    return best_z, best_dist, torch.isfinite(best_dist)


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
            sq, marg = _latent_forward(task, w, x, y)
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


def evaluations_per_point(config: LatentAttackConfig) -> int:
    """Generator+classifier forward passes the configured method spends on each attacked point."""
    if config.method == "lagrangian":
        return config.outer_steps * (config.inner_steps + 1)
    return config.steps + 1


def _attack_points(task: LatentTask, config: LatentAttackConfig, scale: float, todo: torch.Tensor, found: Found,
                   label: str, *, resume: bool = False) -> None:
    """Run the configured method on the points `todo` and record what it finds (closer results win); with
    `resume`, each adaptive run starts from the point's closest adversarial found so far (its latent if none)."""
    with progress_bar(len(todo), label, task.progress) as bar:
        for part in batches(len(todo), task.batch_size):
            idx = todo[part]
            xb, yb, zb = task.batch(idx)
            if config.method == "lagrangian":
                best, dist, hit = lagrangian_batch(task, xb, yb, zb, config)
            else:
                start = place(found.points[idx], zb.device) if resume else None
                best, dist, hit = adaptive_batch(task, xb, yb, zb, config, scale, start)
            found.record(idx, hit, best, dist)
            bar.update(len(idx))


def distance_scale(config: LatentAttackConfig, eps: list[float]) -> float:
    """The adaptive attack's s: the image distance worth the whole clean margin (default: the largest eps)."""
    return config.distance_scale or max(eps)


def can_change(found: Found, eps: list[float], ratio: float | None = None) -> torch.Tensor:
    """(N,) points whose closest on-manifold adversarial is farther than some eps (+ tolerance) and, with a
    `ratio`, within `ratio` x that eps: the near misses whose outcome more search can still change."""
    d, limit = found.distance, math.inf if ratio is None else ratio
    return torch.stack([(d > e + NORM_TOLERANCE) & (d <= limit * e) for e in eps]).any(dim=0)


def survivor_runs(config: LatentAttackConfig) -> list[tuple[LatentAttackConfig, float | None]]:
    """The survivor runs in order, each as (its attack configuration, its survivor ratio): run k (from 0) takes
    `survivor_steps` steps at lr / 2^k, on the points within 1 + (ratio - 1) / 2^k of some eps beyond it."""
    if config.method != "adaptive" or not config.survivor_steps:
        return []
    ratio = config.survivor_ratio
    return [
        (config.model_copy(update={"steps": config.survivor_steps, "lr": config.lr / 2**k}),
         None if ratio is None else 1 + (ratio - 1) / 2**k)
        for k in range(config.survivor_rounds)
    ]


def _search(task: LatentTask, config: LatentAttackConfig, eps: list[float], todo: torch.Tensor, found: Found,
            label: str) -> None:
    """The configured attack on the points `todo`, then (adaptive, with `survivor_steps`) each survivor run in turn
    continues the survivors among them from their closest adversarial; everything closer is recorded in `found`."""
    scale = distance_scale(config, eps)
    _attack_points(task, config, scale, todo, found, label)
    for k, (run, ratio) in enumerate(survivor_runs(config)):
        survivors = todo[can_change(found, eps, ratio)[todo]]
        _attack_points(task, run, scale, survivors, found, f"{label} survivors {k + 1}", resume=True)


def latent_attack(task: LatentTask, config: LatentAttackConfig, eps: list[float], *, attack_mask: torch.Tensor) -> Found:
    """Run the configured in-distribution attack on every point of `attack_mask`: closest on-manifold adversarials.

    Both methods return the closest adversarial found at any distance, so r_in is not capped at the eps grid.
    With `survivor_steps`, the survivors (points whose closest adversarial lies beyond some eps, within
    `survivor_ratio` x it) continue: adaptive runs of that many steps from their closest adversarial, `survivor_rounds`
    of them with ever finer steps on ever nearer misses (`survivor_runs`).
    """
    found = Found.empty(task.z)
    _search(task, config, eps, torch.nonzero(attack_mask).squeeze(1), found, f"latent {config.method}")
    return found


def scaled_budget(config: LatentAttackConfig, factor: int) -> LatentAttackConfig:
    """The same attack with `factor` x its budget: every phase's steps multiplied."""
    return config.model_copy(update={"steps": factor * config.steps, "survivor_steps": factor * config.survivor_steps})


def spot_check(
    task: LatentTask, config: LatentAttackConfig, eps: list[float], found: Found, attack_mask: torch.Tensor,
    priority: torch.Tensor, population: int,
) -> tuple[int, list[int]]:
    """Convergence check: re-attack with the same attack at `spot_check_factor` x its budget each survivor whose keyed
    `priority` (uniform in (0, 1)) is below `config.spot_check` / `population` (the evaluation's number of points):
    about spot_check x the survival rate points, each chosen by its own key, so that whether a point is checked never
    depends on its shard, chunk or batch. Records what it finds in `found`; returns (points checked, outcomes changed
    at each eps)."""
    if config.method != "adaptive" or not config.spot_check:
        return 0, [0] * len(eps)
    pool = torch.nonzero(attack_mask & can_change(found, eps)).squeeze(1)
    todo = pool[priority[pool] < config.spot_check / population]
    before = found.distance.clone()
    _search(task, scaled_budget(config, config.spot_check_factor), eps, todo, found, "latent spot-check")
    changed = [int(((found.distance <= e + NORM_TOLERANCE) & (before > e + NORM_TOLERANCE)).sum()) for e in eps]
    return len(todo), changed
