"""Output transforms composed after a generator network, e.g. the saturation map s_p (docs/science.md §1)."""

from __future__ import annotations

import math

import torch


def saturate(x: torch.Tensor, p: float, straight_through: bool = False) -> torch.Tensor:
    """s_p(v) = sign(2v - 1) |2v - 1|^(2/p) / 2 + 1/2; p = 2 is the identity, p = inf binarises.

    Binarisation's gradient is zero almost everywhere, so a gradient attack through it has nothing to follow. With
    `straight_through` (BPDA, Athalye et al. 2018) p = inf keeps its exact values and passes gradients through as
    the identity (s_2) does; finite p are differentiable and ignore it.
    """
    centred = 2 * x - 1
    if math.isinf(p):
        binary = (torch.sign(centred) + 1) / 2
        return binary + (x - x.detach()) if straight_through else binary  # x - x.detach() is exactly 0
    return torch.sign(centred) * centred.abs().pow(2.0 / p) / 2 + 0.5


def apply_output_transform(x: torch.Tensor, transform: dict, straight_through: bool = False) -> torch.Tensor:
    """Apply the card's output transform (currently only `saturation_p`) to generated images (`straight_through`:
    see `saturate`)."""
    if "saturation_p" in transform:
        return saturate(x, float(transform["saturation_p"]), straight_through)
    return x
