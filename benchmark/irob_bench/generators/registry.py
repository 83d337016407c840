"""Maps a card's architecture id to the module that builds its generator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from torch import nn

from irob_bench.errors import IrobError
from irob_bench.generators import biggan
from irob_bench.generators import acgan, cifar, sngan

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    acgan.ARCHITECTURE_ID: acgan.ACGANGenerator,
    cifar.ARCHITECTURE_ID: cifar.CifarGenerator,
    sngan.ARCHITECTURE_ID: sngan.SNGANGenerator,
}


class ExternalWeights(NamedTuple):
    """An architecture whose pretrained weights live outside the card folder (found and loaded by its own module)."""

    sha256: Callable[[str | Path | None], str]  # sha256(source): hash of the weights file it would load
    load: Callable[..., nn.Module]  # load(source, expected_sha256, **card kwargs): hash-checked network


EXTERNAL_WEIGHTS: dict[str, ExternalWeights] = {
    biggan.ARCHITECTURE_ID: ExternalWeights(biggan.weights_sha256, biggan.load_imagenet10_biggan),
}


def build_architecture(architecture: str, **kwargs: object) -> nn.Module:
    """Instantiate an untrained generator of a registered architecture."""
    try:
        factory = ARCHITECTURES[architecture]
    except KeyError:
        raise IrobError(f"unknown generator architecture {architecture!r} (known: {', '.join(ARCHITECTURES)})") from None
    return factory(**kwargs)
