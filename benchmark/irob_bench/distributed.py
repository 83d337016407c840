"""torchrun (`torchrun --nproc_per_node N -m irob_bench evaluate PATH ...`, or srun on SLURM): each rank evaluates its
shard on its own device (cuda:LOCAL_RANK with NCCL, else the CPU with gloo); rank 0 gathers the shards and merges
them into the run one process would have written. Sharding is exact because every point's randomness is keyed by its
dataset index (attacks/noise.py)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from irob_bench.errors import IrobError

GATHER_TIMEOUT = dt.timedelta(hours=24)  # ranks wait for the slowest shard at the gather


@dataclass(frozen=True)
class Launch:
    """This process's place in a torchrun launch (from torchrun's environment variables)."""

    rank: int
    world_size: int
    local_rank: int


def torchrun_launch() -> Launch | None:
    """The launch this process is part of, or None outside torchrun (or with one process)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return None
        return Launch(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", os.environ["RANK"])))
    except (KeyError, ValueError):
        raise IrobError("torchrun: WORLD_SIZE is set but RANK or LOCAL_RANK is missing or not a number") from None


def under_torchrun() -> bool:
    """Whether this process is one of several torchrun ranks (a malformed launch counts: the command that uses it
    says what is wrong through torchrun_launch)."""
    try:
        return torchrun_launch() is not None
    except IrobError:
        return True


def rank_device(device: str, launch: Launch) -> tuple[str, str]:
    """(this rank's device, the process-group backend): cuda:LOCAL_RANK with NCCL, or the CPU with gloo."""
    import torch.distributed as dist

    if not dist.is_available():
        raise IrobError("torchrun: this torch has no torch.distributed, so no process-group backend")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available() or not dist.is_nccl_available():
            raise IrobError(f"torchrun: no backend for --device {device} (NCCL needs CUDA); use --device cpu for gloo")
        if launch.local_rank >= torch.cuda.device_count():
            raise IrobError(f"torchrun: local rank {launch.local_rank} but {torch.cuda.device_count()} CUDA devices")
        return f"cuda:{launch.local_rank}", "nccl"
    if not dist.is_gloo_available():
        raise IrobError("torchrun: this torch has no gloo backend for CPU ranks")
    return "cpu", "gloo"


def evaluate_distributed(path: str | Path, options, isolation, launch: Launch):  # type: ignore[no-untyped-def]
    """Evaluate this rank's shard; on rank 0 return the merged Evaluation, elsewhere None. A failure on any rank
    becomes one IrobError line on rank 0, never a hang at the gather; the failing rank raises it too (an internal
    error as itself, with its traceback)."""
    import torch
    import torch.distributed as dist

    from irob_bench.isolation.sandbox import evaluate_isolated
    from irob_bench.shards import merge_shards

    device, backend = rank_device(options.device, launch)
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(backend, rank=launch.rank, world_size=launch.world_size, timeout=GATHER_TIMEOUT)
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IrobError(f"torchrun: cannot start the {backend} process group: {first}") from None
    try:
        shard_options = options.model_copy(update={"shard": (launch.rank + 1, launch.world_size), "device": device})
        internal: Exception | None = None
        try:
            payload: tuple[str, object] = ("ok", evaluate_isolated(path, shard_options, isolation))
        except IrobError as exc:
            payload = ("error", str(exc))
        except Exception as exc:  # a bug, not bad input: rank 0 gets its one line, this rank re-raises it with its stack
            internal = exc
            payload = ("error", f"internal error {type(exc).__name__}: {exc} (its traceback is on rank {launch.rank})")
        gathered: list | None = [None] * launch.world_size if launch.rank == 0 else None
        dist.gather_object(payload, gathered, dst=0)
        # every rank waits until rank 0 holds every shard: a rank that tore down its gloo pairs while rank 0 still
        # read from them died at exit now and then (SIGABRT, "terminate called without an active exception")
        dist.barrier()
    finally:
        dist.destroy_process_group()
    if internal is not None:
        raise internal
    if payload[0] == "error":
        raise IrobError(f"rank {launch.rank}: {payload[1]}")
    if gathered is None:
        return None
    errors = [f"rank {r}: {value}" for r, (status, value) in enumerate(gathered) if status == "error"]
    if errors:
        raise IrobError(errors[0])
    return merge_shards([value for _, value in gathered], [f"rank {r}" for r in range(launch.world_size)])
