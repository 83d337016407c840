"""`run_attacks`: the one entry point that attacks, verifies and sanity-checks a classifier at every eps."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from irob_bench.attacks import flags as sanity
from irob_bench.attacks.cascade import cascade_attack
from irob_bench.attacks.common import Model, misclassified
from irob_bench.attacks.config import AttackSuiteConfig
from irob_bench.attacks.examples import collect_examples, example_rows
from irob_bench.attacks.latent import LatentTask, latent_attack, spot_check
from irob_bench.attacks.minimal import min_norm_attack
from irob_bench.attacks.noise import draw_base, example_keys, keyed_uniform
from irob_bench.attacks.outcomes import AttackOutcomes, Tallies, derive_flags
from irob_bench.attacks.verify import regenerate, verify_images, verify_latents
from irob_bench.errors import IrobError


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[stage] = round(time.perf_counter() - start, 3)


def _check_inputs(
    x: torch.Tensor, y: torch.Tensor, eps: list[float], generator: nn.Module | None, z: torch.Tensor | None,
    indices: np.ndarray | torch.Tensor | None,
) -> list[float]:
    """Validate shapes and eps; return eps sorted ascending without duplicates."""
    if x.dim() < 2 or len(x) != len(y):
        raise IrobError(f"attacks: x {tuple(x.shape)} and y {tuple(y.shape)} disagree")
    if not eps or any(not math.isfinite(e) or e <= 0 for e in eps):
        raise IrobError(f"attacks: eps must be positive and finite, got {eps}")
    if (generator is None) != (z is None):
        raise IrobError("attacks: the in-distribution attack needs both a generator and the latents z")
    if z is not None and len(z) != len(x):
        raise IrobError(f"attacks: {len(z)} latents for {len(x)} points")
    if indices is not None and len(indices) != len(x):
        raise IrobError(f"attacks: {len(indices)} indices for {len(x)} points")
    return sorted(set(float(e) for e in eps))


def run_attacks(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: list[float],
    config: AttackSuiteConfig,
    *,
    generator: nn.Module | None = None,
    z: torch.Tensor | None = None,
    seed: int,
    batch_size: int,
    device: str | torch.device = "cpu",
    progress: bool = True,
    indices: np.ndarray | torch.Tensor | None = None,
    population: int | None = None,
) -> AttackOutcomes:
    """Clean accuracy, the unconstrained cascade, minimal distances, in-distribution attack (with a generator), flags.

    `indices` are the points' dataset indices (default 0..N-1): they key each point's randomness, so a
    point gets the same attack in any subset or batch. `population` is the number of points of the whole evaluation
    these are part of (default: these); it sets the spot-check's per-point rate. Robust accuracies come from verified
    examples only. Flags are derived from the per-example arrays and summable tallies, so parts merge exactly.
    """
    eps = _check_inputs(x, y, eps, generator, z, indices)
    x, y = x.detach().float().cpu(), y.detach().long().cpu()
    index = torch.arange(len(x)) if indices is None else torch.as_tensor(np.asarray(indices), dtype=torch.long)
    rng = torch.Generator().manual_seed(seed)
    keys = {name: draw_base(rng) for name in ("unconstrained", "flags", "latent")}
    timings: dict[str, float] = {}
    common = {"batch_size": batch_size, "device": device}
    draws = {**common, "draws": config.verify_draws}

    with _timed(timings, "clean"):
        correct = ~misclassified(model, x, y, batch_size, device, config.verify_draws)
    clean = correct.numpy()
    with _timed(timings, "unconstrained"):
        cascade = cascade_attack(model, x, y, eps, config.unconstrained, base_key=keys["unconstrained"], indices=index,
                                 attack_mask=correct, eot_samples=config.eot_samples, progress=progress, **common)
        cascade_checked = verify_images(model, x, y, cascade, eps[-1], **draws)
    robust_pgd = cascade_checked.robust(clean, eps)
    stage = np.where(robust_pgd | ~clean[:, None], -1, cascade.stage.numpy())
    rejected = {"cascade": cascade_checked.rejected}

    r_unc = cascade_checked.minimal_distance(clean)
    if config.minimal.enabled:
        with _timed(timings, "minimal"):
            minimal = min_norm_attack(model, x, y, config.minimal, attack_mask=correct, progress=progress,
                                      start=cascade, **common)
            minimal_checked = verify_images(model, x, y, minimal, math.inf, **draws)
        r_unc = np.minimum(r_unc, minimal_checked.minimal_distance(clean))
        rejected["minimal"] = minimal_checked.rejected
        # A verified minimum-norm adversarial within eps breaks the point there too: the last stage of the report.
        by_minimal = robust_pgd & ~minimal_checked.robust(clean, eps)
        robust_pgd, stage = robust_pgd & ~by_minimal, np.where(by_minimal, len(config.unconstrained), stage)

    rows = example_rows(clean)
    pgd_examples = (cascade.points[rows].float().cpu(), cascade_checked.distance)
    manifold_examples = None
    robust_in = r_in = None
    checked, changed = 0, []
    if generator is not None and z is not None:
        with _timed(timings, "in_distribution"):
            task = LatentTask(model, generator, x, y, z.detach().float().cpu(), batch_size, device, progress)
            found = latent_attack(task, config.latent, eps, attack_mask=correct)
            priority = keyed_uniform(example_keys(keys["latent"], index, stream=0))
            checked, changed = spot_check(task, config.latent, eps, found, correct, priority, population or len(x))
            latent_checked = verify_latents(model, generator, x, y, found, math.inf, **draws)
        robust_in, r_in = latent_checked.robust(clean, eps), latent_checked.minimal_distance(clean)
        # A verified on-manifold adversarial within eps is an unconstrained one too: it breaks the point there (the
        # report's last stage, only where it broke something), and the flag in_distribution_below_unconstrained says
        # the cascade missed it.
        by_latent = robust_pgd & ~robust_in
        robust_pgd, stage = robust_pgd & ~by_latent, np.where(by_latent, config.in_distribution_stage, stage)
        r_unc = np.minimum(r_unc, r_in)
        manifold_examples = (regenerate(generator, found.points[rows], y[rows], batch_size, device), latent_checked.distance)
        rejected["latent"] = latent_checked.rejected

    with _timed(timings, "flags"):
        gradient_bad = sanity.vanishing_gradients(model, x, y, correct, "ce", **common)
        noise, search = sanity.black_box_hits(model, x, y, robust_pgd, eps, config.flags, base_key=keys["flags"],
                                              indices=index, **common)
    examples = collect_examples(model, x, y, index, rows, pgd_examples, manifold_examples, batch_size, device)
    outcomes = AttackOutcomes(
        indices=index.numpy(), labels=y.numpy(), eps=eps, clean_correct=clean, robust_pgd=robust_pgd, r_unc=r_unc,
        config=config, seed=seed, robust_in=robust_in, r_in=r_in, timings=timings, stage=stage, examples=examples,
        tallies=Tallies(rejected=rejected, gradient_bad=gradient_bad, noise=noise, search=search,
                        spot_checked=checked, spot_changed=changed),
    )
    outcomes.flags = derive_flags(outcomes)
    return outcomes
