"""Per-example minimal adversarial distances and the robust-accuracy curves they give (Fawzi et al.).

r_unc comes from a minimum-norm attack with decoupled direction and norm (a gradient step sets the
direction, the norm shrinks by (1 - gamma) while adversarial and grows by (1 + gamma) otherwise),
combined by the suite with the PGD cascade; r_in comes from the in-distribution attack.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from irob_bench.attacks.common import (
    Found,
    Model,
    batches,
    flat_norm,
    input_gradient,
    normalise,
    per_example,
    progress_bar,
    step_lengths,
)
from irob_bench.attacks.config import MinimalConfig
from irob_bench.attacks.verify import NORM_TOLERANCE
from irob_bench.runtime import place


def min_norm_run(
    model: Model, x: torch.Tensor, y: torch.Tensor, config: MinimalConfig, start: torch.Tensor | None = None,
    start_found: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of the minimum-norm attack: (closest adversarial perturbation, its norm (inf if none)).

    Where `start_found` is set, the run starts from that point's known adversarial perturbation in `start` and
    its target norm from that perturbation's norm, so it walks the boundary inward from there; elsewhere it
    starts from zero at `init_norm`.
    """
    n = len(x)
    delta = torch.zeros_like(x)
    target = torch.full((n,), config.init_norm, device=x.device)
    if start is not None and start_found is not None:
        delta = torch.where(per_example(start_found, x), start, delta)
        target = torch.where(start_found, flat_norm(start), target)
    best_delta, best_norm = delta.clone(), torch.full((n,), math.inf, device=x.device)
    lengths = step_lengths(config.step_size, config.steps, "cosine")
    for step in range(config.steps + 1):
        last = step == config.steps
        _, marg, grad = input_gradient(model, x + delta, y, config.loss, with_grad=not last)
        norm = flat_norm(delta)
        adversarial = marg < 0
        closer = adversarial & (norm < best_norm)
        best_delta[closer], best_norm[closer] = delta[closer], norm[closer]
        if last:
            break
        target = torch.where(adversarial, target * (1 - config.gamma), target * (1 + config.gamma))
        direction = normalise(delta - lengths[step] * normalise(grad))
        delta = (x + direction * per_example(target, x)).clamp(0.0, 1.0) - x
    return best_delta, best_norm


def min_norm_attack(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    config: MinimalConfig,
    *,
    attack_mask: torch.Tensor,
    batch_size: int,
    device: str | torch.device = "cpu",
    progress: bool = False,
    start: Found | None = None,
) -> Found:
    """The closest adversarial example the minimum-norm attack finds for each point of `attack_mask`.

    `start`: adversarials already found (e.g. by the cascade), from which the search shrinks the norm.
    """
    found = Found.empty(x)
    todo = torch.nonzero(attack_mask).squeeze(1)
    with progress_bar(len(todo), "minimum-norm", progress) as bar:
        for part in batches(len(todo), batch_size):
            idx = todo[part]
            xb, yb = place(x[idx], device), place(y[idx], device)
            if start is None:
                delta, norm = min_norm_run(model, xb, yb, config)
            else:
                delta, norm = min_norm_run(model, xb, yb, config, (place(start.points[idx], device) - xb),
                                           place(start.found[idx], device))
            found.record(idx, torch.isfinite(norm), xb + delta, norm)
            bar.update(len(idx))
    return found


def robust_accuracy_curve(distances: np.ndarray, eps_grid: list[float] | np.ndarray) -> np.ndarray:
    """Robust accuracy at each eps from per-example minimal distances (0 = misclassified, inf = none found)."""
    d = np.asarray(distances, dtype=np.float64)
    return np.array([float(np.mean(d > e + NORM_TOLERANCE)) if len(d) else math.nan for e in eps_grid])
