"""Output transforms composed after a generator network, e.g. the saturation map s_p (docs/science.md §1)."""

from __future__ import annotations

import math

import torch


def saturate(x: torch.Tensor, p: float) -> torch.Tensor:
    """s_p(v) = sign(2v - 1) |2v - 1|^(2/p) / 2 + 1/2; p = 2 is the identity, p = inf binarises."""
    centred = 2 * x - 1
    if math.isinf(p):
        return (torch.sign(centred) + 1) / 2
    return torch.sign(centred) * centred.abs().pow(2.0 / p) / 2 + 0.5


def apply_output_transform(x: torch.Tensor, transform: dict) -> torch.Tensor:
    """Apply the card's output transform (currently only `saturation_p`) to generated images."""
    if "saturation_p" in transform:
        return saturate(x, float(transform["saturation_p"]))
    return x
