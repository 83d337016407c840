"""Trains a benchmark's conditional generator (ACGAN objective) on real data and writes small frozen weights."""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from irob_bench.artifacts import atomic_torch_save, atomic_write_text, sha256_file
from irob_bench.errors import IrobError
from irob_bench.generators import acgan, cifar, sngan
from irob_bench.generators.real_cifar import load_real_cifar
from irob_bench.generators.real_mnist import load_real_mnist
from irob_bench.reference.training import to_float_nchw
from irob_bench.registry import Registry
from irob_bench.runtime import deterministic, seed_everything


@dataclass(frozen=True)
class GANRecipe:
    """What `generators train NAME` needs: the real data loader and the generator/discriminator pair."""

    architecture: str
    load: Callable[[str | Path | None, str], tuple[np.ndarray, np.ndarray]]
    generator: Callable[[], nn.Module]
    discriminator: Callable[[], nn.Module]


RECIPES: Registry[GANRecipe] = Registry("generator trainer")
"""`generators train NAME` -> how to train that generator."""
RECIPES.add("mnist", GANRecipe(acgan.ARCHITECTURE_ID, load_real_mnist, acgan.ACGANGenerator, acgan.ACGANDiscriminator))
RECIPES.add("cifar", GANRecipe(cifar.ARCHITECTURE_ID, load_real_cifar, cifar.CifarGenerator, cifar.CifarDiscriminator))


TRAINED_ON = {sngan.ARCHITECTURE_ID: "cifar"}
"""Architectures trained by a command of their own (`generators train-sngan`) -> the recipe whose real data they learn."""


def real_data_for(architecture: str) -> Callable[[str | Path | None, str], tuple[np.ndarray, np.ndarray]]:
    """The real-data loader of the data that generators of a card's architecture id were trained on."""
    name = TRAINED_ON.get(architecture) or next((n for n, r in RECIPES.items() if r.architecture == architecture), None)
    if name is None:
        raise IrobError(f"no real data known for generator architecture {architecture!r}")
    return RECIPES[name].load


class GeneratorTrainingSummary(BaseModel):
    """What a training run did, written beside the weights."""

    architecture: str
    width: int | None
    fake_class_weight: float
    epochs: int
    batch_size: int
    seed: int
    lr: float
    betas: tuple[float, float]
    train_images: int
    seconds: float
    torch_version: str
    weights_sha256: str
    history: list[dict[str, float]]


def save_frozen_generator(generator: nn.Module, path: Path) -> str:
    """Save the generator's state_dict in float16 (halves the file; it is run in float32) atomically."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in generator.state_dict().items()}
    atomic_torch_save(state, path)
    return sha256_file(path)


@deterministic()  # torch's deterministic mode for the training only; the caller's setting comes back after
def train_generator(
    name: str,
    data_dir: str | Path | None,
    out_dir: str | Path,
    *,
    epochs: int = 8,
    batch_size: int = 64,
    seed: int = 0,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    width: int | None = None,
    fake_class_weight: float = 1.0,
    quiet: bool = False,
) -> GeneratorTrainingSummary:
    """Train G and D (ACGAN losses, Adam) on the real data of `name`; write generator.pt and training_summary.json.

    `width` (channels of the first/last layer of G and D) overrides the architecture's default.
    `fake_class_weight` weighs D's class loss on generated images: at 0 D's classifier learns real images only,
    so G must make images that a real-data classifier recognises (not features only D's fake-classifier sees)."""
    recipe = RECIPES.get(name)  # "unknown generator trainer NAME (available: ...)"
    if width is not None and "width" not in inspect.signature(recipe.generator).parameters:
        raise IrobError(f"the {name} generator has a fixed width; drop --width")
    images, labels = recipe.load(data_dir, "train")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = seed_everything(seed)
    x_all = to_float_nchw(images)
    y_all = torch.from_numpy(labels.astype(np.int64))
    size = {} if width is None else {"width": width}
    gen, disc = recipe.generator(**size), recipe.discriminator(**size)
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=betas)
    history: list[dict[str, float]] = []
    start = time.time()
    n_batches = len(x_all) // batch_size
    for epoch in range(epochs):
        perm = torch.randperm(len(x_all), generator=rng)
        sums = {"loss_d": 0.0, "loss_g": 0.0, "fake_class_acc": 0.0}
        bar = tqdm(range(n_batches), desc=f"epoch {epoch + 1}/{epochs}", disable=quiet, leave=False)
        for b in bar:
            idx = perm[b * batch_size : (b + 1) * batch_size]
            x_real, y_real = x_all[idx], y_all[idx]
            z = torch.randn(batch_size, gen.latent_dim, generator=rng)
            y_fake = torch.randint(0, gen.num_classes, (batch_size,), generator=rng)
            x_fake = gen(z, y_fake)

            adv_real, cls_real = disc(x_real)
            adv_fake, cls_fake = disc(x_fake.detach())
            loss_d = (
                F.binary_cross_entropy_with_logits(adv_real, torch.ones_like(adv_real))
                + F.binary_cross_entropy_with_logits(adv_fake, torch.zeros_like(adv_fake))
                + F.cross_entropy(cls_real, y_real)
                + fake_class_weight * F.cross_entropy(cls_fake, y_fake)
            )
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

            adv_fake, cls_fake = disc(x_fake)
            loss_g = F.binary_cross_entropy_with_logits(adv_fake, torch.ones_like(adv_fake)) + F.cross_entropy(
                cls_fake, y_fake
            )
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()

            sums["loss_d"] += loss_d.item()
            sums["loss_g"] += loss_g.item()
            sums["fake_class_acc"] += (cls_fake.argmax(1) == y_fake).float().mean().item()
            if b % 50 == 0:
                bar.set_postfix(loss_d=f"{loss_d.item():.3f}", loss_g=f"{loss_g.item():.3f}")
        record = {k: v / n_batches for k, v in sums.items()} | {"epoch": epoch + 1, "seconds": time.time() - start}
        history.append(record)
        if not quiet:
            print(json.dumps(record), flush=True)
        gen.eval()
        save_frozen_generator(gen, out_dir / "generator.pt")
        gen.train()
    summary = GeneratorTrainingSummary(
        architecture=recipe.architecture,
        width=width,
        fake_class_weight=fake_class_weight,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        lr=lr,
        betas=betas,
        train_images=len(x_all),
        seconds=time.time() - start,
        torch_version=torch.__version__,
        weights_sha256=sha256_file(out_dir / "generator.pt"),
        history=history,
    )
    atomic_write_text(out_dir / "training_summary.json", summary.model_dump_json(indent=2))
    return summary
