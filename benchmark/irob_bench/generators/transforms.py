"""Output transforms composed after a generator network, e.g. the saturation map s_p (docs/science.md §1)."""

from __future__ import annotations

import math

import torch


def saturate(x: torch.Tensor, p: float, straight_through: bool = False) -> torch.Tensor:
    """s_p(v) = sign(2v - 1) |2v - 1|^(2/p) / 2 + 1/2; p = 2 is the identity, p = inf binarises.

    `straight_through` gives the gradient an attack can follow, with exactly the same values. Binarisation's
    gradient is zero almost everywhere, so p = inf passes gradients through as the identity (s_2) does (BPDA, Athalye
    et al. 2018). For p > 2 the slope at a pixel of exactly 1/2 is infinite and autograd makes it NaN, which would
    stall that image's attack for good (2 of 100 p = 8 points in one 165-step run); there the pixel contributes no
    gradient instead. Without it the map is the true one, as Lipschitz estimates must see it (NaN marks the infinite
    slope).
    """
    centred = 2 * x - 1
    if math.isinf(p):
        binary = (torch.sign(centred) + 1) / 2
        return binary + (x - x.detach()) if straight_through else binary  # x - x.detach() is exactly 0
    magnitude = centred.abs()
    if straight_through:  # equal values: sign(0) = 0 multiplies the clamped pixels; their gradient becomes 0, not NaN
        magnitude = magnitude.clamp_min(torch.finfo(x.dtype).tiny)
    return torch.sign(centred) * magnitude.pow(2.0 / p) / 2 + 0.5


def apply_output_transform(x: torch.Tensor, transform: dict, straight_through: bool = False) -> torch.Tensor:
    """Apply the card's output transform (currently only `saturation_p`) to generated images (`straight_through`:
    see `saturate`)."""
    if "saturation_p" in transform:
        return saturate(x, float(transform["saturation_p"]), straight_through)
    return x
