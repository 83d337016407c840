"""Small shared pieces of every attack: losses, per-example norms, batched prediction, step schedules."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from irob_bench.attacks.config import Loss, Schedule
from irob_bench.attacks.noise import keyed_normal, keyed_uniform
from irob_bench.runtime import place

Model = Callable[[torch.Tensor], torch.Tensor]


NO_CLASS = -1  # what `predict` says for a row of logits that holds a NaN or an infinity: no class, so never correct


def answering(logits: torch.Tensor) -> torch.Tensor:
    """(N,) rows whose logits are all finite: the rows that name a class (the others count as misclassified)."""
    return torch.isfinite(logits).all(dim=1)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) logit of the true class minus the best other logit: negative iff misclassified; -inf for a row with a
    non-finite logit (it predicts no class), so a model cannot look robust by answering NaN off its clean points."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return torch.where(answering(logits), true - other, float("-inf"))


def _dlr_scale(logits: torch.Tensor, targeted: bool) -> torch.Tensor:
    """(N,) DLR's scale-invariance denominator: z_pi1 - z_pi3, or z_pi1 - (z_pi3 + z_pi4) / 2 when targeted."""
    top = logits.topk(min(4, logits.shape[1]), dim=1).values
    if top.shape[1] < 3:
        return torch.ones(len(logits), device=logits.device, dtype=logits.dtype)
    third = (top[:, 2] + top[:, 3]) / 2 if targeted and top.shape[1] >= 4 else top[:, 2]
    return top[:, 0] - third + 1e-12


def objective(logits: torch.Tensor, y: torch.Tensor, loss: Loss, target: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) per-example quantity an attack MINIMISES: the margin, minus the cross-entropy, or a DLR ratio.

    DLR (Croce & Hein 2020) divides the margin by the spread of the top logits, so the step does not depend
    on the logit scale; "dlr-targeted" minimises (z_y - z_target) over that spread.
    """
    if loss == "margin":
        return margin(logits, y)
    if loss == "ce":
        return -F.cross_entropy(logits, y, reduction="none")
    if loss == "dlr":
        return margin(logits, y) / _dlr_scale(logits, targeted=False)
    if target is None:
        raise ValueError("the dlr-targeted loss needs a target class per example")
    gap = logits.gather(1, y[:, None]).squeeze(1) - logits.gather(1, target[:, None]).squeeze(1)
    return gap / _dlr_scale(logits, targeted=True)


def flat_norm(t: torch.Tensor) -> torch.Tensor:
    """(N,) L2 norm of each example of a batch."""
    return torch.linalg.vector_norm(t.flatten(1), dim=1)


def per_example(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape an (N,) vector to broadcast against a batch shaped like `like`."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def normalise(t: torch.Tensor) -> torch.Tensor:
    """Each example scaled to unit L2 norm (zero stays zero)."""
    return t / per_example(flat_norm(t).clamp_min(1e-12), t)


def project_l2(x: torch.Tensor, delta: torch.Tensor, eps: torch.Tensor | float) -> torch.Tensor:
    """Project delta onto the L2 ball of radius eps (per example), then clip x + delta to [0, 1]."""
    eps_t = torch.as_tensor(eps, dtype=delta.dtype, device=delta.device)
    factor = (eps_t / flat_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    delta = delta * per_example(factor.expand(len(delta)), delta)
    return (x + delta).clamp(0.0, 1.0) - x


def random_start(x: torch.Tensor, keys: torch.Tensor, radius: float, on_sphere: bool) -> torch.Tensor:
    """A keyed random perturbation: Gaussian direction, length radius (on_sphere) or uniform in [0, radius]; clipped."""
    direction = normalise(keyed_normal(keys, tuple(x.shape[1:])).to(x.device))
    length = radius * (torch.ones(len(x)) if on_sphere else keyed_uniform(keys)).to(x.device)
    return (x + direction * per_example(length, x)).clamp(0.0, 1.0) - x


def step_lengths(base: float, steps: int, schedule: Schedule) -> list[float]:
    """The step length at each iteration: constant, cosine-annealed to ~0, or halved at 50% and 75%."""
    if schedule == "constant":
        return [base] * steps
    if schedule == "cosine":
        return [base * 0.5 * (1.0 + math.cos(math.pi * t / steps)) for t in range(steps)]
    return [base * (0.5 ** ((t >= steps // 2) + (t >= 3 * steps // 4))) for t in range(steps)]


def batches(n: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices covering range(n)."""
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


