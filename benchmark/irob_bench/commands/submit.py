"""`irob-bench submit PATH --slurm --shards N [--partition P] [--evaluate-args 'OPTIONS']`: a sharded evaluation on a
cluster (a SLURM job array plus a merge job, through submitit), or with `--local` on this machine."""

from __future__ import annotations

import argparse

from irob_bench.commands.arguments import bounded, positive_int
from irob_bench.commands.leaderboard import add_db_option

FORBIDDEN = ("--shard", "--json", "--db", "--no-store")  # set by submit itself, for the shards and the merge


def _submit(args: argparse.Namespace) -> int:
    import shlex
    import shutil
    from pathlib import Path

    from submitit.core.utils import FailedJobError

    from irob_bench.commands import evaluate as evaluate_command
    from irob_bench.commands.arguments import OneLineParser
    from irob_bench.commands.leaderboard import refuse_ignored_db
    from irob_bench.errors import IrobError
    from irob_bench.evaluate import EvaluateOptions, check_options
    from irob_bench.import_checks import check_shards_mergeable
    from irob_bench.slurm import ClusterJob, submit

    refuse_ignored_db(args.db, "--no-store" if args.no_store else None)
    try:
        rest = shlex.split(args.evaluate_args)
    except ValueError as exc:
        raise IrobError(f"--evaluate-args: {exc}") from None
    clash = [a for a in rest if a.split("=")[0] in FORBIDDEN]
    if clash:
        raise IrobError(f"submit: {clash[0]} is set by submit itself (each shard's JSON and the merged result go to "
                        "--folder; use submit's --db or --no-store)")
    if args.slurm and shutil.which("sbatch") is None:
        raise IrobError("--slurm: no SLURM here (sbatch not found); --local runs the same jobs on this machine")
    check = OneLineParser(prog="irob-bench submit --evaluate-args")
    evaluate_command.register(check.add_subparsers())
    try:
        parsed = check.parse_args(["evaluate", args.path, *rest])  # bad evaluate options fail here, before any job
    except SystemExit as exc:  # argparse printed its one line; its exit is ours (main reads a SystemExit as the
        return int(exc.code or 0)  # submission's)
    check_options(EvaluateOptions(dataset=parsed.dataset, eps=parsed.eps, n_examples=parsed.n_examples,
                                  batch_size=parsed.batch_size, preset=parsed.attacks, shard=(1, args.shards)))
    check_shards_mergeable(parsed.dataset)
    merge_args = ["--no-store"] if args.no_store else (["--db", args.db] if args.db else [])
    job = ClusterJob(cluster="local" if args.local else "slurm", folder=Path(args.folder).resolve(),
                     timeout_min=args.time_min, partition=args.partition, cpus_per_task=args.cpus_per_task,
                     gpus_per_task=args.gpus_per_task)
    try:
        shard_jobs, merge_job, merged = submit(str(Path(args.path).resolve()), rest, args.shards, merge_args, job)
    except FailedJobError as exc:  # --local: a shard failed (its log is in --folder)
        raise IrobError(f"a shard job failed: {_job_error(exc)} (logs in {job.folder / 'jobs'})") from None
    print(f"submitted {args.shards} shard jobs ({', '.join(str(j.job_id) for j in shard_jobs)}) and merge job "
          f"{merge_job.job_id} ({job.cluster}); logs in {job.folder / 'jobs'}; the merged result: {merged}")
    if args.wait or args.local:
        try:
            merge_job.result()
        except FailedJobError as exc:
            raise IrobError(f"the merge job failed: {_job_error(exc)} (logs in {job.folder / 'jobs'})") from None
        print(f"merged: {merged}")
    return 0


def _job_error(exc: Exception) -> str:
    """A failed job's own one-line error (its log's last `irob-bench: error:` line), else the exception's last line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    ours = [line.split("irob-bench: error:", 1)[1].strip() for line in lines if "irob-bench: error:" in line]
    return (ours or lines or [type(exc).__name__])[-1]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `submit` command to the CLI (its arguments are checked while parsing, before any heavy import)."""
    parser = sub.add_parser("submit", help="run a sharded evaluation as a SLURM job array plus a merge job (submitit)")
    parser.add_argument("path", help="the submission .py file")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--slurm", action="store_true", help="submit to SLURM")
    where.add_argument("--local", action="store_true", help="run the same jobs here with submitit's local executor")
    parser.add_argument("--shards", type=positive_int, required=True, help="number of shard jobs (the array size)")
    parser.add_argument("--partition", default=None, help="SLURM partition")
    parser.add_argument("--time-min", type=positive_int, default=240, help="time limit of each job in minutes (240)")
    parser.add_argument("--cpus-per-task", type=positive_int, default=1)
    parser.add_argument("--gpus-per-task", type=bounded(0, cast=int, include_low=True), default=0, help="GPUs per shard job (pass --device cuda too)")
    parser.add_argument("--folder", default="irob-bench-jobs", help="logs and shard results (default ./irob-bench-jobs)")
    parser.add_argument("--wait", action="store_true", help="wait for the merge job (always with --local)")
    parser.add_argument("--no-store", action="store_true", help="the merge job writes JSON only, no leaderboard row")
    add_db_option(parser)
    parser.add_argument("--evaluate-args", default="", metavar="'OPTIONS'",
                        help="options for every shard's `irob-bench evaluate`, quoted (e.g. '--n-examples all'); a "
                        "single option needs the = form: --evaluate-args=--quiet")
    parser.set_defaults(handler=_submit)
