"""Seeded minibatch training of classifiers (standard; adversarial methods plug in a loss)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from irob_bench.artifacts import atomic_torch_save
from irob_bench.attacks.common import normalise, project_l2
from irob_bench.errors import IrobError

# loss(model, x, y, generator) -> scalar; standard training is cross-entropy on the clean batch.
BatchLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def to_float_nchw(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) images -> float32 NCHW in [0, 1]."""
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


def clean_cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard training loss."""
    return F.cross_entropy(model(x), y)


def flip_and_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = 4) -> torch.Tensor:
    """Standard CIFAR augmentation, vectorised: random horizontal flips and integer shifts up to max_shift pixels (zero fill)."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = shifts[:, 0] * 2.0 / w
    theta[:, 1, 2] = shifts[:, 1] * 2.0 / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def augmented(loss_fn: BatchLoss) -> BatchLoss:
    """The same loss on a flipped-and-shifted copy of each batch."""

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return loss_fn(model, flip_and_shift(x, generator), y, generator)

    return loss


def _ascend_l2(objective: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float, steps: int, generator: torch.Generator) -> torch.Tensor:
    """Maximise objective(x') over the L2 eps-ball around x inside [0, 1] (normalised steps of 2.5 eps / steps)."""
    delta = normalise(torch.randn(x.shape, generator=generator)) * eps * 0.5 * torch.rand(len(x), generator=generator).view(-1, 1, 1, 1)
    delta = project_l2(x, delta, eps)
    for _ in range(steps):
        delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(x + delta), delta)
        delta = project_l2(x, delta.detach() + 2.5 * eps / steps * normalise(grad), eps)
    return (x + delta).detach()


def pgd_loss(eps: float, steps: int = 10) -> BatchLoss:
    """Madry et al. adversarial training: cross-entropy at the PGD-L2 worst case (model in eval mode for the attack)."""

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        model.eval()
        x_adv = _ascend_l2(lambda v: F.cross_entropy(model(v), y), x, eps, steps, generator)
        model.train()
        return F.cross_entropy(model(x_adv), y)

    return loss


def trades_loss(eps: float, beta: float = 6.0, steps: int = 10) -> BatchLoss:
    """TRADES (Zhang et al. 2019): CE(clean) + beta * KL(f(x) || f(x')) with x' maximising the KL in the ball."""

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            p_clean = F.softmax(model(x), dim=1)
        kl = lambda v: F.kl_div(F.log_softmax(model(v), dim=1), p_clean, reduction="sum")  # noqa: E731
        x_adv = _ascend_l2(kl, x, eps, steps, generator)
        model.train()
        logits = model(x)
        robust = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1), reduction="batchmean")
        return F.cross_entropy(logits, y) + beta * robust

    return loss


def lipschitz_margin_loss(eps: float, temperature: float = 1.0) -> BatchLoss:
    """Lipschitz-margin training (Tsuzuku et al. 2018, LMT) for a 1-Lipschitz body with orthonormal last-layer rows:
    every wrong logit gets + sqrt(2) * eps (what it may gain within the eps-ball), then cross-entropy at `temperature`."""

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        logits = model(x)
        shift = (2.0**0.5) * eps * (1.0 - F.one_hot(y, logits.shape[1]).to(logits.dtype))
        return F.cross_entropy(temperature * (logits + shift), y) / temperature

    return loss


class FitReport(BaseModel):
    """What a training run did."""

    epochs: int
    batch_size: int
    lr: float
    seed: int
    optimizer: str = "adam"
    weight_decay: float = 0.0
    seconds: float
    history: list[dict[str, float]]


def _optimizer(model: nn.Module, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam, or SGD with Nesterov momentum 0.9 (what convolutional nets with batch norm train best with)."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    raise IrobError(f"unknown optimizer {name!r} (available: adam, sgd)")


BATCH_SIZE = 128
"""Examples per training step of the references."""


def fit_settings(epochs: int, seed: int, n: int, identity: dict[str, object] | None = None, *,
                 batch_size: int = BATCH_SIZE, lr: float = 1e-3, optimizer: str = "adam",
                 weight_decay: float = 0.0) -> dict[str, object]:
    """What a training run is, as its checkpoint records it: fit's arguments and the caller's `identity`."""
    return {"epochs": epochs, "seed": seed, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
            "weight_decay": weight_decay, "n": n, **(identity or {})}


def resume_state(checkpoint: str | Path | None, settings: dict[str, object]) -> dict | None:
    """The saved state of a run with these settings, None without one; any other file is one IrobError line (a
    caller may check it before preparing the data, and fit checks it again)."""
    if checkpoint is None or not Path(checkpoint).is_file():
        return None
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        recorded = state["settings"]
    except Exception as exc:  # torch.load raises whatever unpickling a foreign file raises
        raise IrobError(f"{checkpoint} is not a training checkpoint ({type(exc).__name__})") from None
    if recorded != settings:
        raise IrobError(f"checkpoint {checkpoint} was made with other settings: {recorded} (now {settings})")
    return state


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    seed: int,
    batch_size: int = BATCH_SIZE,
    lr: float = 1e-3,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    loss_fn: BatchLoss = clean_cross_entropy,
    progress: bool = True,
    checkpoint: str | Path | None = None,
    identity: dict[str, object] | None = None,
) -> FitReport:
    """Train `model` with a one-cycle schedule on (x, y); reproducible for a given seed.

    With `checkpoint`, the whole state is saved atomically after every epoch and a run with the same settings
    resumes from it, ending with the same weights as an uninterrupted run (on the same machine). `identity`: what
    else the run's settings are (method, dataset, ...), so that a checkpoint of another run is refused."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = _optimizer(model, optimizer, lr, weight_decay)
    steps_per_epoch = len(x) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15)
    settings = fit_settings(epochs, seed, len(x), identity, batch_size=batch_size, lr=lr, optimizer=optimizer,
                            weight_decay=weight_decay)
    history: list[dict[str, float]] = []
    done, spent = 0, 0.0
    state = resume_state(checkpoint, settings)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        done, spent, history = state["epoch"], state["seconds"], state["history"]
    start = time.time() - spent
    for epoch in range(done, epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total, loss_sum = 0, 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for b in bar:
            idx = perm[b * batch_size : (b + 1) * batch_size]
            xb, yb = x[idx], y[idx]
            loss = loss_fn(model, xb, yb, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            total += len(idx)
            if b % 20 == 0:
                bar.set_postfix(loss=f"{loss_sum / total:.3f}")
        history.append(
            {
                "epoch": epoch + 1,
                "loss": loss_sum / total,
                "train_clean_acc_first5k": accuracy(model, x[:5000], y[:5000]),
                "seconds": time.time() - start,
            }
        )
        if progress:
            tqdm.write(str(history[-1]))
        if checkpoint is not None:
            atomic_torch_save(
                {"settings": settings, "model": model.state_dict(), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                 "epoch": epoch + 1, "seconds": time.time() - start, "history": history},
                checkpoint,
            )
    model.eval()
    return FitReport(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, optimizer=optimizer,
                     weight_decay=weight_decay, seconds=time.time() - start, history=history)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Clean accuracy of `model` on (x, y)."""
    model.eval()
    hits = sum((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum().item() for i in range(0, len(x), batch_size))
    return hits / len(x)
