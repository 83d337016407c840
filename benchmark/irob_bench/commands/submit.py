"""`irob-bench submit PATH --slurm --shards N [--partition P] [--evaluate-args 'OPTIONS']`: a sharded evaluation on a
cluster (a SLURM job array plus a merge job, through submitit), or with `--local` on this machine."""

from __future__ import annotations

import argparse

from irob_bench.commands.arguments import positive_int
from irob_bench.commands.leaderboard import add_db_option

FORBIDDEN = ("--shard", "--json", "--db", "--no-store")  # set by submit itself, for the shards and the merge


def _submit(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from irob_bench.commands import evaluate as evaluate_command
    from irob_bench.commands.arguments import OneLineParser
    from irob_bench.errors import IrobError
    from irob_bench.slurm import ClusterJob, submit

    rest = shlex.split(args.evaluate_args)
    clash = [a for a in rest if a.split("=")[0] in FORBIDDEN]
    if clash:
        raise IrobError(f"submit: {clash[0]} is set by submit itself (use submit's --json/--db/--no-store)")
    check = OneLineParser(prog="irob-bench submit --evaluate-args")
    evaluate_command.register(check.add_subparsers())
    check.parse_args(["evaluate", args.path, *rest])  # bad evaluate options fail here, before any job
    merge_args = ["--no-store"] if args.no_store else (["--db", args.db] if args.db else [])
    job = ClusterJob(cluster="local" if args.local else "slurm", folder=Path(args.folder).resolve(),
                     timeout_min=args.time_min, partition=args.partition, cpus_per_task=args.cpus_per_task,
                     gpus_per_task=args.gpus_per_task)
    shard_jobs, merge_job, merged = submit(str(Path(args.path).resolve()), rest, args.shards, merge_args, job)
    print(f"submitted {args.shards} shard jobs ({', '.join(str(j.job_id) for j in shard_jobs)}) and merge job "
          f"{merge_job.job_id} ({job.cluster}); logs in {job.folder / 'jobs'}; the merged result: {merged}")
    if args.wait or args.local:
        merge_job.result()
        print(f"merged: {merged}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("submit", help="run a sharded evaluation as a SLURM job array plus a merge job (submitit)")
    parser.add_argument("path", help="the submission .py file")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--slurm", action="store_true", help="submit to SLURM")
    where.add_argument("--local", action="store_true", help="run the same jobs here with submitit's local executor")
    parser.add_argument("--shards", type=positive_int, required=True, help="number of shard jobs (the array size)")
    parser.add_argument("--partition", default=None, help="SLURM partition")
    parser.add_argument("--time-min", type=positive_int, default=240, help="time limit of each job in minutes (240)")
    parser.add_argument("--cpus-per-task", type=positive_int, default=1)
    parser.add_argument("--gpus-per-task", type=int, default=0, help="GPUs per shard job (pass --device cuda too)")
    parser.add_argument("--folder", default="irob-bench-jobs", help="logs and shard results (default ./irob-bench-jobs)")
    parser.add_argument("--wait", action="store_true", help="wait for the merge job (always with --local)")
    parser.add_argument("--no-store", action="store_true", help="the merge job writes JSON only, no leaderboard row")
    add_db_option(parser)
    parser.add_argument("--evaluate-args", default="", metavar="'OPTIONS'",
                        help="options for every shard's `irob-bench evaluate`, quoted (e.g. '--n-examples all')")
    parser.set_defaults(handler=_submit)
