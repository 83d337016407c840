"""Merging Lipschitz estimates into a dataset card's LipschitzSection (constants = max over estimators per class)."""

from __future__ import annotations

from pathlib import Path

from irob_bench.datasets import card_path, load_card
from irob_bench.datasets.build import write_card
from irob_bench.datasets.card import DatasetCard, LipschitzEstimate, LipschitzSection
from irob_bench.errors import IrobError


def merge_estimate(section: LipschitzSection | None, new: LipschitzEstimate) -> LipschitzSection:
    """The section with `new` added (replacing an earlier estimate of the same method).

    Only estimates at the same radius, delta and beta describe the same L_y(r); mixing them raises an IrobError.
    """
    if section is None:
        return LipschitzSection(
            radius=new.radius, delta=new.delta, beta=new.beta, estimates=[new], constants=list(new.per_class)
        )
    check_mergeable(section, new.method, new.radius, new.delta, new.beta)
    if any(len(e.per_class) != len(new.per_class) for e in section.estimates):
        raise IrobError(f"the {new.method} estimate has {len(new.per_class)} classes; the card's estimates differ")
    estimates = [e for e in section.estimates if e.method != new.method] + [new]
    constants = [max(values) for values in zip(*(e.per_class for e in estimates))]
    return LipschitzSection(
        radius=section.radius, delta=section.delta, beta=section.beta, estimates=estimates, constants=constants
    )


def check_mergeable(section: LipschitzSection | None, method: str, radius: float, delta: float, beta: float) -> None:
    """An estimate at (radius, delta, beta) can join the card's section: the same L_y(r) question (or no section);
    called before an estimate runs, so a --write that must fail fails before the work."""
    if section is not None and (radius, delta, beta) != (section.radius, section.delta, section.beta):
        raise IrobError(
            f"cannot merge a {method} estimate at r = {radius}, delta = {delta}, beta = {beta} into a card at "
            f"r = {section.radius}, delta = {section.delta}, beta = {section.beta} (re-run at the card's settings, or "
            "replace its estimates with --replace)"
        )


def write_estimate(card: str | Path, new: LipschitzEstimate, replace: bool = False) -> DatasetCard:
    """Merge `new` into the card (a shipped name, card folder or card.json) and write it atomically.

    With `replace`, the card's earlier estimates are dropped first (the way to change radius, delta or beta).
    """
    path = card_path(card)
    if path.name != "card.json":
        raise IrobError(f"{path}: estimates are written into a card folder's card.json only")
    current = load_card(path)
    if len(new.per_class) != current.num_classes:
        raise IrobError(f"{current.name} has {current.num_classes} classes; the estimate has {len(new.per_class)}")
    section = merge_estimate(None if replace else current.lipschitz, new)
    updated = current.model_copy(update={"lipschitz": section})
    write_card(updated, path.parent)
    return updated
