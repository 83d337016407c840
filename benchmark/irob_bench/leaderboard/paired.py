"""The stored per-example outcomes of leaderboard runs, aligned on shared test points for the paired tie test.

Reads only the arrays the tie test needs from a run's outcomes .npz (numpy, no torch). A run whose outcomes file
is missing or does not fit its result simply has none: its rows are never tied, and the page says so.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irob_bench.artifacts import read_npz
from irob_bench.common import same_eps
from irob_bench.results import EvaluationResult


@dataclass(frozen=True)
class RunOutcomes:
    """Which test points (by index) a run got right clean, and kept under PGD at each of its eps."""

    indices: np.ndarray  # (N,) int64
    eps: tuple[float, ...]
    clean: np.ndarray  # (N,) bool
    pgd: np.ndarray  # (N, E) bool

    def column(self, eps: float) -> np.ndarray | None:
        """PGD outcomes at one eps (None if the run did not evaluate it)."""
        k = next((k for k, e in enumerate(self.eps) if same_eps(e, eps)), None)
        return None if k is None else self.pgd[:, k]


def load_run_outcomes(result: EvaluationResult, root: Path = Path(".")) -> RunOutcomes | None:
    """A run's outcomes from its recorded file (relative paths from `root`), None if missing or not this run's."""
    if not result.outcomes_file:
        return None
    path = Path(result.outcomes_file)
    path = path if path.is_absolute() else root / path
    try:
        data = read_npz(path)
        indices = np.asarray(data["indices"], dtype=np.int64)
        clean = np.asarray(data["clean_correct"], dtype=bool)
        pgd = np.asarray(data["robust_pgd"], dtype=bool).reshape(len(clean), -1)
        eps = tuple(float(e) for e in data["eps"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    if len(indices) != result.settings.n_examples or len(eps) != pgd.shape[1] or len(indices) != len(clean):
        return None
    return RunOutcomes(indices=indices, eps=eps, clean=clean, pgd=pgd)


def aligned_pgd(
    run_ids: Sequence[int], outcomes: Mapping[int, RunOutcomes], eps: float
) -> list[np.ndarray | None]:
    """Per run (in order), its PGD outcomes at `eps` on the test points every run with outcomes shares (None: none).

    Runs evaluated on different points are compared on their intersection; with no common point nobody pairs."""
    present = [(i, outcomes[i]) for i in run_ids if i in outcomes and outcomes[i].column(eps) is not None]
    if len(present) < 2:
        return [None] * len(run_ids)
    common = set(present[0][1].indices.tolist())
    for _, o in present[1:]:
        common &= set(o.indices.tolist())
    if not common:
        return [None] * len(run_ids)
    keep = np.array(sorted(common), dtype=np.int64)
    columns: dict[int, np.ndarray] = {}
    for run_id, o in present:
        order = np.argsort(o.indices)
        rows = order[np.searchsorted(o.indices, keep, sorter=order)]
        columns[run_id] = o.column(eps)[rows]  # type: ignore[index]
    return [columns.get(i) for i in run_ids]
