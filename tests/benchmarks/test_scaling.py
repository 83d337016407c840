"""Scaling: a 2-process torchrun evaluation (gloo, one torch thread per rank) against one process, on the 2 cores.

Run with `pytest tests/benchmarks --benchmark-only -k scaling`. The MNIST standard reference, the `quick` preset
(so that both fit in the few minutes the machine's training job may be paused), N_POINTS points in 2 chunks (so each
rank gets one), no store. Both are timed end to end by wall clock as the user
sees it (process start, imports, validation, the attacks and, for torchrun, the gather and merge), with the
children's CPU time beside it: the target is throughput (points per wall second) of 2 processes >= 1.7x that of
one. On a shared machine the wall clock includes the other jobs' load: docs/performance.md reports it.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SUBMISSION = Path(__file__).resolve().parents[2] / "submissions" / "mnist" / "standard" / "submission.py"
N_POINTS = 160
TARGET = 1.7


def timed(command: list[str], tmp: Path) -> dict:
    """Wall and children's CPU seconds of one command run to completion (it must succeed)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "IROB_BENCH_CACHE": str(tmp / "cache")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    run = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert run.returncode == 0, run.stderr[-2000:]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": round(wall, 1), "cpu": round(cpu, 1), "points_per_s": round(N_POINTS / wall, 3)}


def test_two_processes_reach_1_7x_the_throughput_of_one(benchmark, tmp_path):
    args = ["evaluate", str(SUBMISSION), "--n-examples", str(N_POINTS), "--batch-size", str(N_POINTS // 2),
            "--attacks", "quick", "--no-store", "--quiet", "--isolation", "none"]
    one = timed([sys.executable, "-m", "irob_bench", *args, "--json", str(tmp_path / "one.json")], tmp_path)
    two = benchmark.pedantic(timed, args=([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                           "--nproc_per_node", "2", "-m", "irob_bench", *args,
                                           "--json", str(tmp_path / "two.json")], tmp_path), rounds=1, iterations=1)
    speedup = one["wall"] / two["wall"]
    load = os.getloadavg()
    benchmark.extra_info.update({"one": one, "two": two, "speedup": speedup, "loadavg": load})
    print({"one": one, "two": two, "speedup": round(speedup, 2), "loadavg": load})
    same = (tmp_path / "one.json.outcomes.npz").read_bytes() == (tmp_path / "two.json.outcomes.npz").read_bytes()
    assert same, "2 ranks must give the one-process outcomes byte for byte"
    assert speedup >= TARGET, (one, two)
