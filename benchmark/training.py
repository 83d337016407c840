"""Seeded minibatch training of classifiers (standard; adversarial methods plug in a loss)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from pydantic import BaseModel
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

# loss(model, x, y, generator) -> scalar; standard training is cross-entropy on the clean batch.
BatchLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def clean_cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard training loss."""
    return F.cross_entropy(model(x), y)


class FitReport(BaseModel):
    """What a training run did."""

    epochs: int
    batch_size: int
    lr: float
    seed: int
    seconds: float
    history: list[dict[str, float]]


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    seed: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    loss_fn: BatchLoss = clean_cross_entropy,
    progress: bool = True,
) -> FitReport:
    """Train `model` with Adam and a cosine schedule on (x, y); reproducible for a given seed."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = len(x) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15)
    history, start = [], time.time()
    for epoch in range(epochs):
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
    model.eval()
    return FitReport(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, seconds=time.time() - start, history=history)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Clean accuracy of `model` on (x, y)."""
    model.eval()
    hits = sum((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum().item() for i in range(0, len(x), batch_size))
    return hits / len(x)
