"""The untrusted side of an isolated evaluation (`python -m irob_bench.isolation.worker SCRATCH`): read request.json, run the
submission and its gradient attacks, write result.json and outcomes.npz (or error.txt) into SCRATCH, nothing else;
a validate request runs only the pre-scoring checks and writes validation.json.

The parent (isolation.py) chose the sandbox, limits and environment; it checks everything written here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from irob_bench.common import FrozenModel
from irob_bench.evaluate import EvaluateOptions

Kind = Literal["evaluate", "validate"]
VALIDATION_FILE = "validation.json"
UNSAFE_LOAD = "rule: torch.load(weights_only=False) can run a pickle payload; load weights with irob_bench.plugin.load_weights"


class WorkerRequest(FrozenModel):
    """What the parent asks the worker to do: evaluate, or only validate (using the options' dataset and batch size)."""

    kind: Kind = "evaluate"
    path: str
    options: EvaluateOptions


def _forbid_pickle_loads() -> None:
    """torch.load with weights_only=False (a pickle payload could run code) is refused inside the worker."""
    import torch

    from irob_bench.errors import IrobError

    safe_load = torch.load

    def load(*args, weights_only: bool | None = None, **kwargs):  # type: ignore[no-untyped-def]
        if weights_only is False:
            raise IrobError(UNSAFE_LOAD)
        return safe_load(*args, weights_only=True, **kwargs)

    torch.load = load


def _run(request: WorkerRequest, scratch: Path) -> None:
    """Carry out the request, writing its files into `scratch`."""
    from irob_bench.attacks.outcomes import save_outcomes
    from irob_bench.evaluate import evaluate, validation

    if request.kind == "validate":
        validated = validation(request.path, request.options.dataset, request.options.batch_size)
        (scratch / VALIDATION_FILE).write_text(validated.model_dump_json())
        return
    evaluation = evaluate(request.path, request.options)
    save_outcomes(evaluation.outcomes, scratch / "outcomes.npz")
    (scratch / "result.json").write_text(evaluation.result.model_dump_json())


def main(scratch: Path) -> int:
    """Run the request in `scratch`; exit 0 with its files, 2 with error.txt (one line)."""
    from irob_bench.errors import IrobError

    request = WorkerRequest.model_validate_json((scratch / "request.json").read_text())
    _forbid_pickle_loads()
    try:
        _run(request, scratch)
    except IrobError as exc:
        (scratch / "error.txt").write_text(str(exc).splitlines()[0])
        return 2
    except SystemExit as exc:  # only submission code calls it here: its exit is not our result
        (scratch / "error.txt").write_text(f"the submission ended the evaluation with sys.exit({exc.code!r})")
        return 2
    (scratch / "done").touch()  # the parent trusts an exit 0 only with this: os._exit(0) in a submission is not done
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
