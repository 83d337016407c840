"""AutoAttack-style sanity flags: signs that a reported robust accuracy is an over-estimate.

- noise_finds_errors / black_box_finds_errors: random points on the eps-sphere, or a gradient-free
  random search, misclassify points the white-box attack left robust (gradient masking).
- vanishing_gradients: zero or non-finite input gradients on too many correctly classified points.
- in_distribution_below_unconstrained: on-manifold robust accuracy below the unconstrained one, which
  is impossible (an on-manifold adversarial is an adversarial): the unconstrained attack is weak.
- verification_rejected: an attack claimed adversarial examples that failed the independent re-check.
- later_stage_breaks_more: a later stage of the cascade broke more than a small fraction of what the earlier
  stages left robust: the robust accuracy depends on the attack, and a stronger one may lower it further.
- in_distribution_not_converged: the convergence spot-check (a larger budget on a sample of survivors)
  found on-manifold adversarials that the default budget missed.
"""

from __future__ import annotations

import numpy as np
import torch

from irob_bench.attacks.common import Model, batches, flat_norm, input_gradient, margin, normalise
from irob_bench.attacks.config import FlagsConfig, Loss
from irob_bench.attacks.noise import example_keys, keyed_normal, mix32
from irob_bench.attacks.records import SanityFlag
from irob_bench.runtime import place


def in_distribution_flags(
    eps: list[float], robust_pgd: np.ndarray, robust_in: np.ndarray, tolerance: float = 0.0,
    by_latent: np.ndarray | None = None,
) -> list[SanityFlag]:
    """Flag every eps where the in-distribution attack broke points the unconstrained attack left robust (more than
    `tolerance` of them, as a fraction), point by point: `by_latent` (N, E), those the evaluation then counted as
    broken in the unconstrained robust accuracy too; results made before that show them as robust_pgd & ~robust_in."""
    flags = []
    folded = np.zeros_like(robust_pgd, dtype=bool) if by_latent is None else by_latent
    for j, e in enumerate(eps):
        counted, missed = int(folded[:, j].sum()), int((robust_pgd[:, j] & ~robust_in[:, j]).sum())
        acc_pgd, acc_in = robust_pgd[:, j].mean(), robust_in[:, j].mean()
        if counted + missed <= tolerance * len(robust_pgd):
            continue
        if missed:  # wording of the results made before the fold, which imports re-derive
            message = (f"at eps={e:g} {missed} points the unconstrained attack left robust have a verified on-manifold "
                       f"adversarial within eps, which is an unconstrained one too: the unconstrained attack is weak "
                       f"there, and its robust accuracy {acc_pgd:.4f} (in-distribution {acc_in:.4f}) is too high by at "
                       f"least {missed / len(robust_pgd):.4f}")
        else:
            message = (f"at eps={e:g} {counted} points the unconstrained attacks left robust have a verified "
                       f"on-manifold adversarial within eps, which is an unconstrained one too: they count as broken "
                       f"in the unconstrained robust accuracy ({acc_pgd:.4f}), and the unconstrained attacks are weak "
                       f"there (a stronger preset may break more)")
        flags.append(SanityFlag(name="in_distribution_below_unconstrained", message=message, eps=e))
    return flags


def stage_robust(clean: np.ndarray, stage: np.ndarray, upto: int) -> np.ndarray:
    """(E,) robust counts after the cascade's stages 0..upto, from the (N, E) verified stage that broke each point."""
    return (clean[:, None] & ~((stage >= 0) & (stage <= upto))).sum(axis=0)


def stage_flags(eps: list[float], names: list[str], clean: np.ndarray, stage: np.ndarray, fraction: float
                ) -> list[SanityFlag]:
    """Flag every (stage, eps) where a stage after the first broke more than `fraction` of what earlier ones left."""
    flags = []
    for k in range(1, len(names)):
        before, after = stage_robust(clean, stage, k - 1), stage_robust(clean, stage, k)
        for j, e in enumerate(eps):
            gain = int(before[j] - after[j])
            if gain > fraction * before[j] and gain > 0:
                flags.append(SanityFlag(
                    name="later_stage_breaks_more",
                    message=f"{names[k]} broke {gain} of the {int(before[j])} points the earlier stages left robust at "
                    f"eps={e:g}: the robust accuracy depends on the attack; a stronger cascade may lower it further",
                    eps=e,
                ))
    return flags


def convergence_flags(eps: list[float], checked: int, changed: list[int], factor: int) -> list[SanityFlag]:
    """Flag every eps where the in-distribution spot-check with `factor` x the budget changed an outcome."""
    return [SanityFlag(
        name="in_distribution_not_converged",
        message=f"a {factor}x-budget spot-check of {checked} in-distribution survivors broke {n} more at eps={e:g}: "
        "the in-distribution robust accuracy of the unchecked points is likely over-estimated",
        eps=e,
    ) for e, n in zip(eps, changed) if n > 0]


