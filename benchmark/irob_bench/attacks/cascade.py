"""The unconstrained attack: a cascade of stages (APGD-CE, APGD-T, Square, ...) over DESCENDING eps.

At each eps, each stage runs (per restart, per target) only on the points it can still change: not yet broken
within this eps by an earlier stage or a larger eps, and not robust at a larger eps. A point the whole cascade
leaves robust at eps_j is counted robust at every smaller eps too, and a point broken within eps_i (its
adversarial's norm is <= eps_i) is broken at every larger eps: eps nesting both ways, so robust accuracy is
monotone by construction. Going down from the largest eps, a point that is robust everywhere pays the full
budget once instead of once per eps; that is where a robust model's cost goes. All randomness is keyed per
example (irob_bench.attacks.noise), so a point's attack never depends on its batch or subset. Each (point, eps)
records the stage that broke it there, for AutoAttack's per-stage report.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from irob_bench.attacks.apgd import apgd_run
from irob_bench.attacks.common import (
    Found,
    Model,
    batches,
    flat_norm,
    predict_logits,
    progress_bar,
    random_start,
    step_lengths,
)
from irob_bench.attacks.config import StageConfig
from irob_bench.attacks.noise import example_keys
from irob_bench.attacks.pgd import pgd_run
from irob_bench.attacks.square import square_run
from irob_bench.attacks.verify import NORM_TOLERANCE
from irob_bench.runtime import place


@dataclass
class CascadeFound(Found):
    """Found adversarials plus, per (example, eps ascending), the index of the stage that broke it there (-1: none)."""

    stage: torch.Tensor | None = None


def stage_targets(logits: torch.Tensor, y: torch.Tensor, count: int) -> list[torch.Tensor]:
    """The `count` target classes of each example: its highest clean logits other than y, best first."""
    ranked = logits.scatter(1, y[:, None], float("-inf")).argsort(dim=1, descending=True)
    return [ranked[:, t] for t in range(min(count, logits.shape[1] - 1))]


def run_stage(
    model: Model, stage: StageConfig, x: torch.Tensor, y: torch.Tensor, eps: float, keys: torch.Tensor,
    target: torch.Tensor | None, eot_samples: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One run of one stage on a batch: (perturbations, broken mask)."""
    if stage.attack == "square":
        return square_run(model, x, y, eps, keys, stage.steps)
    start = random_start(x, keys, eps, on_sphere=stage.attack == "apgd")
    if stage.attack == "apgd":
        return apgd_run(model, x, y, eps, start, stage.steps, stage.loss, target=target, step_size=stage.step_size,
                        eot_samples=eot_samples)
    lengths = step_lengths(stage.step_size * eps, stage.steps, "cosine")
    delta, _, broken = pgd_run(model, x, y, eps, start, lengths, stage.loss, target=target, eot_samples=eot_samples)
    return delta, broken


def cascade_attack(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: list[float],
    stages: tuple[StageConfig, ...],
    *,
    base_key: int,
    indices: torch.Tensor,
    attack_mask: torch.Tensor,
    batch_size: int,
    device: str | torch.device = "cpu",
    eot_samples: int = 1,
    progress: bool = False,
) -> CascadeFound:
    """Run the stages over descending eps on the points of `attack_mask`; returns the closest adversarials found."""
    eps = sorted(eps)
    base = Found.empty(x)
    found = CascadeFound(base.points, base.found, base.distance, torch.full((len(x), len(eps)), -1, dtype=torch.long))
    latest = torch.full((len(x),), -1, dtype=torch.long)  # stage of each point's stored (closest) adversarial
    need_targets = any(s.targets for s in stages)
    logits = predict_logits(model, x, batch_size, device) if need_targets else None
    survived = torch.zeros(len(x), dtype=torch.bool)
    for e_index in reversed(range(len(eps))):
        radius = eps[e_index]
        for s_index, stage in enumerate(stages):
            targets = stage_targets(logits, y, stage.targets) if stage.targets else [None]
            for restart in range(stage.restarts):
                for t_index, target in enumerate(targets):
                    todo = torch.nonzero(attack_mask & ~survived & ~_within(found, radius)).squeeze(1)
                    label = f"{stage.name} eps={radius:g}" + (f" target {t_index + 1}" if stage.targets else "")
                    stream = ((e_index * 64 + s_index) * 64 + restart) * 64 + t_index
                    with progress_bar(len(todo), label + (f" run {restart + 1}" if stage.restarts > 1 else ""),
                                      progress) as bar:
                        for part in batches(len(todo), batch_size):
                            idx = todo[part]
                            xb, yb = place(x[idx], device), place(y[idx], device)
                            tb = None if target is None else place(target[idx], device)
                            keys = example_keys(base_key, indices[idx], stream=stream)
                            delta, broken = run_stage(model, stage, xb, yb, radius, keys, tb, eot_samples)
                            found.record(idx, broken, xb + delta, flat_norm(delta))
                            latest[idx[broken.cpu()]] = s_index
                            bar.update(len(idx))
        broken_here = attack_mask & _within(found, radius)
        found.stage[:, e_index] = torch.where(broken_here, latest, -1)
        survived |= attack_mask & ~broken_here
    return found


def _within(found: Found, radius: float) -> torch.Tensor:
    """(N,) points whose stored adversarial lies within `radius` (+ the verification tolerance)."""
    return found.distance <= radius + NORM_TOLERANCE
