"""End to end: the default `irob-bench evaluate` of the LeNet-sized standard MNIST reference in under 10 minutes.

Run with `pytest tests/benchmarks --benchmark-only -k evaluate`. This is the README's main command (default
300-point subset, eps 1/2/3, PGD, minimum-norm, in-distribution attack and sanity flags), without storing the
run. Results: docs/performance.md.
"""

from __future__ import annotations

from pathlib import Path

from irob_bench.evaluate import EvaluateOptions, evaluate

SUBMISSION = Path(__file__).resolve().parents[2] / "submissions" / "mnist" / "standard" / "submission.py"
LIMIT_SECONDS = 600.0


def test_default_evaluate_of_a_lenet_sized_submission_takes_under_ten_minutes(benchmark):
    evaluation = benchmark.pedantic(evaluate, args=(SUBMISSION, EvaluateOptions(progress=False)), rounds=1, iterations=1)
    result = evaluation.result
    benchmark.extra_info.update({"timings": result.timings, "n_examples": result.settings.n_examples})
    print({k: round(v, 1) for k, v in result.timings.items()})
    assert result.settings.eps == [1.0, 2.0, 3.0]
    assert result.settings.attacks["latent"]["method"] == "adaptive"
    assert result.timings["total"] < LIMIT_SECONDS, result.timings
