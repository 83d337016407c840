"""DiffAugment (Zhao et al. 2020): differentiable colour, translation and cutout applied to every image D sees.

Applied to real and generated images alike, in D's loss and in G's, so D cannot memorise the small real set and G
still gets gradients through the augmentation. Every draw comes from the caller's torch.Generator (exact resume)."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def diff_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Colour, translation (up to 1/8 of the side) and cutout (a 1/2-side square) of images in [0, 1].

    Computed in D's [-1, 1] space, as in the paper: brightness +-0.5, and shifted-in or cut pixels become 0 there
    (mid-grey here)."""
    v = x * 2 - 1
    v = _cutout(_translate(_colour(v, generator), generator), generator)
    return (v + 1) / 2


def _uniform(n: int, generator: torch.Generator) -> torch.Tensor:
    """One U(0, 1) draw per image, shaped to broadcast over (C, H, W)."""
    return torch.rand(n, 1, 1, 1, generator=generator)


def _colour(v: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random brightness (+U(-0.5, 0.5)), saturation (x U(0, 2)) and contrast (x U(0.5, 1.5)) per image."""
    n = len(v)
    v = v + (_uniform(n, generator) - 0.5)
    grey = v.mean(dim=1, keepdim=True)
    v = (v - grey) * (_uniform(n, generator) * 2) + grey
    mean = v.mean(dim=(1, 2, 3), keepdim=True)
    return (v - mean) * (_uniform(n, generator) + 0.5) + mean


def _translate(v: torch.Tensor, generator: torch.Generator, ratio: float = 1 / 8) -> torch.Tensor:
    """Shift each image by whole pixels, up to `ratio` of its side in each direction; vacated pixels become 0."""
    n, _, h, w = v.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), generator=generator)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), generator=generator)
    rows = (torch.arange(h).view(1, h, 1) + dy + 1).clamp(0, h + 1)
    cols = (torch.arange(w).view(1, 1, w) + dx + 1).clamp(0, w + 1)
    padded = F.pad(v, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[torch.arange(n).view(n, 1, 1), rows, cols].permute(0, 3, 1, 2)


def _cutout(v: torch.Tensor, generator: torch.Generator, ratio: float = 1 / 2) -> torch.Tensor:
    """Zero one square of `ratio` of the side per image, centred anywhere (clipped at the border)."""
    n, _, h, w = v.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=generator) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=generator) - cw // 2
    ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
    return v * (~inside).unsqueeze(1).to(v.dtype)
