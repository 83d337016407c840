"""End to end: the default `irob-bench evaluate` of the standard MNIST reference, against the attacks it replaced.

Run with `pytest tests/benchmarks --benchmark-only -k evaluate`. This is the README's main command (default
300-point subset, eps 1/2/3, the `standard` preset, minimum-norm, in-distribution attack and sanity flags),
without storing the run. In the same run, the same evaluation with the attack suite of irob-bench 0.1 (PGD-L2,
2 restarts x 40 steps, CE then margin: `presets.LEGACY`) is timed: the default may take at most 1.5x as long.
Results: docs/performance.md.
"""

from __future__ import annotations

import time
from pathlib import Path

from irob_bench.attacks.presets import LEGACY
from irob_bench.evaluate import EvaluateOptions, evaluate

SUBMISSION = Path(__file__).resolve().parents[2] / "submissions" / "mnist" / "standard" / "submission.py"
MAX_RATIO = 1.5


def test_default_evaluate_takes_at_most_one_and_a_half_times_the_previous_default(benchmark):
    began = time.perf_counter()
    legacy = evaluate(SUBMISSION, EvaluateOptions(attacks=LEGACY, progress=False)).result
    legacy_seconds = time.perf_counter() - began
    evaluation = benchmark.pedantic(evaluate, args=(SUBMISSION, EvaluateOptions(progress=False)), rounds=1, iterations=1)
    result = evaluation.result
    ratio = result.timings["total"] / legacy_seconds
    benchmark.extra_info.update({"timings": result.timings, "legacy_timings": legacy.timings, "ratio": ratio})
    print({"standard": {k: round(v, 1) for k, v in result.timings.items()},
           "legacy": {k: round(v, 1) for k, v in legacy.timings.items()}, "ratio": round(ratio, 2)})
    assert result.settings.attacks["preset"] == "standard"
    assert ratio <= MAX_RATIO, (result.timings, legacy.timings)
