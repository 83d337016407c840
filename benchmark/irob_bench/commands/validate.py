"""`irob-bench validate PATH`: only the pre-scoring checks of a submission, one line each, run in the same isolated
worker as evaluate."""

from __future__ import annotations

import argparse

from irob_bench.commands.arguments import add_isolation_options, dataset, isolation_of, positive_int, submission_file


def _validate(args: argparse.Namespace) -> int:
    from irob_bench.evaluate import EvaluateOptions
    from irob_bench.isolation.sandbox import validate_isolated

    options = EvaluateOptions(dataset=args.dataset, batch_size=args.batch_size, progress=False)
    validated = validate_isolated(args.path, options, isolation_of(args))
    for line in validated.lines:
        print(line)
    validated.report.raise_on_failure()
    print(f"{validated.report.submission}: valid ({len(validated.report.warnings)} warning(s))")
    return 0


def add_submission_arguments(parser: argparse.ArgumentParser) -> None:
    """The submission file and the dataset to use it on (shared by validate and evaluate)."""
    parser.add_argument("path", type=submission_file, help="the submission .py file")
    parser.add_argument("--dataset", type=dataset, default=None, metavar="NAME|CARD",
                        help="dataset name or card path (default: the first dataset in its METADATA)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `validate` command to the CLI (its arguments are checked while parsing, before any heavy import)."""
    parser = sub.add_parser("validate", help="check a submission file without scoring it")
    add_submission_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, default=250, help="check batch independence at this size (250)")
    add_isolation_options(parser)
    parser.set_defaults(handler=_validate)
