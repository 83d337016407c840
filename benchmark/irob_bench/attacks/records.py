"""What the attacks hand to a result besides numbers: the sanity flags (kept here, not in irob_bench.results, so
that the result can read the attack configuration without the attacks importing the result)."""

from __future__ import annotations

from irob_bench.common import FrozenModel


class SanityFlag(FrozenModel):
    """An AutoAttack-style warning that a number may be wrong (e.g. gradient masking)."""

    name: str
    message: str
    eps: float | None = None
