"""`runs examples`: add the example points (attacks/examples.py) to a stored run made before they were kept.

The run's first EXAMPLES correctly classified points are re-evaluated here with its own settings and seed. Every
point's randomness is keyed by its test-set index (attacks/noise.py), so with the run's attack settings each point
is attacked exactly as in the run. The clean predictions must reproduce the stored ones (else it is not the same
model: nothing is written); a point whose PGD outcome differs (this version reads the run's attack settings
differently: see the notes) is kept but marked (`matches` False), and the pages say so. The examples are added to the
run's outcomes file; every array already in it stays byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from irob_bench.artifacts import read_npz, write_npz
from irob_bench.attacks.examples import EXAMPLES, PREFIX, Examples, example_rows
from irob_bench.errors import IrobError
from irob_bench.gate.settings import GateOptions, plan_run
from irob_bench.gate.spotcheck import check_submission_file
from irob_bench.import_checks import known_card
from irob_bench.isolation.sandbox import Isolation, evaluate_isolated
from irob_bench.results import read_result_file


@dataclass(frozen=True)
class Backfill:
    """What was added: the examples, where, and the settings this version reads differently from the run's."""


    examples: Examples
    outcomes_file: Path
    notes: list[str]


def add_examples(result_path: Path, submission: Path, *, progress: bool = False,
                 isolation: Isolation | None = None) -> Backfill:
    """Re-evaluate the run's example points, check they reproduce its stored outcomes, add them to its outcomes file."""
    result = read_result_file(result_path)
    card = known_card(result)
    check_submission_file(result.submission, submission)
    path = Path(f"{result_path}.outcomes.npz")
    if not path.is_file():
        raise IrobError(f"{result_path}: its outcomes file {path} is missing")
    arrays = read_npz(path)
    rows = example_rows(arrays["clean_correct"], EXAMPLES)
    chosen = np.asarray(arrays["indices"], dtype=np.int64)[rows]
    options = GateOptions(progress=progress, isolation=isolation or Isolation())
    plan, notes = plan_run(result, options, card)
    plan = plan.model_copy(update={"indices": tuple(int(i) for i in chosen), "n_examples": len(chosen)})
    new = evaluate_isolated(submission, plan, options.isolation).outcomes
    if not np.asarray(new.clean_correct, bool).all() or new.examples is None or len(new.examples.indices) != len(rows):
        raise IrobError(f"{result_path}: the submission here does not classify the run's example points as the run "
                        "did; no examples written")  # fmt: skip
    stored_pgd = np.asarray(arrays["robust_pgd"], dtype=bool).reshape(len(arrays["clean_correct"]), -1)[rows]
    matches = (np.asarray(new.robust_pgd, bool).reshape(len(rows), -1) == stored_pgd).all(axis=1)
    examples = replace(new.examples, matches=matches)
    kept = {k: v for k, v in arrays.items() if not k.startswith(PREFIX)}
    write_npz(path, {**kept, **examples.arrays()})
    return Backfill(examples=examples, outcomes_file=path, notes=notes)
