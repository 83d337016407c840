"""PGD-L2 with random start, restarts, a step schedule, best-iterate tracking and an eps cascade.

A point stops being attacked the moment it is broken (inside a run too: the active set shrinks every
step); eps are attacked in ascending order and only survivors move on (optionally warm-started from
their best iterate so far). All randomness is keyed per example (irob_bench.attacks.noise), so a point's attack
does not depend on which other points share its batch.
"""

from __future__ import annotations

import torch

from irob_bench.attacks.common import (
    Found,
    Model,
    batches,
    flat_norm,
    input_gradient,
    keep_lower,
    normalise,
    per_example,
    progress_bar,
    project_l2,
    step_lengths,
)
from irob_bench.attacks.config import Loss, PGDConfig
from irob_bench.attacks.noise import example_keys, keyed_normal, keyed_uniform


def random_ball_start(x: torch.Tensor, keys: torch.Tensor, radius: float) -> torch.Tensor:
    """A random perturbation per example: Gaussian direction, length uniform in [0, radius]; clipped."""
    direction = normalise(keyed_normal(keys, tuple(x.shape[1:])).to(x.device))
    length = radius * keyed_uniform(keys).to(x.device)
    return (x + direction * per_example(length, x)).clamp(0.0, 1.0) - x


def pgd_run(
    model: Model, x: torch.Tensor, y: torch.Tensor, eps: float, delta: torch.Tensor, lengths: list[float], loss: Loss
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One PGD run on a batch from `delta`: (best perturbation, its margin, broken mask).

    `lengths` are absolute step lengths. The best iterate is the one with the lowest objective, or the
    first one that misclassifies; broken points leave the active set at once.
    """
    n = len(x)
    out_delta = delta.clone()
    out_margin = torch.full((n,), float("inf"), device=x.device)
    broken = torch.zeros(n, dtype=torch.bool, device=x.device)
    active, xa, ya = torch.arange(n, device=x.device), x, y
    best_delta, best_value, best_margin = delta, out_margin.clone(), out_margin.clone()
    for step in range(len(lengths) + 1):
        last = step == len(lengths)
        value, marg, grad = input_gradient(model, xa + delta, ya, loss, with_grad=not last)
        hit = marg < 0
        take = (value < best_value) | hit
        best_delta = torch.where(per_example(take, delta), delta, best_delta)
        best_value, best_margin = torch.where(take, value, best_value), torch.where(take, marg, best_margin)
        done = torch.ones_like(hit) if last else hit
        if bool(done.any()):
            rows = active[done]
            out_delta[rows], out_margin[rows], broken[rows] = best_delta[done], best_margin[done], hit[done]
            if bool(done.all()):
                break
            keep = ~done
            active, xa, ya, delta, grad = active[keep], xa[keep], ya[keep], delta[keep], grad[keep]
            best_delta, best_value, best_margin = best_delta[keep], best_value[keep], best_margin[keep]
        delta = project_l2(xa, delta - lengths[step] * normalise(grad), eps)
    return out_delta, out_margin, broken


def pgd_attack(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: list[float],
    config: PGDConfig,
    *,
    base_key: int,
    indices: torch.Tensor,
    attack_mask: torch.Tensor,
    batch_size: int,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> Found:
    """Cascade PGD-L2 over ascending eps on the points of `attack_mask`; returns the closest adversarials found.

    A found point's stored perturbation has norm <= the smallest eps at which it was broken, so it is
    an adversarial example at every larger eps too.
    """
    eps = sorted(eps)
    found = Found.empty(x)
    warm = torch.zeros_like(x)
    warm_value = torch.full((len(x),), float("inf"))
    for e_index, radius in enumerate(eps):
        lengths = step_lengths(config.step_size * radius, config.steps, config.schedule)
        for restart in range(config.restarts):
            todo = torch.nonzero(attack_mask & ~found.found).squeeze(1)
            if e_index > 0 and restart == 0:
                warm_value[todo] = float("inf")
            bar = progress_bar(len(todo), f"PGD eps={radius:g} run {restart + 1}/{config.restarts}", progress)
            for part in batches(len(todo), batch_size):
                idx = todo[part]
                xb, yb = x[idx].to(device), y[idx].to(device)
                delta = _start(xb, idx, radius, eps[e_index - 1] if e_index else None, restart, warm, config)
                if delta is None:
                    keys = example_keys(base_key, indices[idx], stream=1000 * e_index + restart)
                    delta = random_ball_start(xb, keys, config.init_radius * radius)
                best, value, broken = pgd_run(model, xb, yb, radius, delta, lengths, run_loss(config, restart))
                found.record(idx, broken, xb + best, flat_norm(best))
                keep_lower(warm, warm_value, idx, best, value)
                bar.update(len(idx))
            bar.close()
    return found


def run_loss(config: PGDConfig, restart: int) -> Loss:
    """The loss of one run: fixed, or cross-entropy and margin in turn for "alternate"."""
    if config.loss == "alternate":
        return "ce" if restart % 2 == 0 else "margin"
    return config.loss


def _start(
    xb: torch.Tensor,
    idx: torch.Tensor,
    eps: float,
    previous_eps: float | None,
    restart: int,
    warm: torch.Tensor,
    config: PGDConfig,
) -> torch.Tensor | None:
    """The first run's deterministic start (warm start, or zero without random start); None: start at random."""
    if restart > 0:
        return None
    if previous_eps is not None and config.warm_start:
        return project_l2(xb, warm[idx].to(xb.device) * (eps / previous_eps), eps)
    return None if config.random_start else torch.zeros_like(xb)
