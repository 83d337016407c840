"""Benchmark distributions: `load(name)` gives the frozen generator, card and splits of one of them.

The shipped distributions (card, generator weights, test latents, checker) are package data: common.shipped_data_dir().
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from irob_bench.common import field_error, shipped_data_dir
from irob_bench.datasets.card import DatasetCard
from irob_bench.errors import IrobError

if TYPE_CHECKING:
    from irob_bench.datasets.distribution import BenchmarkDataset

DATA_DIR = shipped_data_dir()
"""The folder of shipped distributions, one subfolder (holding card.json) per name."""

__all__ = ["BenchmarkDataset", "ConditionalGenerator", "DatasetCard", "DATA_DIR", "available", "card_path", "largest_test_size", "load", "load_card"]


def available(pattern: str | None = None) -> list[str]:
    """Names of the benchmark distributions shipped with the package (folders holding a card.json), optionally only
    those matching a glob ('saturated-cifar-*', case-sensitive as the names are)."""
    names = sorted(p.parent.name for p in DATA_DIR.glob("*/card.json"))
    return names if pattern is None else [name for name in names if fnmatch.fnmatchcase(name, pattern)]


def card_path(name: str | Path) -> Path:
    """The card.json of a shipped dataset name, or of a card file or folder given by path."""
    candidate = Path(name)
    if candidate.suffix == ".json" and candidate.is_file():
        return candidate.resolve()
    if (candidate / "card.json").is_file() and (candidate.is_absolute() or str(name).startswith(".") or "/" in str(name)):
        return (candidate / "card.json").resolve()
    shipped = DATA_DIR / str(name) / "card.json"
    if shipped.is_file():
        return shipped
    raise IrobError(f"unknown dataset {str(name)!r} (available: {', '.join(available()) or 'none'})")


def load_card(name: str | Path) -> DatasetCard:
    """Read and validate a card."""
    path = card_path(name)
    try:
        return DatasetCard.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise IrobError(f"{path}: invalid card: {field_error(exc)}") from None


def largest_test_size(names: list[str] | None = None) -> int:
    """The largest test split among these cards (default: every shipped one): the most points a run can ask for
    before it is known which dataset the submission names."""
    return max(load_card(name).splits["test"].size for name in (names or available()))


def load(name: str | Path) -> BenchmarkDataset:
    """Load a benchmark distribution by shipped name (e.g. "mnist") or by path to its card."""
    from irob_bench.datasets.distribution import BenchmarkDataset

    path = card_path(name)
    return BenchmarkDataset(load_card(path), path.parent)


def __getattr__(name: str) -> Any:
    """BenchmarkDataset and ConditionalGenerator on first use: they import torch, which reading cards (`datasets list`,
    `ceiling`, the leaderboard) does not need."""
    if name in ("BenchmarkDataset", "ConditionalGenerator"):
        from irob_bench.datasets import distribution

        return getattr(distribution, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
