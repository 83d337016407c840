"""`irob-bench validate PATH`: only the pre-scoring checks of a submission, one line each."""

from __future__ import annotations

import argparse

from irob_bench.commands.arguments import positive_int

_MARK = {"pass": "ok  ", "warn": "WARN", "fail": "FAIL"}


def _validate(args: argparse.Namespace) -> int:
    from irob_bench.evaluate import load_validated

    submission, data, _, report = load_validated(args.path, args.dataset, batch_size=args.batch_size)
    print(f"ok    import: {submission.path.name}")
    print(f"ok    metadata: {submission.metadata.name} ({', '.join(submission.metadata.datasets)})")
    print(f"ok    factory: nn.Module for {data.card.name} ({data.num_classes} classes)")
    for check in report.checks:
        print(f"{_MARK[check.status]}  {check.name}" + (f": {check.message}" if check.message else ""))
    report.raise_on_failure()
    print(f"{submission.metadata.name}: valid ({len(report.warnings)} warning(s))")
    return 0


def add_submission_arguments(parser: argparse.ArgumentParser) -> None:
    """The submission file and the dataset to use it on (shared by validate and evaluate)."""
    parser.add_argument("path", help="the submission .py file")
    parser.add_argument("--dataset", default=None, help="default: the first dataset in its METADATA")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("validate", help="check a submission file without scoring it")
    add_submission_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, default=250, help="check batch independence at this size (250)")
    parser.set_defaults(handler=_validate)


