"""Seeded latents and canonical hashes of frozen splits (their .npz files: artifacts.write_npz)."""

from __future__ import annotations

import torch

from irob_bench.artifacts import sha256_bytes


def sample_latents(seed: int, size: int, latent_dim: int, priors: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw y ~ priors i.i.d. then z ~ N(0, I_d) from one seeded generator: (latents float32, labels int64)."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.multinomial(torch.tensor(priors, dtype=torch.float64), size, replacement=True, generator=gen)
    latents = torch.randn(size, latent_dim, generator=gen, dtype=torch.float32)
    return latents, labels.to(torch.int64)


def tensor_sha256(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's contiguous CPU bytes (dtype is part of what is hashed)."""
    return sha256_bytes(t.detach().cpu().contiguous().numpy().tobytes())


SIGNATURE_SEED = 0
SIGNATURE_PROJECTIONS = 8


def image_signature(images: torch.Tensor) -> list[float]:
    """16 numbers that summarise generated images for a comparison within a tolerance: for 8 seeded random unit
    directions r_k of one image's size, the mean over images of <x_i, r_k> and the root mean square of it.

    Float results of the same generator differ between CPUs, thread counts, BLAS builds and GPUs, so the images'
    exact bytes cannot be an identity check; a systematic change of the computation (code, weights, transform)
    moves these numbers far beyond that noise.
    """
    flat = images.detach().cpu().double().flatten(1)
    directions = torch.randn(SIGNATURE_PROJECTIONS, flat.shape[1], dtype=torch.float64,
                             generator=torch.Generator().manual_seed(SIGNATURE_SEED))
    projected = flat @ (directions / directions.norm(dim=1, keepdim=True)).T
    return [float(v) for v in projected.mean(dim=0)] + [float(v) for v in projected.pow(2).mean(dim=0).sqrt()]
