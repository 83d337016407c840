"""Counter-based random numbers keyed per example, so a point's noise never depends on its batch.

Each example carries a 32-bit key derived from (run seed, dataset index, stream); element d of its
noise is a hash of (key, d). Everything is vectorised integer arithmetic on int64 tensors.
"""

from __future__ import annotations

import math

import torch

_MASK = 0xFFFFFFFF


def _mul32(a: torch.Tensor, c: int) -> torch.Tensor:
    """(a * c) mod 2**32 for a < 2**32 held in int64, without signed overflow."""
    return ((a & 0xFFFF) * c + ((((a >> 16) * c) & 0xFFFF) << 16)) & _MASK


def mix32(a: torch.Tensor) -> torch.Tensor:
    """A 32-bit avalanche hash (lowbias32) applied elementwise."""
    a = a & _MASK
    a = a ^ (a >> 16)
    a = _mul32(a, 0x7FEB352D)
    a = a ^ (a >> 15)
    a = _mul32(a, 0x846CA68B)
    return a ^ (a >> 16)


def example_keys(base: int, indices: torch.Tensor, stream: int) -> torch.Tensor:
    """(B,) int64 keys for the examples with these dataset indices in one named stream of a run."""
    idx = indices.to(torch.int64).cpu()
    return mix32(mix32(mix32(idx + (base & _MASK)) ^ (stream & _MASK)) + 0x9E3779B9)


def keyed_normal(keys: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """(B, *shape) float32 standard normals, row b a pure function of keys[b] (Box-Muller on hashes)."""
    numel = math.prod(shape)
    counter = torch.arange(2 * numel, dtype=torch.int64)
    bits = mix32(keys[:, None] ^ mix32(counter)[None, :])
    u = (bits.to(torch.float64) + 0.5) / 2.0**32
    u1, u2 = u[:, :numel], u[:, numel:]
    normal = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
    return normal.to(torch.float32).reshape(len(keys), *shape)


def keyed_uniform(keys: torch.Tensor) -> torch.Tensor:
    """(B,) float32 uniforms in (0, 1), one per key."""
    return ((mix32(keys ^ 0x5BD1E995).to(torch.float64) + 0.5) / 2.0**32).to(torch.float32)


def draw_base(generator: torch.Generator) -> int:
    """One 31-bit base key from an explicit torch.Generator (the only place the run seed enters)."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
