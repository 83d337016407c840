"""`irob-bench submit PATH --slurm --shards N`: a job array of N shards plus one merge job, through submitit
(`pip install "irob-bench[slurm]"`). Each job runs the ordinary command line (`evaluate --shard K/N`, then
`runs merge`), so a cluster run checks, isolates and stores exactly like a local one; `--local` runs the same jobs
with submitit's local executor (one machine, no SLURM: the pipeline's test)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from irob_bench.errors import IrobError


@dataclass(frozen=True)
class ClusterJob:
    """Where and with what the jobs run."""

    cluster: str  # "slurm" or "local"
    folder: Path  # submitit's logs and pickles, and the shards' result files
    timeout_min: int = 240
    partition: str | None = None
    cpus_per_task: int = 1
    gpus_per_task: int = 0


def _command(argv: list[str]):  # type: ignore[no-untyped-def]
    """One job: the irob-bench command line (`python -m irob_bench ...`) with this Python; a non-zero exit fails the
    job and, on SLURM, its dependants."""
    from submitit.helpers import CommandFunction

    return CommandFunction([sys.executable, "-m", "irob_bench", *argv])


def _executor(job: ClusterJob):  # type: ignore[no-untyped-def]
    try:
        import submitit
    except ImportError:
        raise IrobError('submit needs submitit: pip install "irob-bench[slurm]"') from None
    executor = submitit.AutoExecutor(folder=job.folder / "jobs", cluster=job.cluster)
    params: dict = {"timeout_min": job.timeout_min, "cpus_per_task": job.cpus_per_task, "name": "irob-bench"}
    if job.cluster == "slurm":
        params.update(slurm_partition=job.partition, gpus_per_node=job.gpus_per_task)
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor


def submit(path: str, evaluate_args: list[str], shards: int, merge_args: list[str], job: ClusterJob):  # type: ignore[no-untyped-def]
    """Submit the N shard jobs (an array) and the merge job that runs once every shard succeeded; return
    (shard jobs, merge job, merged JSON path). On SLURM the merge waits through `afterok`; locally it is submitted when
    the shards are done."""
    executor = _executor(job)
    job.folder.mkdir(parents=True, exist_ok=True)
    outputs = [str(job.folder / f"shard-{k}-of-{shards}.json") for k in range(1, shards + 1)]
    shard_argv = [["evaluate", path, *evaluate_args, "--shard", f"{k}/{shards}", "--json", out, "--quiet"]
                  for k, out in enumerate(outputs, start=1)]
    with executor.batch():  # one job array
        pending = [executor.submit(_command(argv)) for argv in shard_argv]
    shard_jobs = list(pending)
    if job.cluster == "slurm":
        executor.update_parameters(slurm_additional_parameters={
            "dependency": "afterok:" + ":".join(str(j.job_id) for j in shard_jobs)})
    else:
        for shard_job in shard_jobs:
            shard_job.result()  # raises with the shard's error
    merged = str(job.folder / "merged.json")
    merge_job = executor.submit(_command(["runs", "merge", *outputs, "--json", merged, *merge_args]))
    return shard_jobs, merge_job, merged
