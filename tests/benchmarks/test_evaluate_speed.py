"""End to end: the default `irob-bench evaluate` of the standard MNIST reference, against the attacks it replaced.

Run with `pytest tests/benchmarks --benchmark-only -k evaluate`. This is the README's main command (default
300-point subset, eps 1/2/3, the `standard` preset, minimum-norm, in-distribution attack and sanity flags),
without storing the run. In the same run, the same evaluation with the attack suite of irob-bench 0.1 (PGD-L2,
2 restarts x 40 steps, CE then margin: `presets.LEGACY`) is timed: the default may take at most 1.5x as long.
Both run on one torch thread and are timed by wall clock and by the process's CPU time: on an idle machine the
two agree, and on a shared one (a training job on the other core) the CPU time is the wall time the run would
take alone, so the ratio is asserted on it. Results: docs/performance.md.
"""

from __future__ import annotations

import time
from pathlib import Path

from irob_bench.attacks.presets import LEGACY
from irob_bench.evaluate import EvaluateOptions, evaluate
from tests.factories import one_torch_thread

SUBMISSION = Path(__file__).resolve().parents[2] / "submissions" / "mnist" / "standard" / "submission.py"
MAX_RATIO = 1.5


def timed_evaluate(options: EvaluateOptions) -> dict:
    """One evaluation on one torch thread: its per-stage timings, wall seconds and CPU seconds."""
    with one_torch_thread():
        wall, cpu = time.perf_counter(), time.process_time()
        result = evaluate(SUBMISSION, options).result
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"preset": result.settings.attacks["preset"], "stages": {k: round(v, 1) for k, v in result.timings.items()},
            "wall": round(wall, 1), "cpu": round(cpu, 1)}


def test_default_evaluate_takes_at_most_one_and_a_half_times_the_previous_default(benchmark):
    legacy = timed_evaluate(EvaluateOptions(attacks=LEGACY, progress=False))
    default = benchmark.pedantic(timed_evaluate, args=(EvaluateOptions(progress=False),), rounds=1, iterations=1)
    ratio = {"cpu": default["cpu"] / legacy["cpu"], "wall": default["wall"] / legacy["wall"]}
    benchmark.extra_info.update({"standard": default, "legacy": legacy, "ratio": ratio})
    print({"standard": default, "legacy": legacy, "ratio": {k: round(v, 2) for k, v in ratio.items()}})
    assert default["preset"] == "standard"
    assert ratio["cpu"] <= MAX_RATIO, (default, legacy)
