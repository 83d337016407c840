"""The untrusted side of an isolated evaluation (`python -m irob_bench.worker SCRATCH`): read request.json, run the
submission and its gradient attacks, write result.json and outcomes.npz (or error.txt) into SCRATCH, nothing else.

The parent (isolation.py) chose the sandbox, limits and environment; it checks everything written here.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from irob_bench.evaluate import EvaluateOptions

UNSAFE_LOAD = "rule: torch.load(weights_only=False) can run a pickle payload; load weights with irob_bench.plugin.load_weights"


class WorkerRequest(BaseModel):
    """What the parent asks the worker to evaluate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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


def main(scratch: Path) -> int:
    """Run the request in `scratch`; exit 0 with the result files, 2 with error.txt (one line)."""
    from irob_bench.attacks.outcomes import save_outcomes
    from irob_bench.errors import IrobError
    from irob_bench.evaluate import evaluate

    request = WorkerRequest.model_validate_json((scratch / "request.json").read_text())
    _forbid_pickle_loads()
    try:
        evaluation = evaluate(request.path, request.options)
    except IrobError as exc:
        (scratch / "error.txt").write_text(str(exc).splitlines()[0])
        return 2
    save_outcomes(evaluation.outcomes, scratch / "outcomes.npz")
    (scratch / "result.json").write_text(evaluation.result.model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
