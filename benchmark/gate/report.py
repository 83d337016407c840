"""The typed outcome of one gate run (what `--json` writes)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from irob_bench.gate.compare import MetricComparison


class GateReport(BaseModel):
    """A new run compared metric by metric with its baseline on the same examples; `regressed` decides the exit code."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    submission: str
    baseline_source: str = Field(description="the run or file the baseline came from")
    baseline_submission: str
    dataset: str = Field(description="name and version, e.g. 'mnist v1'")
    quick: bool
    n_examples: int = Field(description="paired examples compared")
    eps: list[float] = Field(description="eps compared")
    tolerance_pp: float
    alpha: float
    settings_changes: list[str] = Field(default_factory=list, description="differences accepted by --allow-settings-change")
    notes: list[str] = Field(default_factory=list)
    metrics: list[MetricComparison]
    regressed: bool
    seconds: float = Field(description="wall time of the new evaluation")
    stored_run_id: int | None = Field(None, description="leaderboard run id if the gate run was stored (--store)")

    @property
    def regressions(self) -> list[MetricComparison]:
        """The metrics that failed."""
        return [m for m in self.metrics if m.verdict == "regression"]

    @property
    def summary(self) -> str:
        """One line: FAIL/PASS with the failing metrics."""
        if self.regressed:
            names = ", ".join(m.name for m in self.regressions)
            return f"FAIL: robustness regressed ({names}) beyond {self.tolerance_pp:g} pp at alpha {self.alpha:g}"
        return f"PASS: no significant drop beyond {self.tolerance_pp:g} pp at alpha {self.alpha:g} on {self.n_examples} examples"
