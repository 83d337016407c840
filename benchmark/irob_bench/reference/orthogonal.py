"""Björck orthonormalisation of Linear weights for Lipschitz-constrained training (Anil et al. 2019).

While training, each Linear weight is the Björck-orthonormalised version of a free parameter, so every layer has
all singular values near 1 (the gradient norm is preserved). `bake` replaces the parametrisation by the plain
orthonormalised weight: the trained model is then an ordinary Sequential that the certifier bounds with exact SVDs
(the certificate never relies on the orthonormalisation being exact)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


class Bjorck(nn.Module):
    """W -> the first-order Björck iteration W <- 1.5 W - 0.5 W W^T W, started at W / sigma_max(W).

    The map s -> 1.5 s - 0.5 s^3 sends every singular value in (0, sqrt(3)) towards 1 and never above 1 from [0, 1]."""

    def __init__(self, iterations: int = 12) -> None:
        super().__init__()
        self.iterations = iterations

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """The nearest orthonormal matrix to `weight`, by Björck iterations after scaling its spectral norm to 1."""
        with torch.no_grad():
            scale = torch.linalg.matrix_norm(weight, ord=2)
        w = weight / scale
        wide = w.shape[0] <= w.shape[1]
        for _ in range(self.iterations):
            w = 1.5 * w - 0.5 * ((w @ w.T) @ w if wide else w @ (w.T @ w))
        return w


def orthonormalise(model: nn.Module, iterations: int = 12) -> nn.Module:
    """Give every Linear of `model` a Björck-orthonormalised weight (in place); returns the model."""
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            parametrize.register_parametrization(layer, "weight", Bjorck(iterations))
    return model


def bake(model: nn.Module) -> nn.Module:
    """Replace each parametrised weight by its current orthonormalised value (in place); returns the model."""
    for layer in model.modules():
        if parametrize.is_parametrized(layer, "weight"):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    return model
