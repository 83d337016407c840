"""One gate run: repeat the baseline's evaluation on the new submission and compare the paired outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from irob_bench import __version__
from irob_bench import datasets as dataset_registry
from irob_bench.common import same_eps
from irob_bench.errors import IrobError
from irob_bench.evaluate import Evaluation, check_options
from irob_bench.gate.baseline import Baseline
from irob_bench.gate.compare import compare_metrics
from irob_bench.gate.outcomes import PerExample, common_eps, common_indices
from irob_bench.gate.report import GateReport
from irob_bench.gate.settings import GateOptions, plan_run
from irob_bench.isolation.sandbox import evaluate_isolated

ALLOW_HINT = "pass --allow-settings-change to compare on the common eps and examples"


@dataclass(frozen=True)
class GateRun:
    """The report and the new evaluation behind it (stored only on request)."""

    report: GateReport
    evaluation: Evaluation


def run_gate(path: str | Path, baseline: Baseline, options: GateOptions | None = None) -> GateRun:
    """Evaluate `path` exactly as the baseline was evaluated and test every metric for a significant drop.

    Raises IrobError before any scoring if the settings differ from the baseline's (unless allowed).
    """
    options = options or GateOptions()
    card = dataset_registry.load_card(options.dataset or baseline.result.dataset.name)
    plan, changes = plan_run(baseline.result, options, card)
    if changes and not options.allow_settings_change:
        raise IrobError(f"baseline settings differ: {'; '.join(changes)}; {ALLOW_HINT}")
    check_options(plan)
    if not any(same_eps(e, f) for e in plan.eps or () for f in baseline.outcomes.eps):  # before the work, not after
        raise IrobError(f"nothing to compare: none of eps {' '.join(f'{e:g}' for e in plan.eps or ())} is in the "
                        f"baseline (it has {' '.join(f'{e:g}' for e in baseline.outcomes.eps)})")
    evaluation = evaluate_isolated(path, plan, options.isolation)
    result = evaluation.result
    new = PerExample.from_outcomes(evaluation.outcomes, evaluation.outcomes.indices, result.settings.eps)
    eps = common_eps(baseline.outcomes, new)
    indices = common_indices(baseline.outcomes, new)
    if len(indices) < len(new.indices) and not options.allow_settings_change:
        raise IrobError(
            f"the baseline holds only {len(indices)} of the {len(new.indices)} examples evaluated "
            f"(it has {len(baseline.outcomes.indices)}); {ALLOW_HINT}"
        )
    if not eps or len(indices) == 0:
        raise IrobError(f"nothing to compare: {len(eps)} common eps and {len(indices)} common examples with the baseline")
    metrics = compare_metrics(
        baseline.outcomes.restrict(indices, eps), new.restrict(indices, eps), options.tolerance_pp, options.alpha
    )
    report = GateReport(
        submission=result.submission.metadata.name,
        baseline_source=baseline.source,
        baseline_submission=baseline.result.submission.metadata.name,
        dataset=f"{result.dataset.name} v{result.dataset.version}",
        quick=options.quick,
        n_examples=len(indices),
        eps=eps,
        tolerance_pp=options.tolerance_pp,
        alpha=options.alpha,
        settings_changes=changes,
        notes=_notes(baseline, evaluation, options, changes, len(indices), eps),
        metrics=metrics,
        regressed=any(m.verdict == "regression" for m in metrics),
        seconds=result.timings.get("total", 0.0),
    )
    return GateRun(report=report, evaluation=evaluation)


def _notes(
    baseline: Baseline, evaluation: Evaluation, options: GateOptions, changes: list[str], n: int, eps: list[float]
) -> list[str]:
    """What a reader must know to trust the comparison: quick mode, accepted changes, other versions or devices."""
    old, new = baseline.result, evaluation.result
    notes = [baseline.note] if baseline.note else []
    if options.quick:
        notes.append(
            f"quick mode: the first {len(evaluation.outcomes.indices)} examples of the baseline's seeded subset "
            f"(of its {old.settings.n_examples})"
        )
    if changes:
        notes.append(
            f"settings changed (allowed): {'; '.join(changes)}; compared on eps {' '.join(f'{e:g}' for e in eps)} "
            f"and the {n} common examples"
        )
    if old.irob_bench_version != __version__:
        notes.append(f"baseline made with irob-bench {old.irob_bench_version}, this is {__version__}")
    if old.settings.device != new.settings.device:
        notes.append(f"device {new.settings.device} (baseline {old.settings.device}): outcomes may differ in the last bits")
    return notes
