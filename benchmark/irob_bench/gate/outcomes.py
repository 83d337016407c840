"""Per-example outcomes keyed by test-set index, restricted to the examples and eps two runs share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irob_bench.attacks.outcomes import AttackOutcomes
from irob_bench.common import same_eps
from irob_bench.errors import IrobError


@dataclass(frozen=True)
class PerExample:
    """Which examples a model got right (clean), kept right under attack and had certified at each eps, by test-set index."""

    indices: np.ndarray  # (N,) int64 test-set indices
    eps: tuple[float, ...]  # (E,) ascending
    clean: np.ndarray  # (N,) bool
    pgd: np.ndarray  # (N, E) bool
    in_distribution: np.ndarray | None  # (N, E) bool, None if the in-distribution attack did not run
    certified: np.ndarray | None = None  # (N, E) bool, None if the run kept no per-point certificates

    @classmethod
    def from_outcomes(cls, outcomes: AttackOutcomes, indices: np.ndarray, eps: list[float]) -> PerExample:
        """The pass/fail arrays of attack outcomes, keyed by these test-set indices and eps."""
        indices = np.asarray(indices, dtype=np.int64)
        clean = np.asarray(outcomes.clean_correct, dtype=bool)
        pgd = np.asarray(outcomes.robust_pgd, dtype=bool).reshape(len(clean), -1)
        in_dist, certified = (None if a is None else np.asarray(a, dtype=bool).reshape(len(clean), -1)
                              for a in (outcomes.robust_in, outcomes.certified))
        if len(indices) != len(clean) or pgd.shape[1] != len(eps) or any(
            a is not None and a.shape != pgd.shape for a in (in_dist, certified)
        ):
            raise IrobError(
                f"outcomes do not fit their result: {len(clean)} examples x {pgd.shape[1]} eps, "
                f"expected {len(indices)} x {len(eps)}"
            )
        return cls(indices=indices, eps=tuple(float(e) for e in eps), clean=clean, pgd=pgd, in_distribution=in_dist,
                   certified=certified)

    def restrict(self, indices: np.ndarray, eps: list[float] | tuple[float, ...]) -> PerExample:
        """The same outcomes on a subset of examples (in the given order) and of eps (all must be present)."""
        position = {int(i): k for k, i in enumerate(self.indices)}
        missing = [int(i) for i in indices if int(i) not in position]
        if missing:
            raise IrobError(f"{len(missing)} of the requested examples are not in these outcomes (e.g. index {missing[0]})")
        rows = np.array([position[int(i)] for i in indices], dtype=np.int64)
        cols = np.array([self._eps_column(e) for e in eps], dtype=np.int64)
        cells = np.ix_(rows, cols)
        return PerExample(
            indices=self.indices[rows],
            eps=tuple(float(e) for e in eps),
            clean=self.clean[rows],
            pgd=self.pgd[cells],
            in_distribution=None if self.in_distribution is None else self.in_distribution[cells],
            certified=None if self.certified is None else self.certified[cells],
        )

    def _eps_column(self, eps: float) -> int:
        for k, e in enumerate(self.eps):
            if same_eps(e, eps):
                return k
        raise IrobError(f"eps {eps:g} is not in these outcomes (they have {', '.join(f'{e:g}' for e in self.eps)})")


def common_eps(first: PerExample, second: PerExample) -> list[float]:
    """The eps both evaluated, ascending."""
    return [e for e in first.eps if any(same_eps(e, f) for f in second.eps)]


def common_indices(baseline: PerExample, new: PerExample) -> np.ndarray:
    """The new run's examples that the baseline also holds, in the new run's order."""
    held = set(baseline.indices.tolist())
    return np.array([i for i in new.indices.tolist() if i in held], dtype=np.int64)
