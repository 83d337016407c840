"""APGD-L2 (Croce & Hein 2020, "Reliable evaluation of adversarial robustness"), written from the paper.

Per example: a step of 2 eps along the normalised gradient, projected onto the eps-ball and [0, 1], mixed
with the previous move (momentum alpha = 0.75). At checkpoints w_j (w_0 = 0, p_1 = 0.22, p_{j+1} = p_j +
max(p_j - p_{j-1} - 0.03, 0.06) of the budget) the step is halved, and the iterate reset to the best point
so far, where fewer than rho = 75% of the steps since the last checkpoint improved the objective, or where
the step was not halved last time and the best objective has not improved since. Broken points leave the
active set at once, so a batch costs passes only for the points still standing.
"""

from __future__ import annotations

import torch

from irob_bench.attacks.common import Model, input_gradient, normalise, per_example, project_l2
from irob_bench.attacks.config import Loss

MOMENTUM = 0.75
RHO = 0.75


def checkpoint_windows(steps: int) -> list[int]:
    """Lengths of the windows between APGD's checkpoints for a budget of `steps` iterations."""
    first, shrink, shortest = max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    windows, length, total = [], first, 0
    while total + length <= steps:
        windows.append(length)
        total += length
        length = max(length - shrink, shortest)
    return windows


class _State:
    """The per-example tensors of one APGD run over the still-active examples; `keep` drops the broken ones."""

    def __init__(self, **tensors: torch.Tensor | None) -> None:
        self.__dict__.update(tensors)

    def keep(self, mask: torch.Tensor) -> None:
        """Keep only the rows of every tensor where `mask` is set (the points still attacked)."""
        for name, value in list(self.__dict__.items()):
            if value is not None:
                setattr(self, name, value[mask])


def apgd_run(
    model: Model, x: torch.Tensor, y: torch.Tensor, eps: float, delta: torch.Tensor, steps: int, loss: Loss,
    *, target: torch.Tensor | None = None, step_size: float = 2.0, eot_samples: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One APGD run on a batch from `delta`: (the first adversarial perturbation, or the best one; broken mask)."""
    n, dev = len(x), x.device
    out_delta, broken = delta.clone(), torch.zeros(n, dtype=torch.bool, device=dev)
    windows = checkpoint_windows(steps)
    checkpoints = {sum(windows[: j + 1]) for j in range(len(windows))}
    s = _State(x=x, y=y, target=target, delta=delta, previous=delta, step=torch.full((n,), step_size * eps, device=dev),
               rows=torch.arange(n, device=dev), improved=torch.zeros(n, device=dev),
               last_halved=torch.ones(n, dtype=torch.bool, device=dev), old_value=None, value=None, grad=None)

    def evaluate() -> bool:
        """Objective and gradient at the iterates; broken points are stored and leave. False once none is left."""
        s.value, marg, s.grad = input_gradient(model, s.x + s.delta, s.y, loss, target=s.target, samples=eot_samples)
        hit = marg < 0
        if bool(hit.any()):
            out_delta[s.rows[hit]], broken[s.rows[hit]] = s.delta[hit], True
            s.keep(~hit)
        return len(s.rows) > 0

    if not evaluate():
        return out_delta, broken
    s.best_delta, s.best_value, s.best_grad, s.last_best = s.delta, s.value, s.grad, s.value
    since = 0
    for it in range(steps):
        alpha = MOMENTUM if it > 0 else 1.0
        proposal = project_l2(s.x, s.delta - per_example(s.step, s.delta) * normalise(s.grad), eps)
        moved = s.delta + alpha * (proposal - s.delta) + (1 - alpha) * (s.delta - s.previous)
        s.previous, s.delta, s.old_value = s.delta, project_l2(s.x, moved, eps), s.value
        if not evaluate():
            return out_delta, broken
        s.improved = s.improved + (s.value < s.old_value).float()
        better = s.value < s.best_value
        s.best_delta = torch.where(per_example(better, s.delta), s.delta, s.best_delta)
        s.best_grad = torch.where(per_example(better, s.grad), s.grad, s.best_grad)
        s.best_value = torch.where(better, s.value, s.best_value)
        since += 1
        if it + 1 in checkpoints:
            halve = (s.improved <= RHO * since) | (~s.last_halved & (s.last_best <= s.best_value))
            s.step = torch.where(halve, s.step / 2, s.step)
            s.delta = torch.where(per_example(halve, s.delta), s.best_delta, s.delta)
            s.grad = torch.where(per_example(halve, s.grad), s.best_grad, s.grad)
            s.last_halved, s.last_best, s.improved, since = halve, s.best_value, torch.zeros_like(s.improved), 0
    out_delta[s.rows] = s.best_delta
    return out_delta, broken
