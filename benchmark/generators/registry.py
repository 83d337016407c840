"""Maps a card's architecture id to the module that builds its generator."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from irob_bench.errors import IrobError
from irob_bench.generators.acgan import ARCHITECTURE_ID as ACGAN_ID
from irob_bench.generators.acgan import ACGANGenerator

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {ACGAN_ID: ACGANGenerator}


def build_architecture(architecture: str, **kwargs: object) -> nn.Module:
    """Instantiate an untrained generator of a registered architecture."""
    try:
        factory = ARCHITECTURES[architecture]
    except KeyError:
        raise IrobError(f"unknown generator architecture {architecture!r} (known: {', '.join(ARCHITECTURES)})") from None
    return factory(**kwargs)
