"""Maps a card's architecture id to what builds its generator (lazy: a module is imported when its id is used)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from torch import nn

from irob_bench.registry import Registry

ARCHITECTURES: Registry[Callable[..., nn.Module]] = Registry("generator architecture")
ARCHITECTURES.add_lazy("acgan-mnist-v1", "irob_bench.generators.acgan:ACGANGenerator")
ARCHITECTURES.add_lazy("acgan-cifar32-v1", "irob_bench.generators.cifar:CifarGenerator")
ARCHITECTURES.add_lazy("sngan-cifar32-v1", "irob_bench.generators.sngan:SNGANGenerator")


class ExternalWeights(NamedTuple):
    """An architecture whose pretrained weights live outside the card folder (found and loaded by its own module)."""

    sha256: Callable[[str | Path | None], str]  # sha256(source): hash of the weights file it would load
    load: Callable[..., nn.Module]  # load(source, expected_sha256, **card kwargs): hash-checked network


EXTERNAL_WEIGHTS: Registry[ExternalWeights] = Registry("generator with external weights")
EXTERNAL_WEIGHTS.add_lazy("biggan-deep-128-imagenet10-v1", "irob_bench.generators.biggan:EXTERNAL_WEIGHTS")


def build_architecture(architecture: str, **kwargs: object) -> nn.Module:
    """Instantiate an untrained generator of a registered architecture."""
    return ARCHITECTURES.get(architecture)(**kwargs)