def verification_flags(attack: str, rejected: int) -> list[SanityFlag]:
    """Flag an attack whose claimed adversarial examples failed re-verification."""
    if rejected == 0:
        return []
    return [SanityFlag(
        name="verification_rejected",
        message=f"{rejected} adversarial examples claimed by {attack} failed re-verification (counted as robust)",
    )]


def vanishing_gradients(
    model: Model, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, loss: Loss, batch_size: int,
    device: str | torch.device = "cpu",
) -> int:
    """How many points of `mask` have a zero or non-finite input gradient (a count that adds up over parts)."""
    rows = torch.nonzero(mask).squeeze(1)
    bad = 0
    for part in batches(len(rows), batch_size):
        idx = rows[part]
        _, _, grad = input_gradient(model, place(x[idx], device), place(y[idx], device), loss)
        norm = flat_norm(grad)
        bad += int((~torch.isfinite(norm) | (norm == 0)).sum())
    return bad


def gradient_flags(bad: int, total: int, config: FlagsConfig) -> list[SanityFlag]:
    """Flag when too many of the `total` correctly classified points have a zero or non-finite input gradient."""
    if total == 0 or bad / total <= config.vanishing_fraction:
        return []
    return [SanityFlag(
        name="vanishing_gradients",
        message=f"{bad} of {total} correctly classified points ({bad / total:.1%}) have zero or non-finite input "
        "gradients: gradient masking makes white-box robust accuracy an over-estimate",
    )]


@torch.no_grad()
def random_search(
    model: Model, x: torch.Tensor, y: torch.Tensor, eps: float, keys: torch.Tensor, draws: int, queries: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient-free search on the eps-sphere: `draws` random points, then `queries` greedy perturbations.

    Returns (broken by the random draws, broken by draws or search), per example.
    """
    shape = tuple(x.shape[1:])
    best = torch.full((len(x),), float("inf"), device=x.device)
    delta = torch.zeros_like(x)
    noise_hit = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for k in range(draws + queries):
        direction = keyed_normal(mix32(keys + 0x632BE5AB * (k + 1)), shape).to(x.device)
        if k < draws:
            candidate = normalise(direction)
        else:
            sigma = 0.5 * (1 - (k - draws) / max(queries, 1)) + 0.05
            candidate = normalise(normalise(delta) + sigma * normalise(direction))
        candidate = (x + candidate * eps).clamp(0.0, 1.0) - x
        value = margin(model(x + candidate), y)
        better = value < best
        delta[better], best[better] = candidate[better], value[better]
        if k < draws:
            noise_hit |= value < 0
    return noise_hit, best < 0


def black_box_hits(
    model: Model, x: torch.Tensor, y: torch.Tensor, robust: np.ndarray, eps: list[float], config: FlagsConfig, *,
    base_key: int, indices: torch.Tensor, batch_size: int, device: str | torch.device = "cpu",
) -> tuple[list[int], list[int]]:
    """At each eps, how many points the white-box attack left robust random noise, and noise or the random search,
    break (counts that add up over parts)."""
    noise, search = [0] * len(eps), [0] * len(eps)
    if config.noise_draws + config.random_search_queries == 0:
        return noise, search
    for j, e in enumerate(eps):
        rows = torch.from_numpy(np.nonzero(robust[:, j])[0])
        for part in batches(len(rows), batch_size):
            idx = rows[part]
            keys = example_keys(base_key, indices[idx], stream=j)
            hit_noise, hit_any = random_search(model, place(x[idx], device), place(y[idx], device), e, keys,
                                               config.noise_draws, config.random_search_queries)
            noise[j] += int(hit_noise.sum())
            search[j] += int(hit_any.sum())
    return noise, search


def black_box_flags(eps: list[float], noise: list[int], search: list[int], robust: np.ndarray) -> list[SanityFlag]:
    """Flag every eps where random noise or the random search broke points the white-box attack left robust."""
    flags = []
    for j, e in enumerate(eps):
        total = int(robust[:, j].sum())
        if noise[j]:
            flags.append(_found_flag("noise_finds_errors", f"random noise on the eps-sphere broke {noise[j]}", total, e))
        if search[j] > noise[j]:
            flags.append(_found_flag("black_box_finds_errors", f"a black-box random search broke {search[j]}", total, e))
    return flags


def _found_flag(name: str, what: str, total: int, eps: float) -> SanityFlag:
    return SanityFlag(
        name=name,
        message=f"{what} of {total} points the white-box attack left robust at eps={eps:g}: gradient masking likely",
        eps=eps,
    )
