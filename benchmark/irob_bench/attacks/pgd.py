"""One PGD-L2 run (normalised gradient steps of given lengths, projection, best iterate): a cascade stage kind.

A point stops being attacked the moment it is broken: the active set shrinks every step.
"""

from __future__ import annotations

import torch

from irob_bench.attacks.common import Model, input_gradient, normalise, per_example, project_l2
from irob_bench.attacks.config import Loss


def pgd_run(
    model: Model, x: torch.Tensor, y: torch.Tensor, eps: float, delta: torch.Tensor, lengths: list[float], loss: Loss,
    *, target: torch.Tensor | None = None, eot_samples: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One PGD run on a batch from `delta`: (best perturbation, its margin, broken mask).

    `lengths` are absolute step lengths. The best iterate is the one with the lowest objective, or the
    first one that misclassifies; broken points leave the active set at once.
    """
    n = len(x)
    out_delta = delta.clone()
    out_margin = torch.full((n,), float("inf"), device=x.device)
    broken = torch.zeros(n, dtype=torch.bool, device=x.device)
    active, xa, ya, ta = torch.arange(n, device=x.device), x, y, target
    best_delta, best_value, best_margin = delta, out_margin.clone(), out_margin.clone()
    for step in range(len(lengths) + 1):
        last = step == len(lengths)
        value, marg, grad = input_gradient(model, xa + delta, ya, loss, with_grad=not last, target=ta, samples=eot_samples)
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
            ta = None if ta is None else ta[keep]
            best_delta, best_value, best_margin = best_delta[keep], best_value[keep], best_margin[keep]
        delta = project_l2(xa, delta - lengths[step] * normalise(grad), eps)
    return out_delta, out_margin, broken
