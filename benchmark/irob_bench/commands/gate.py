"""`irob-bench gate PATH --baseline REF`: fail CI (exit 1) when robustness regressed against a baseline run."""

from __future__ import annotations

import argparse
import os

from irob_bench.commands.arguments import (
    add_isolation_options,
    bounded,
    dataset,
    device,
    isolation_of,
    output_file,
    positive_float,
    positive_int,
    probability,
    seed,
    submission_file,
)
from irob_bench.commands.leaderboard import add_db_option


def _gate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from irob_bench.artifacts import atomic_write_text
    from irob_bench.datasets import load_card
    from irob_bench.errors import IrobError
    from irob_bench.gate.baseline import load_baseline
    from irob_bench.gate.report import github_annotations, junit_xml, render_table
    from irob_bench.gate.run import run_gate
    from irob_bench.gate.settings import GateOptions
    from irob_bench.leaderboard.store import Store
    from irob_bench.persist import persist

    options = GateOptions(
        tolerance_pp=args.tolerance,
        alpha=args.alpha,
        quick=args.quick,
        allow_settings_change=args.allow_settings_change,
        dataset=args.dataset,
        eps=args.eps,
        n_examples=args.n_examples,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
        isolation=isolation_of(args),
    )
    for output in (args.json, args.junit):  # a report written over the baseline would lose it
        if output and args.baseline.endswith(".json") and Path(output).resolve() in (
            Path(args.baseline).resolve(), Path(f"{args.baseline}.outcomes.npz").resolve()
        ):
            raise IrobError(f"{output} is the baseline file: write the report elsewhere")
    if args.store:
        Store.check_writable(args.db)  # before the work
    baseline = load_baseline(args.baseline, args.db, load_card(args.dataset).name if args.dataset else None)
    store = Store(args.db) if args.store else None  # open (and migrate) before the work, after the baseline was read
    gate = run_gate(args.path, baseline, options)
    report, saved = gate.report, None
    if store is not None:
        _, saved = persist(gate.evaluation, store=store)
        report = report.model_copy(update={"stored_run_id": saved.run_id})
    if args.json:
        atomic_write_text(args.json, report.model_dump_json(indent=2) + "\n")
    if args.junit:
        atomic_write_text(args.junit, junit_xml(report))
    print(render_table(report))
    if saved is not None:
        print(f"gate run {saved.summary(store.label)}")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print("\n".join(github_annotations(report)))
    return 1 if report.regressed else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `gate` command to the CLI (its arguments are checked while parsing, before any heavy import)."""
    parser = sub.add_parser(
        "gate",
        help="compare a submission with a baseline run; exit 1 if robustness regressed (for CI)",
        description="Evaluate PATH on exactly the baseline's examples and settings and test each metric for a "
        "significant drop (exact one-sided McNemar test on the paired per-example outcomes). Exit 0: no regression, "
        "1: regression, 2: usage error or mismatched baseline. See docs/ci.md.",
    )
    parser.add_argument("path", type=submission_file, help="the submission .py file")
    parser.add_argument(
        "--baseline", required=True, metavar="REF", help="run id, submission name (its latest run) or results JSON file"
    )
    parser.add_argument("--tolerance", type=bounded(0, 100, include_low=True), default=0.5, metavar="PP", help="drops up to this many percentage points pass (default 0.5)")
    parser.add_argument("--alpha", type=probability, default=0.05, help="significance level of the test (default 0.05)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="only the first 100 examples of the baseline's subset")
    size.add_argument("--n-examples", type=positive_int, default=None, metavar="N", help="override the baseline's n (a settings change)")
    parser.add_argument("--eps", type=positive_float, nargs="+", default=None, help="override the baseline's eps (a settings change)")
    parser.add_argument("--seed", type=seed, default=None, help="override the baseline's attack seed (a settings change)")
    parser.add_argument("--dataset", type=dataset, default=None, metavar="NAME|CARD", help="dataset name or card path (default: the baseline's)")
    parser.add_argument("--allow-settings-change", action="store_true", help="compare on the common eps and examples instead of failing")
    parser.add_argument("--device", type=device, default="cpu", help="cpu or cuda[:N]")
    add_db_option(parser)
    parser.add_argument("--store", action="store_true", help="also store the gate run in the leaderboard (default: not stored)")
    parser.add_argument("--json", type=output_file, default=None, metavar="OUT", help="write the gate report as JSON")
    parser.add_argument("--junit", type=output_file, default=None, metavar="FILE", help="write a JUnit XML report (one testcase per metric)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_isolation_options(parser)
    parser.set_defaults(handler=_gate)