@torch.no_grad()
def predict_logits(model: Model, x: torch.Tensor, batch_size: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """(N, K) logits, computed in batches on `device`, returned on the CPU."""
    out = [model(place(x[s], device)).float().cpu() for s in batches(len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


def predict(model: Model, x: torch.Tensor, batch_size: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """(N,) predicted classes (NO_CLASS where a logit is NaN or infinite), computed in batches on `device`, returned
    on the CPU."""
    if len(x) == 0:
        return torch.empty(0, dtype=torch.long)
    logits = predict_logits(model, x, batch_size, device)
    return torch.where(answering(logits), logits.argmax(dim=1), NO_CLASS)


def misclassified(model: Model, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: str | torch.device = "cpu",
                  draws: int = 1) -> torch.Tensor:
    """(N,) misclassified in a strict majority of `draws` forward passes (one pass for deterministic models)."""
    votes = sum((predict(model, x, batch_size, device) != y).long() for _ in range(draws))
    return 2 * votes > draws


def input_gradient(
    model: Model, x: torch.Tensor, y: torch.Tensor, loss: Loss, with_grad: bool = True,
    target: torch.Tensor | None = None, samples: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(objective (N,), margin (N,), gradient of the objective w.r.t. x or None) for a batch; no parameter grads.

    `samples` > 1 averages objective, margin and gradient over that many passes: Expectation over
    Transformation (EOT) for randomized models, whose every forward pass draws new randomness.
    """
    values, margins, grads = [], [], []
    for _ in range(samples):
        if not with_grad:
            with torch.no_grad():
                logits = model(x)
            values.append(objective(logits, y, loss, target))
            margins.append(margin(logits, y))
            continue
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            logits = model(xg)
            value = objective(logits, y, loss, target)
            (grad,) = torch.autograd.grad(value.sum(), xg)
        values.append(value.detach())
        margins.append(margin(logits.detach(), y))
        grads.append(grad)
    if samples == 1:
        return values[0], margins[0], grads[0] if grads else None
    return _mean(values), _mean(margins), _mean(grads) if grads else None


def _mean(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(tensors).mean(dim=0)


def progress_bar(total: int, desc: str, enabled: bool) -> tqdm:
    """A tqdm bar over examples that vanishes when done (and is silent when disabled); used as a context manager, it
    also vanishes when the work stops (an error, Ctrl-C, SIGTERM), so the one-line message starts a clean line."""
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, unit="ex")


@dataclass
class Found:
    """Per example, the closest adversarial point an attack found: image (or latent), flag and distance."""

    points: torch.Tensor
    found: torch.Tensor
    distance: torch.Tensor

    @classmethod
    def empty(cls, like: torch.Tensor) -> Found:
        """Nothing found yet: points are a copy of `like` (clean images or stored latents)."""
        n = len(like)
        return cls(like.detach().cpu().clone(), torch.zeros(n, dtype=torch.bool), torch.full((n,), math.inf))

    def record(self, idx: torch.Tensor, hit: torch.Tensor, points: torch.Tensor, distance: torch.Tensor) -> None:
        """Store points[hit] for examples idx[hit] where they are closer than what is stored."""
        hit = hit.cpu()
        closer = hit & (distance.cpu() < self.distance[idx])
        rows = idx[closer]
        self.points[rows] = points.detach().cpu()[closer]
        self.distance[rows] = distance.detach().cpu()[closer].to(self.distance.dtype)
        self.found[rows] = True
