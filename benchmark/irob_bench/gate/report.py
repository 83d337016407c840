"""The typed outcome of one gate run (what `--json` writes) and its views for people and CI: a text table,
JUnit XML and GitHub Actions workflow commands."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pydantic import Field

from irob_bench.common import FrozenModel
from irob_bench.gate.compare import MetricComparison
from irob_bench.leaderboard.render import percent, text_table

JUNIT_SUITE = "irob-bench gate"


class GateReport(FrozenModel):
    """A new run compared metric by metric with its baseline on the same examples; `regressed` decides the exit code."""

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
            return f"FAIL: robustness regressed ({names}) beyond {self.tolerance_pp:g} pp at alpha {self.alpha:g} per metric"
        return f"PASS: no significant drop beyond {self.tolerance_pp:g} pp at alpha {self.alpha:g} per metric on {self.n_examples} examples"


def render_table(report: GateReport) -> str:
    """The verdict per metric as an aligned table, headed by what was compared and followed by the summary line."""
    head = (
        f"gate: {report.submission} vs baseline {report.baseline_source} ({report.baseline_submission}), "
        f"{report.dataset}, {report.n_examples} examples{' (quick)' if report.quick else ''}"
    )
    headers = ["metric", "baseline", "new", "drop (pp)", "lost", "gained", "p-value", "verdict"]
    cells = [
        [m.name, percent(m.baseline), percent(m.new), f"{m.drop_pp:+.2f}", str(m.lost), str(m.gained), f"{m.p_value:.3g}", _verdict(m)]
        for m in report.metrics
    ]
    notes = [f"note: {n}" for n in report.notes]
    return "\n".join([head, text_table(headers, cells, [False, True, True, True, True, True, True, False]), *notes, report.summary])


def _verdict(metric: MetricComparison) -> str:
    return "REGRESSION" if metric.verdict == "regression" else "ok"


def junit_xml(report: GateReport) -> str:
    """JUnit XML: one testcase per metric, a <failure> for each regression; the format CI systems display."""
    failures = len(report.regressions)
    counts = {"tests": str(len(report.metrics)), "failures": str(failures), "errors": "0", "skipped": "0"}
    root = ET.Element("testsuites", name=JUNIT_SUITE, time=f"{report.seconds:.3f}", **counts)
    suite = ET.SubElement(
        root, "testsuite", name=f"{JUNIT_SUITE}: {report.submission} on {report.dataset}", time=f"{report.seconds:.3f}", **counts
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in [
        ("baseline", report.baseline_source),
        ("n_examples", str(report.n_examples)),
        ("eps", " ".join(f"{e:g}" for e in report.eps)),
        ("tolerance_pp", f"{report.tolerance_pp:g}"),
        ("alpha", f"{report.alpha:g}"),
        ("quick", str(report.quick).lower()),
    ]:
        ET.SubElement(properties, "property", name=name, value=value)
    for metric in report.metrics:
        case = ET.SubElement(suite, "testcase", classname=f"irob_bench.gate.{report.submission}", name=metric.name, time="0")
        if metric.verdict == "regression":
            failure = ET.SubElement(case, "failure", message=_sentence(metric), type="RobustnessRegression")
            failure.text = _details(metric)
        else:
            ET.SubElement(case, "system-out").text = _details(metric)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def github_annotations(report: GateReport) -> list[str]:
    """GitHub Actions workflow commands: an ::error per regression, a ::warning per large but not significant drop, a ::notice summary."""
    lines = []
    for metric in report.metrics:
        if metric.verdict == "regression":
            lines.append(_command("error", f"robustness regression: {metric.name}", _sentence(metric)))
        elif metric.drop_pp > report.tolerance_pp:
            lines.append(_command("warning", f"drop not significant: {metric.name}", _sentence(metric)))
    lines.append(_command("notice", "irob-bench gate", f"{report.summary} (baseline {report.baseline_source})"))
    return lines


def _sentence(metric: MetricComparison) -> str:
    return f"{metric.label}: {percent(metric.baseline)} -> {percent(metric.new)}, {metric.reason}"


def _details(metric: MetricComparison) -> str:
    return (
        f"baseline {percent(metric.baseline)}, new {percent(metric.new)}, drop {metric.drop_pp:+.2f} pp on {metric.n} "
        f"examples; lost {metric.lost}, gained {metric.gained}; one-sided McNemar p = {metric.p_value:.4g}; {metric.reason}"
    )


def _command(kind: str, title: str, message: str) -> str:
    """One workflow command line, with the escaping GitHub requires for properties and data."""
    return f"::{kind} title={_escape(title, prop=True)}::{_escape(message)}"


def _escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text
